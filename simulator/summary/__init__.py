"""Summary numbers: totals, breakdowns, intervals, gates, privacy of output labels."""
