"""Importers: third-party traces and evaluation layouts -> tfysim's canonical traffic table or long eval-sample format.

Each documents the rules for the fields its source lacks."""
