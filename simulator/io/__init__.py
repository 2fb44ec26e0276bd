"""Reading traffic: readers per file format, adapters per log source, the canonical table and its rejects."""
