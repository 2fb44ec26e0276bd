"""Prices per request: the genai-prices catalog, dated overrides, gateway model ids."""
