"""Pricing: hand-computed figures, and equality with genai-prices calc_price row by row."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import numpy as np
import pandas as pd
import pytest
from genai_prices import Usage, calc_price

from simulator.errors import PricingError
from simulator.pricing.catalog import Catalog


def ns(text: str) -> int:
    return pd.Timestamp(text).value


def test_worked_example_opus_4_7():
    # Reference doc: 600 plain x $5 + 300 read x $0.50 + 100 write x $6.25 + 200 out x $25 per M = $0.008775
    cost = Catalog().cost_usd(["anthropic-main/claude-opus-4-7"], [ns("2026-11-20T00:00Z")], [1000], [200],
                              [300], [100])
    assert cost[0] == pytest.approx(0.008775, rel=1e-12)


def test_one_hour_cache_writes_cost_more():
    # 1,000 input of which 1,000 written with 1 h TTL: $10/M instead of $6.25/M (Opus 4.7).
    cat = Catalog()
    t = [ns("2026-11-20T00:00Z")]
    five = cat.cost_usd(["anthropic-main/claude-opus-4-7"], t, [1000], [0], [0], [1000], [0])[0]
    hour = cat.cost_usd(["anthropic-main/claude-opus-4-7"], t, [1000], [0], [0], [1000], [1000])[0]
    assert five == pytest.approx(1000 * 6.25 / 1e6)
    assert hour == pytest.approx(1000 * 10 / 1e6)


CASES = [
    # model id, catalog provider, catalog ref, timestamp
    ("anthropic-main/claude-opus-4-7", "anthropic", "claude-opus-4-7", "2026-11-20T10:00:00Z"),
    ("anthropic-main/claude-opus-4-6", "anthropic", "claude-opus-4-6", "2026-02-01T10:00:00Z"),  # tiered era
    ("anthropic-main/claude-opus-4-6", "anthropic", "claude-opus-4-6", "2026-04-01T10:00:00Z"),  # flat era
    ("anthropic-main/claude-sonnet-4-6", "anthropic", "claude-sonnet-4-6", "2026-01-15T23:59:59Z"),
    ("anthropic-main/claude-haiku-4-5", "anthropic", "claude-haiku-4-5", "2026-11-20T10:00:00Z"),
    ("openai/gpt-4o", "openai", "gpt-4o", "2026-11-20T10:00:00Z"),
    ("openai-main/gpt-4o-mini", "openai", "gpt-4o-mini", "2026-11-20T10:00:00Z"),
    ("openai-main/gpt-5", "openai", "gpt-5", "2026-11-20T10:00:00Z"),
    ("openai-main/gpt-5-mini", "openai", "gpt-5-mini", "2026-11-20T10:00:00Z"),
    ("google-vertex/gemini-2.5-pro", "google", "gemini-2.5-pro", "2026-11-20T10:00:00Z"),
    ("google-vertex/gemini-2.5-flash", "google", "gemini-2.5-flash", "2026-11-20T10:00:00Z"),
    ("deepseek/deepseek-chat", "deepseek", "deepseek-chat", "2026-11-20T10:00:00Z"),  # peak hours
    ("deepseek/deepseek-chat", "deepseek", "deepseek-chat", "2026-11-20T20:00:00Z"),  # off-peak
    ("mistral/mistral-large-latest", "mistral", "mistral-large-latest", "2026-11-20T10:00:00Z"),
]


def test_matches_genai_prices_row_by_row():
    rng = np.random.default_rng(7)
    rows = []
    for model, provider, ref, when in CASES:
        for _ in range(25):
            inp = int(rng.choice([0, 1, 999, 1024, 150_000, 199_999, 200_000, 200_001, 350_000]))
            read = int(rng.integers(0, inp + 1)) if inp and rng.random() < 0.5 else 0
            write = int(rng.integers(0, inp - read + 1)) if inp - read > 0 and rng.random() < 0.5 else 0
            w1h = int(rng.integers(0, write + 1)) if write and rng.random() < 0.5 else 0
            out = int(rng.integers(0, 20_000))
            rows.append((model, provider, ref, when, inp, out, read, write, w1h))
    frame = pd.DataFrame(rows, columns=["model", "provider", "ref", "when", "inp", "out", "read", "write", "w1h"])
    got = Catalog().cost_usd(frame["model"], [ns(w) for w in frame["when"]], frame["inp"], frame["out"],
                             frame["read"], frame["write"], frame["w1h"])
    for i, r in enumerate(frame.itertuples()):
        usage = Usage(input_tokens=r.inp, output_tokens=r.out, cache_read_tokens=r.read, cache_write_tokens=r.write,
                      cache_write_1h_tokens=r.w1h)
        want = calc_price(usage, r.ref, provider_id=r.provider,
                          genai_request_timestamp=dt.datetime.fromisoformat(r.when.replace("Z", "+00:00")))
        want = float(want.total_price)
        assert abs(got[i] - want) <= 1e-9 * max(abs(want), 1e-12), (r, got[i], want)


def test_tier_is_a_cliff_on_total_input():
    # Opus 4.6 before 2026-03-13: input $5/M up to 200k tokens, $10/M for every token above that threshold.
    cat = Catalog()
    t = [ns("2026-02-01T00:00Z")] * 2
    below, above = cat.cost_usd(["a/claude-opus-4-6"] * 2, t, [200_000, 200_001], [0, 0])
    assert below == pytest.approx(200_000 * 5 / 1e6)
    assert above == pytest.approx(200_001 * 10 / 1e6)


def test_overrides_minimal_form_and_dated_entries(tmp_path):
    path = tmp_path / "prices.yaml"
    path.write_text(
        "models:\n"
        "  mistralai/mixtral-8x7b-chat: {input_mtok: 0.6, output_mtok: 0.6}\n"
        "  openai/gpt-4o:\n"
        "    - {input_mtok: 2.0, output_mtok: 8.0}\n"
        "    - {start_date: 2026-12-01, input_mtok: 1.0, output_mtok: 4.0}\n"
        "providers:\n"
        "  openai: {discount_pct: 10}\n"
    )
    cat = Catalog.load(path)
    got = cat.cost_usd(
        ["mistralai/mixtral-8x7b-chat", "openai/gpt-4o", "openai/gpt-4o"],
        [ns("2026-11-20T00:00Z"), ns("2026-11-30T23:59Z"), ns("2026-12-01T00:00Z")],
        [1_000_000, 1_000_000, 1_000_000], [500_000, 500_000, 500_000])
    assert got[0] == pytest.approx(0.6 + 0.3)
    assert got[1] == pytest.approx((2.0 + 4.0) * 0.9)
    assert got[2] == pytest.approx((1.0 + 2.0) * 0.9)


def test_override_without_cache_price_bills_cache_reads_as_input(tmp_path):
    path = tmp_path / "prices.yaml"
    path.write_text("models:\n  acme/model-x: {input_mtok: 2, output_mtok: 4}\n")
    cost = Catalog.load(path).cost_usd(["acme/model-x"], [0], [1000], [0], [400])[0]
    assert cost == pytest.approx(1000 * 2 / 1e6)


@pytest.mark.parametrize("text, message", [
    ("models:\n  a/b: {input_mtok: -1, output_mtok: 1}\n", "models.a/b.input_mtok must be a number >= 0. Got -1"),
    ("models:\n  a/b: {input_mtok: 1, outptu_mtok: 1}\n", "unknown key 'outptu_mtok'. Did you mean 'output_mtok'?"),
    ("models:\n  a/b: {input_mtok: 1}\n", "needs both input_mtok and output_mtok"),
    ("providers:\n  openai: {discount_pct: 120}\n", "providers.openai.discount_pct must be a number between 0 and 100"),
    ("models: [1, 2]\n", "models must be a mapping"),
])
def test_override_errors(tmp_path, text, message):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(PricingError) as info:
        Catalog.load(path)
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_unknown_model_names_closest_catalog_ids():
    with pytest.raises(PricingError) as info:
        Catalog().cost_usd(["openai-main/gpt-4oo"], [0], [1], [1])
    text = str(info.value)
    assert "openai:gpt-4o" in text and "models:" in text and "price-override file" in text


def test_unknown_models_are_all_listed_with_real_neighbours_only():
    """Every unknown model in one message; a neighbour shares a word of the name (superfast-1 has none, so no
    'openai:tts-1' for it); a command without a scenario says --pricing, not 'the scenario'."""
    from simulator.pricing.catalog import OPTION_FIX

    with pytest.raises(PricingError) as info:
        Catalog.load(fix=OPTION_FIX).check_known(["openai-main/superfast-1", "openai-main/gpt-4o",
                                                  "anthropic-main/claude-opuss-4-7"])
    text = str(info.value)
    assert text.startswith("2 models are not in the genai-prices catalog: model 'openai-main/superfast-1'")
    assert "(provider 'openai', model 'superfast-1'); no catalog model has a similar name;" in text
    assert "tts" not in text
    assert "model 'anthropic-main/claude-opuss-4-7'" in text and "anthropic:claude-opus-4-7" in text
    assert text.endswith("given with --pricing FILE (see pricing/README.md).") and "scenario" not in text


def test_models_map_wins_over_guess():
    cat = Catalog.load(models={"internal/fast": "openai:gpt-4o-mini"})
    cost = cat.cost_usd(["internal/fast"], [ns("2026-11-20T00:00Z")], [1_000_000], [0])[0]
    assert cost == pytest.approx(0.15)


def test_unit_prices_are_usd_per_million():
    p = Catalog().unit_prices("anthropic-main/claude-haiku-4-5", "2026-11-20")
    assert (p["input_mtok"], p["output_mtok"], p["cache_read_mtok"], p["cache_write_mtok"]) == (1.0, 5.0, 0.1, 1.25)
    assert Decimal(str(p["cache_write_1h_mtok"])) == Decimal("2")


def test_example_overrides_file_loads_and_prices_by_hand():
    from conftest import REPO

    cat = Catalog.load(REPO / "pricing" / "example-overrides.yaml")
    got = cat.cost_usd(["internal/llama-3-70b-finetune", "openai-main/gpt-4o", "anthropic-main/claude-haiku-4-5"],
                       [ns("2026-11-20T00:00Z"), ns("2026-12-02T00:00Z"), ns("2026-11-20T00:00Z")],
                       [1_000_000, 1_000_000, 1_000_000], [0, 1_000_000, 1_000_000])
    # llama 0.9; gpt-4o after 2026-12-01: 2.0 + 8; haiku catalog $1 + $5 with anthropic's 10% discount.
    assert got == pytest.approx([0.9, 10.0, 6.0 * 0.9])
