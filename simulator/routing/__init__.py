"""Scenario model and rule matching: which requests a rule covers and where they go."""
