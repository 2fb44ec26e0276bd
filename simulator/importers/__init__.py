"""Importers: public traces -> the canonical traffic table, with documented rules for the fields they lack."""
