"""Replay throughput against bare-numpy references measured in the same run.

Run: python -m pytest tests/benchmarks/test_bench_replay.py --benchmark-enable --benchmark-only -o addopts=""
Rows/s = rows / mean time; the ratio to the reference is printed by ``test_report`` (run with -s).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from simulator.pricing.catalog import Catalog
from simulator.core import Prepared, simulate
from simulator.routing.scenario import parse_scenario
from simulator.io.traffic import Traffic

MODELS = ["anthropic-main/claude-opus-4-7", "anthropic-main/claude-sonnet-4-6", "anthropic-main/claude-haiku-4-5",
          "openai-main/gpt-5", "openai-main/gpt-5-mini", "openai-main/gpt-4o-mini", "google-vertex/gemini-2.5-flash",
          "anthropic-main/claude-opus-4-6"]
WORKFLOWS = ["classify-intent", "code-review", "rag-chat", "support-summarize", "agent-session"]
START = pd.Timestamp("2026-11-16T00:00:00Z").value


def arrays(n: int, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    inp = rng.integers(100, 20_000, n)
    return {
        "ts": np.sort(START + rng.integers(0, 7 * 86_400 * 10**9, n)),
        "model": rng.integers(0, len(MODELS), n),
        "inp": inp, "out": rng.integers(1, 2_000, n), "cr": (inp * rng.random(n) * 0.5).astype(np.int64),
        "wf": rng.integers(0, len(WORKFLOWS), n), "project": rng.integers(0, 20, n), "user": rng.integers(0, 500, n),
    }


def traffic(n: int) -> Traffic:
    a = arrays(n)
    frame = pd.DataFrame({
        "request_id": pd.Series(np.char.add("r", np.arange(n).astype(str)), dtype=object),
        "timestamp": pd.to_datetime(a["ts"], unit="ns", utc=True),
        "model": pd.Series(np.array(MODELS, dtype=object)[a["model"]], dtype=object),
        "requested_model": pd.Series(np.array(MODELS, dtype=object)[a["model"]], dtype=object),
        "input_tokens": a["inp"], "output_tokens": a["out"], "cache_read_tokens": a["cr"],
        "cache_write_tokens": 0, "cache_write_1h_tokens": 0, "cost_usd": np.nan, "latency_ms": 500.0 + a["out"],
        "status_code": 200,
        "user_id": pd.Series(np.char.add("u", a["user"].astype(str)), dtype=object),
        "team": "t", "project": pd.Series(np.char.add("p", a["project"].astype(str)), dtype=object),
        "workflow_tag": pd.Series(np.array(WORKFLOWS, dtype=object)[a["wf"]], dtype=object),
        "session_id": None, "metadata": None, "prompt": None, "prefix_hash": None, "prefix_tokens": 0,
        "prefix_blocks": None, "block_tokens": 0,
    })
    return Traffic(frame, pd.DataFrame(columns=["source", "row", "request_id", "reason"]), n, ["bench"])


# -- identity replay: pricing + aggregation per model ---------------------------------------------------------
@pytest.fixture(scope="module", params=[1_000_000, 10_000_000], ids=["1M", "10M"])
def priced(request):
    n = request.param
    a = arrays(n)
    catalog = Catalog()
    vocab = np.array(MODELS, dtype=object)
    catalog.cost_usd_codes(a["model"][:10], vocab, a["ts"][:10], a["inp"][:10], a["out"][:10], a["cr"][:10])
    # The reference's coefficient table, from the same catalog (single price period, no tiers for these models).
    coef = np.vstack([catalog._table(catalog.resolve(m), 0)[1][0] for m in MODELS])
    return n, a, catalog, vocab, coef


def test_identity_replay(benchmark, priced):
    n, a, catalog, vocab, _ = priced

    def replay():
        cost = catalog.cost_usd_codes(a["model"], vocab, a["ts"], a["inp"], a["out"], a["cr"])
        return np.bincount(a["model"], weights=cost, minlength=len(vocab))

    benchmark.extra_info["rows"] = n
    benchmark(replay)


def test_identity_replay_numpy_reference(benchmark, priced):
    n, a, _, vocab, coef = priced
    inp, out, cr = (a[k].astype(np.float64) for k in ("inp", "out", "cr"))

    def reference():
        c = coef[a["model"]]
        cost = c[:, 0] + c[:, 1] * (inp - cr) + c[:, 2] * cr + c[:, 5] * out
        return np.bincount(a["model"], weights=cost, minlength=len(vocab))

    benchmark.extra_info["rows"] = n
    benchmark(reference)


# -- routing candidates ------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def prepared_1m():
    return Prepared(traffic(1_000_000), Catalog(), seed=1)


def _candidate(spec: dict):
    return parse_scenario({"name": "b", "candidates": [spec]}, "bench", ".").candidates[0]


DOWNGRADE = {"name": "down", "rules": [{"id": "ci", "when": {"models": [MODELS[0]],
                                                             "metadata": {"workflow_tag": "classify-intent"}},
                                        "load_balance_targets": [{"target": MODELS[2], "weight": 100}]}]}
STATEFUL = {"name": "caps", "budgets": [{"id": "b", "limit_to": 50, "unit": "cost_per_day",
                                         "budget_applies_per": ["metadata.project"]}],
            "rate_limits": [{"id": "r", "limit_to": 30, "unit": "requests_per_minute",
                             "rate_limit_applies_per": ["user"]}]}


def test_stateless_downgrade(benchmark, prepared_1m):
    cand = _candidate(DOWNGRADE)
    simulate(prepared_1m, cand)  # warm caches (matching keys, numba) outside the timing
    benchmark.extra_info["rows"] = prepared_1m.n
    benchmark(simulate, prepared_1m, cand)


def test_stateless_downgrade_numpy_reference(benchmark, prepared_1m):
    p = prepared_1m
    wf = p.view.key("workflow_tag")
    coef = np.vstack([p.catalog._table(p.catalog.resolve(m), 0)[1][0] for m in p.vocab])
    opus, haiku = p.vocab.index(MODELS[0]), p.vocab.index(MODELS[2])
    inp, out, cr = p.inp.astype(np.float64), p.out.astype(np.float64), p.cr.astype(np.float64)

    def reference():
        mask = (p.model == opus) & (wf == "classify-intent")
        model = np.where(mask, haiku, p.model)
        read = np.where(mask, 0.0, cr)
        c = coef[model]
        cost = c[:, 0] + c[:, 1] * (inp - read) + c[:, 2] * read + c[:, 5] * out
        return cost.sum()

    benchmark.extra_info["rows"] = p.n
    benchmark(reference)


def test_budgets_and_rate_limits(benchmark, prepared_1m):
    cand = _candidate(STATEFUL)
    simulate(prepared_1m, cand)
    benchmark.extra_info["rows"] = prepared_1m.n
    benchmark(simulate, prepared_1m, cand)
