"""Accuracy evidence from labeled eval samples: loading, paired statistics, policy impact, gates, curves."""
