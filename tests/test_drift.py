"""simulator.tokens.drift: token and cost drift of one model's traffic moved to another model."""

from __future__ import annotations

import socket

import numpy as np
import pandas as pd
import pytest

from simulator.tokens.drift import drift_report
from simulator.errors import InputError


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    def refuse(*args, **kwargs):
        raise RuntimeError("network access attempted in a test")

    monkeypatch.setattr(socket, "socket", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


def _traffic(model, n=4, prompts=None, days=7):
    start = pd.Timestamp("2026-11-01", tz="UTC")
    return pd.DataFrame(
        {
            "request_id": [f"r{i}" for i in range(n)],
            "timestamp": [start + pd.Timedelta(days=days) * i / max(n - 1, 1) for i in range(n)],
            "model": model,
            "input_tokens": np.full(n, 1000, dtype=np.int64),
            "output_tokens": np.full(n, 100, dtype=np.int64),
            "cache_read_tokens": np.full(n, 500, dtype=np.int64),
            "team": (["search", "search", "ads", None] * n)[:n],
            "prompt": prompts if prompts is not None else [None] * n,
        }
    )


def per_mtok(input_mtok, output_mtok):
    def price(model, frame):
        return (frame["input_tokens"] * input_mtok + frame["output_tokens"] * output_mtok).to_numpy() / 1e6

    return price


def test_opus_46_to_47_without_prompts_uses_default_all_ratio_and_prices_monthly():
    df = _traffic("anthropic/claude-opus-4-6")
    report = drift_report(df, "anthropic/claude-opus-4-6", "anthropic/claude-opus-4-7", by="team",
                          price_fn=per_mtok(5.0, 25.0))
    # Shipped default for mixed content: 1.304 -> 1000 -> 1304 input, 100 -> 130 output per request.
    assert report["input_tokens_from"] == 4000 and report["input_tokens_to"] == 4 * 1304
    assert report["output_tokens_to"] == 4 * 130
    # Its interval is the entry's stated range for unknown content (1.0 to 1.431).
    assert report["method"] == "calibrated-default"
    assert (report["ratio_ci_low"], report["ratio_ci_high"]) == pytest.approx((1.0, 1.431))
    cost = report["cost"]
    per_request_from = (1000 * 5 + 100 * 25) / 1e6
    per_request_to = (1304 * 5 + 130 * 25) / 1e6
    assert cost["cost_per_request_usd_from"] == pytest.approx(per_request_from)
    assert cost["cost_per_request_usd_to"] == pytest.approx(per_request_to)
    # 4 requests over a 7-day window, scaled to 30 days.
    assert cost["monthly_cost_impact_usd"] == pytest.approx(4 * (per_request_to - per_request_from) * 30 / 7)
    groups = {g["group"]: g for g in report["groups"]}
    assert set(groups) == {"search", "ads", "(none)"} and groups["search"]["requests"] == 2


def test_exact_pair_with_prompts_by_content_type():
    import quicktok

    prompts = ["hello world, how are you today?", "def f(x):\n    return x + 1\n", "東京是日本的首都。", None]
    df = _traffic("openai/gpt-4", prompts=prompts)
    report = drift_report(df, "openai/gpt-4", "openai/gpt-4o", by="content_type")
    cl, o2 = quicktok.get_encoding("cl100k_base"), quicktok.get_encoding("o200k_base")
    # Each prompt covers only len(cl100k tokens) of the 1,000 billed tokens: the exact ratio applies to that share,
    # the rest gets the o200k / cl100k ratio for unknown content (0.921).
    shares = [len(cl.encode(p)) / 1000 for p in prompts[:3]]
    expected = [round(1000 * (v * len(o2.encode(p)) / len(cl.encode(p)) + (1 - v) * 0.921))
                for v, p in zip(shares, prompts[:3])] + [921]
    assert report["input_tokens_to"] == sum(expected)
    assert report["methods"] == {"partial-exact": 3, "calibrated-default": 1}
    assert report["method"] == "calibrated-default"
    groups = {g["group"]: g for g in report["groups"]}
    assert set(groups) == {"prose", "code", "non_latin", "unknown"}
    assert groups["non_latin"]["input_tokens_to"] == expected[2] and groups["non_latin"]["method"] == "partial-exact"


def test_calibrates_from_the_traffic_itself():
    # Synthetic Opus 4.7 rows whose input_tokens are exactly 2 x o200k count: the fit must find 2.0.
    import quicktok

    rng = np.random.default_rng(1)
    words = "the budget review covers spend per team and the roadmap for next quarter".split()
    prompts = [" ".join(rng.choice(words, size=rng.integers(10, 200))) for _ in range(60)]
    o2 = quicktok.get_encoding("o200k_base")
    df = _traffic("anthropic/claude-opus-4-7", n=60, prompts=prompts)
    df["input_tokens"] = [2 * len(o2.encode(p)) for p in prompts]
    report = drift_report(df, "anthropic/claude-opus-4-7", "openai/gpt-4o")
    assert report["method"] == "calibrated"
    assert report["ratio"] == pytest.approx(0.5, abs=0.002)
    assert report["ratio_ci_low"] <= 0.5 <= report["ratio_ci_high"]


def test_unknown_from_model_lists_models_found():
    df = _traffic("anthropic/claude-opus-4-6")
    with pytest.raises(InputError, match="Did you mean 'anthropic/claude-opus-4-6'"):
        drift_report(df, "anthropic/claude-opus-4-5", "anthropic/claude-opus-4-7")


def test_bad_by_is_an_input_error():
    with pytest.raises(InputError, match="--by must be one of"):
        drift_report(_traffic("openai/gpt-4o"), "openai/gpt-4o", "openai/gpt-4o-mini", by="user_id")


def test_same_family_is_identity_and_input_untouched():
    df = _traffic("openai/gpt-4o")
    before = df.copy()
    report = drift_report(df, "gpt-4o", "openai/gpt-4o-mini")
    assert report["ratio"] == 1.0 and report["method"] == "identity"
    assert report["ratio_ci_low"] is None and report["ratio_ci_high"] is None  # an assumption, not a measurement
    pd.testing.assert_frame_equal(df, before)


def test_exact_interval_contains_its_estimate_despite_rounding():
    # 3 rows whose prompt is the whole input (plus 1 framing token): exact ratios; the translated counts are rounded
    # (45 x 28/44 = 28.64 -> 29), so the realised ratio (the estimate) is not the unrounded exact ratio. A zero-width
    # interval must sit on the estimate.
    import quicktok

    text = "東京是日本的首都，人口超过一千三百万。" * 2
    cl = len(quicktok.get_encoding("cl100k_base").encode(text))
    o2 = len(quicktok.get_encoding("o200k_base").encode(text))
    df = _traffic("openai/gpt-4", n=3, prompts=[text] * 3)
    df["input_tokens"] = cl + 1
    report = drift_report(df, "openai/gpt-4", "openai/gpt-4o")
    assert report["method"] == "exact"
    assert report["ratio"] == round((cl + 1) * o2 / cl) / (cl + 1) != o2 / cl
    assert report["ratio_ci_low"] == report["ratio"] == report["ratio_ci_high"]
