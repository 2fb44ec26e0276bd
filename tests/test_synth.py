"""simulator.synth.generator: reproducible bytes, and the shapes the report's findings depend on."""

from __future__ import annotations

import gzip
import hashlib
import importlib.util
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from simulator.synth import generator as synth

ROOT = Path(__file__).resolve().parents[1]
PROFILE = yaml.safe_load((ROOT / "simulator" / "data" / "synth_profile.yaml").read_text(encoding="utf-8"))


def _sha256_dir(d: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(d.iterdir())}


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    root = tmp_path_factory.mktemp("synth")
    for name, seed in (("a", 11), ("b", 11), ("c", 12)):
        synth.write_dataset(root / name, days=7, requests=6_000, seed=seed)
    return {name: _sha256_dir(root / name) for name in "abc"}


def test_same_seed_gives_same_bytes(written):
    assert sorted(written["a"]) == ["evals.parquet", "prefixes.parquet", "traffic.parquet"]
    assert written["a"] == written["b"]


def test_different_seed_differs(written):
    ha, hc = written["a"], written["c"]
    assert ha["traffic.parquet"] != hc["traffic.parquet"]
    assert ha["evals.parquet"] != hc["evals.parquet"]
    assert ha["prefixes.parquet"] == hc["prefixes.parquet"]  # system prompts do not depend on the seed


def test_committed_sample_regenerates(tmp_path):
    # If this fails after a profile or catalog change: regenerate datasets/sample and update MANIFEST.sha256
    # (see datasets/README.md, "Regenerating").
    synth.write_dataset(tmp_path, days=7, requests=40_000, seed=0, start="2026-11-16T00:00:00Z")
    assert _sha256_dir(tmp_path) == _sha256_dir(ROOT / "datasets" / "sample")


@pytest.fixture(scope="module")
def week():
    traffic, evals = synth.generate(days=7, requests=20_000, seed=5)
    return traffic, evals


def test_canonical_columns_and_dtypes(week):
    traffic, _ = week
    assert len(traffic) == 20_000
    assert traffic["request_id"].is_unique
    assert str(traffic["timestamp"].dtype) == "datetime64[ns, UTC]"
    assert traffic["timestamp"].is_monotonic_increasing
    for col in ("input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens", "status_code", "prefix_tokens"):
        assert traffic[col].dtype == np.int64, col
    assert (traffic["cache_read_tokens"] + traffic["cache_write_tokens"] <= traffic["input_tokens"]).all()
    start = pd.Timestamp("2026-11-16T00:00:00Z")
    assert traffic["timestamp"].min() >= start and traffic["timestamp"].max() < start + pd.Timedelta(days=7)
    assert all(isinstance(json.loads(m), dict) for m in traffic["metadata"].iloc[::97])
    assert traffic["user_id"].str.fullmatch(r"u-\d{4}@example\.com").all()


def test_every_workflow_and_model_present(week):
    traffic, _ = week
    assert set(traffic["workflow_tag"]) == set(PROFILE["workflows"])
    assert set(traffic["model"]) == set(PROFILE["models"])
    # virtual model names and at least one direct model name in requested_model
    assert "code-review-fast" in set(traffic["requested_model"])
    assert "support-routing/triage-chat" in set(traffic["requested_model"])
    # premium model on the cheap task: classify-intent mostly on Opus 4.7
    ci = traffic[traffic["workflow_tag"] == "classify-intent"]
    assert (ci["model"] == "anthropic-main/claude-opus-4-7").mean() > 0.6


def test_untagged_share_matches_session_draw(week):
    traffic, _ = week
    sessions = traffic.groupby("session_id").agg(untagged=("project", lambda s: s.isna().all()), rows=("project", "size"))
    ordinary = sessions[sessions["rows"] < 300]  # runaway loops are always tagged
    p, n = PROFILE["untagged_session_share"], len(ordinary)
    half_width = 4 * np.sqrt(p * (1 - p) / n)
    assert abs(ordinary["untagged"].mean() - p) < half_width
    row_share = traffic["project"].isna().mean()
    assert 0.03 < row_share < 0.10
    # project missing for whole sessions, never for part of one
    assert (traffic.groupby("session_id")["project"].apply(lambda s: s.isna().all() or s.notna().all())).all()


