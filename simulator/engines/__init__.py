"""Engines that replay traffic larger than memory: streaming (chunked, one machine) and Dask (a cluster)."""
