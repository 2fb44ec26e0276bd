"""What a run writes: report, gateway configs, CI gate files, JSON and Parquet."""
