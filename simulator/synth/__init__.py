"""Data generators (sample week, seed example); nothing in the pipeline imports them."""
