"""Reprocessing stored records: replays, dry runs against the audit."""
