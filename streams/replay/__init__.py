"""Reprocessing stored records: ranges of a topic, replays, dry runs against the audit."""