def test_errors_cluster_in_incident_windows(week):
    traffic, _ = week
    hours = (traffic["timestamp"] - pd.Timestamp("2026-11-16T00:00:00Z")).dt.total_seconds() / 3600
    account = traffic["model"].str.split("/").str[0]
    failed = traffic["status_code"] != 200
    for inc in PROFILE["errors"]["incidents"]:
        mine = account == inc["account"]
        inside = mine & (hours >= inc["start_hours"]) & (hours < inc["end_hours"])
        outside = mine & ~inside
        assert inside.sum() >= 5
        assert failed[inside].mean() > 10 * failed[outside].mean()


def test_runaway_loops_and_multi_turn_sessions(week):
    traffic, _ = week
    per_session = traffic.groupby("session_id").size()
    loops = per_session[per_session >= 300]
    assert len(loops) >= 1
    assert (traffic[traffic["session_id"].isin(loops.index)]["workflow_tag"] == "agent-session").all()
    assert (per_session[per_session < 300] > 1).mean() > 0.1


def test_repeated_prefixes_above_and_below_cache_minimums(week):
    traffic, _ = week
    counts = traffic["prefix_hash"].value_counts()
    assert len(counts) == len(PROFILE["system_prompts"])
    assert counts.min() >= 50
    ok = traffic[traffic["status_code"] == 200]
    assert (ok["prefix_tokens"] > 4096).any() and (ok["prefix_tokens"] < 1024).any()
    # prefix_tokens constant per (model, prefix): the same system prompt under one tokenizer
    assert (ok.groupby(["model", "prefix_hash"])["prefix_tokens"].nunique() == 1).all()


def test_content_mix(week):
    traffic, _ = week
    cjk = traffic["prompt"].str.contains(r"[\u3040-\u30ff\u4e00-\u9fff]", regex=True)
    german = traffic["prompt"].str.contains("Rechnung|Bestellbestätigung|Lieferung", regex=True)
    code = traffic["prompt"].str.contains("def |function |SELECT ", regex=True)
    assert 0.01 < cjk.mean() < 0.3 and german.mean() > 0.005 and code.mean() > 0.1


def _o200k_reference(tmp_path, monkeypatch):
    """o200k built independently of simulator.synth.generator: tiktoken's own loader and pattern, bpe-openai's vocabulary file."""
    import tiktoken
    import tiktoken_ext.openai_public as openai_public
    from tiktoken.load import load_tiktoken_bpe

    spec = importlib.util.find_spec("bpe_openai")
    gz = Path(list(spec.submodule_search_locations)[0]) / "data" / "o200k_base.tiktoken.gz"
    plain = tmp_path / "o200k_base.tiktoken"
    plain.write_bytes(gzip.decompress(gz.read_bytes()))
    ranks = load_tiktoken_bpe(str(plain), expected_hash="446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d")
    monkeypatch.setattr(openai_public, "load_tiktoken_bpe", lambda *a, **k: ranks)  # no download
    return tiktoken.Encoding(**openai_public.o200k_base())


def test_input_tokens_are_prefix_plus_prompt_plus_history_for_openai_rows(week, tmp_path, monkeypatch):
    traffic, _ = week
    enc = _o200k_reference(tmp_path, monkeypatch)
    rows = traffic[(traffic["status_code"] == 200) & traffic["model"].str.startswith("openai-main/")].iloc[::40]
    assert len(rows) > 50
    history = rows["metadata"].map(lambda m: json.loads(m)["history_tokens"])
    prompt_tokens = rows["prompt"].map(lambda t: len(enc.encode_ordinary(t)))
    assert (rows["input_tokens"] == rows["prefix_tokens"] + prompt_tokens + history).all()
    # OpenAI cache reads as reported: 1,024 tokens then 128-token steps
    cr = traffic.loc[traffic["model"].str.startswith("openai-main/"), "cache_read_tokens"]
    cr = cr[cr > 0]
    assert len(cr) > 0 and ((cr >= 1024) & ((cr - 1024) % 128 == 0)).all()


