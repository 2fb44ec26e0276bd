"""Every example scenario (``scenarios/*.yaml``) on all three engines: the same summary.json.

Local is the reference. Streaming replays the same traffic in at least three time-ordered chunks; Dask (a 2-worker
LocalCluster) replays it in partitions, control-room panels (loop_detection, alerts, outcomes, adoption) included,
and those sections must equal local's exactly. Other floats are compared as in tests/test_engines.py
(``assert_same``).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from simulator.api import run
from simulator.routing.scenario import load_scenario
from tests.test_engines import assert_same

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = sorted((REPO / "scenarios").glob("*.yaml"))
SECTIONS = ("loops", "alerts", "outcomes", "leverage", "adoption")  # summary.json's control-room sections


@pytest.fixture(autouse=True)
def no_network():
    """Overrides the conftest fixture: a LocalCluster talks over loopback sockets (see tests/test_engine_dask.py)."""
    yield


@pytest.fixture(scope="module")
def client():
    from distributed import Client, LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address=None) as cluster, Client(cluster) as c:
        yield c


def _scenario(path: Path):
    scenario = load_scenario(path)
    missing = [p for p in scenario.paths("traffic") if not Path(p).exists()]
    if missing:  # the real-data examples read /work/shared/data (or ../shared/data in CI)
        pytest.skip(f"{path.name}: traffic {missing[0]} is not on this machine")
    return scenario


def test_every_example_is_covered():
    assert len(EXAMPLES) >= 10 and {p.name for p in EXAMPLES} >= {"premium-review.yaml", "prompt-caching.yaml"}




@pytest.mark.parametrize("path", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_example_on_three_engines(path, client):
    from simulator.engines.dask_engine import run_dask
    from simulator.engines.streaming import run_streaming

    scenario = _scenario(path)
    local = run(scenario).summary
    rows = local["traffic"]["rows_read"]
    streamed = run_streaming(scenario, chunk_rows=max(1, rows // 3)).summary
    assert_same(local, streamed)

    dask = run_dask(scenario, client=client).summary
    assert_same(local, dask)
    sections = [k for k in SECTIONS if k in local]
    assert {k: dask[k] for k in sections} == {k: local[k] for k in sections}  # the panels exactly
