"""The pure rules of statistics: tables, a record's contribution, windows, suppression, publication."""
