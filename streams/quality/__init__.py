"""Data quality with Great Expectations, on batches only (never per record, never on the hot path)."""
