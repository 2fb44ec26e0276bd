"""Importers that turn third-party evaluation layouts into tfysim's long eval-sample format."""