def test_anthropic_cache_only_where_cache_control_is_set(week):
    traffic, _ = week
    anth = traffic[traffic["model"].str.startswith("anthropic-main/")]
    cached = anth[(anth["cache_read_tokens"] + anth["cache_write_tokens"]) > 0]
    allowed = {w for w, spec in PROFILE["workflows"].items() if spec["cache_control"]}
    assert len(cached) > 100 and set(cached["workflow_tag"]) <= allowed


def test_recorded_cost_matches_genai_prices_except_the_mispriced_model(week):
    from genai_prices import Usage, calc_price

    traffic, _ = week
    providers = PROFILE["pricing_account_map"]
    when = pd.Timestamp("2026-11-16T00:00:00Z").to_pydatetime()
    for model, group in traffic[traffic["status_code"] == 200].groupby("model"):
        account, name = model.split("/", 1)
        sample = group.iloc[:: max(1, len(group) // 15)]
        for row in sample.itertuples():
            usage = Usage(
                input_tokens=int(row.input_tokens),
                output_tokens=int(row.output_tokens),
                cache_read_tokens=int(row.cache_read_tokens),
                cache_write_tokens=int(row.cache_write_tokens),
            )
            expected = float(calc_price(usage, name, provider_id=providers[account], genai_request_timestamp=when).total_price)
            factor = 1.04 if model == "google-vertex/gemini-2.5-flash" else 1.0
            assert row.cost_usd == pytest.approx(expected * factor, rel=1e-9), model
    assert (traffic.loc[traffic["status_code"] != 200, "cost_usd"] == 0).all()


def test_weekday_and_diurnal_shape(week):
    traffic, _ = week
    ts = traffic["timestamp"]
    per_day = ts.dt.floor("D").value_counts()
    weekend = per_day[per_day.index.day_of_week >= 5]
    weekday = per_day[per_day.index.day_of_week < 5]
    assert weekend.max() < 0.5 * weekday.min()
    sizes = traffic.groupby("session_id")["session_id"].transform("size")
    hourly = ts[sizes < 300].dt.hour.value_counts()  # runaway loops may run through the night
    assert hourly.loc[[14, 15]].sum() > 3 * hourly.loc[[2, 3]].sum()


def test_evals_are_paired_with_chosen_gaps(week):
    _, evals = week
    assert list(evals.columns) == ["sample_id", "model", "correct", "workflow_tag", "prompt", "input_tokens", "output_tokens", "prefix_hash"]
    assert set(evals["correct"].unique()) <= {0, 1}
    for wf, spec in PROFILE["evals"].items():
        sub = evals[evals["workflow_tag"] == wf]
        assert sub.groupby("model")["sample_id"].nunique().eq(spec["items"]).all()
        assert set(sub["model"]) == set(spec["accuracy"])
        wide = sub.pivot(index="sample_id", columns="model", values="correct")
        for model, acc in spec["accuracy"].items():
            se = np.sqrt(acc * (1 - acc) / spec["items"])
            assert abs(wide[model].mean() - acc) < 4.5 * se, (wf, model)
    ci = evals[evals["workflow_tag"] == "classify-intent"].pivot(index="sample_id", columns="model", values="correct")
    # paired correlation: far fewer discordant items than independent draws would give
    opus, haiku = ci["anthropic-main/claude-opus-4-7"], ci["anthropic-main/claude-haiku-4-5"]
    assert (opus != haiku).mean() < 0.5 * (2 * 0.955 * 0.045)


def test_bad_arguments_raise_input_error():
    from simulator.errors import InputError

    with pytest.raises(InputError, match="requests must be an integer"):
        synth.generate(requests=0)
    with pytest.raises(InputError, match="start must be an ISO 8601"):
        synth.generate(requests=10, start="yesterday")
