"""``python -m simulator`` runs the tfysim CLI (same as the ``tfysim`` console script)."""

from simulator.cli import cli

if __name__ == "__main__":  # pragma: no cover - exercised by subprocess tests
    cli(prog_name="tfysim")
