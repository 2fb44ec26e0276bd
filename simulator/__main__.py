"""`python -m simulator` runs the tfysim CLI."""

from simulator.cli import main

main()
