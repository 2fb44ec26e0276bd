"""atheris target: bytes -> a scenario whose traffic is loaded with its ingest options under small limits; only TfysimError is allowed. Run: python tests/fuzz/fuzz_scenario_traffic.py -max_total_time=60"""

import sys
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parents[2]), str(Path(__file__).resolve().parent)]

import atheris  # noqa: E402

with atheris.instrument_imports(include=["simulator"]):
    import targets  # noqa: E402
    import simulator.io.readers, simulator.io.traffic, simulator.io.adapters, simulator.routing.scenario  # noqa: E401,E402,F401
    import simulator.io.columns, simulator.io.limits  # noqa: E401,E402,F401
    import simulator.pricing.overrides, simulator.io.yamlio  # noqa: E401,E402,F401

if __name__ == "__main__":
    targets.atheris_main("scenario_traffic")
