"""What the replay carries through time: rate limits, budgets, the prompt cache (compiled kernels)."""
