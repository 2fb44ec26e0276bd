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
    assert sorted(written["a"]) == ["evals.parquet", "outcomes.parquet", "prefixes.parquet",
                                    "runaway_sessions.parquet", "traffic.parquet"]
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


# sha256 of each column of datasets/sample/traffic.parquet (values as JSON, timestamps as int ns) before the
# control-room additions (issue 18). Other tests and the README figures depend on these values: they must not move.
SAMPLE_COLUMNS_BEFORE_ISSUE_18 = {
    "request_id": "8637e1cd5830e9e6f58af3d7e2cceb154d37585d2551f5355592412ded828aac",
    "timestamp": "63180120f51a5846c049f6ef23c278b6626c415f0aa308890dca2de709ae7a77",
    "model": "b6f2b1b7b577b1b97a06cafbeeb0299f9995fe490ab0786cce2d388f6517c602",
    "requested_model": "4e73a07642f7c6c05f2dc7b1913d1e413f7887ab914ee463fd33420416d9d140",
    "input_tokens": "723ede735bc75847b31aff4b546962d02032a4737cb0b94ebcaceb5a7a017032",
    "output_tokens": "e5859ad1c407d5f44d6afc156510aa471ce47d6f1e4f05f7de62b837d273229e",
    "cache_read_tokens": "dd11dbebf6bd20e608625e6510cdcb1a747f896bac32f780d14ef6c5d676821f",
    "cache_write_tokens": "6cd44f29633781cff22202efa59d3d49fbcdb246d0d430ff90fb0f95894ba9c5",
    "cache_write_1h_tokens": "9b37d69f65d6b5c056cf999ff1e86b4edec8ef76d4b39b042da1458cbfda2a40",
    "cost_usd": "d5c554ed0bada40ae5d60b8b01364cf791cfc9f668c057df07de7428c45533fb",
    "latency_ms": "46b812beb4eb894acbd7a76c7d684c279482af442e486a5b1c01c2c734bee053",
    "status_code": "5e89a9696cdd2c842702dae848a22f25882ff0ee8c70def825d8e65e992769d9",
    "user_id": "403ed533752dfbacd0d9dd20318160e5672682b7da4ae5a2884a70b79388d9fc",
    "team": "7d9fd271d35d634813a0694e3393e6a6d726bec31c70f0d1f1b8002685bb88d7",
    "project": "b44f6fee5ca9fe63c50de76b0f5e7e2321b5e59f6e3622e1ff12b44e4fe057d3",
    "workflow_tag": "1477bfbea42f23978b7847ad0cc4f173e3b00ee49bad2e157875c31443a85a6f",
    "session_id": "74be5768512a6954ff6251731c616b0f6796ea26c74f803b88d378790652686f",
    "prompt": "2170ae62d295b7aa15e1614011991a3ad95b2124833f63ecd305d2adeb7b8109",
    "prefix_hash": "5fbc005ad0fa8f664fe7a89e134457e939ea32a2e6dd38432dcd913717d0efdf",
    "prefix_tokens": "1e9ad8c6ae61431cd4b53be81458fd338e7ce31889855b2eeefb94466ae9e4bb",
}
METADATA_BEFORE_ISSUE_18 = "a609ed8a07a876bce0787538c59ec1f9ab833d9bf87fce9493360f61777c6d0c"


def _column_digest(column) -> str:
    import pyarrow as pa

    if pa.types.is_timestamp(column.type):
        column = column.cast(pa.int64())
    return hashlib.sha256(json.dumps(column.to_pylist()).encode()).hexdigest()


def test_sample_columns_unchanged_by_control_room_additions():
    import pyarrow.parquet as pq

    table = pq.read_table(ROOT / "datasets" / "sample" / "traffic.parquet")
    for name, digest in SAMPLE_COLUMNS_BEFORE_ISSUE_18.items():
        assert _column_digest(table.column(name)) == digest, f"{name} changed"
    # metadata: agent-session rows gained a last key "tool" (= their client); stripping it gives the old bytes
    meta = table.column("metadata").to_pylist()
    agent = [w == "agent-session" for w in table.column("workflow_tag").to_pylist()]
    stripped = []
    for text, is_agent in zip(meta, agent):
        head, sep, tail = text.rpartition(',"tool":"')
        assert bool(sep) == is_agent
        if sep:
            assert tail == json.loads(text)["client"] + '"}'
            text = head + "}"
        stripped.append(text)
    assert hashlib.sha256(json.dumps(stripped).encode()).hexdigest() == METADATA_BEFORE_ISSUE_18


def test_runaway_labels_and_outcomes_come_from_the_generator():
    week = synth.generate_week(days=7, requests=20_000, seed=5)
    traffic, runaway, outcomes = week.traffic, week.runaway_sessions, week.outcomes
    # the same traffic and evals as generate() (their own random stream)
    plain, evals = synth.generate(days=7, requests=20_000, seed=5)
    pd.testing.assert_frame_equal(plain, traffic)
    pd.testing.assert_frame_equal(evals, week.evals)
    # 1 loop per 10k requests, labelled by the generator, each one an agent-session with hundreds of requests
    assert len(runaway) == 2 and set(runaway["workflow_tag"]) == {"agent-session"}
    sizes = traffic.groupby("session_id").size()
    assert (sizes[runaway["session_id"]] >= 300).all()
    assert set(sizes[sizes >= 300].index) == set(runaway["session_id"])
    # outcomes: after the session's last request, never for a runaway session, only the profile's kinds
    assert not set(outcomes["session_id"]) & set(runaway["session_id"])
    last = traffic.groupby("session_id")["timestamp"].max()
    assert (outcomes["timestamp"].to_numpy() > last[outcomes["session_id"]].to_numpy()).all()
    wf = traffic.groupby("session_id")["workflow_tag"].first()[outcomes["session_id"]].to_numpy()
    allowed = {w: set(k) for w, k in PROFILE["outcomes"]["per_session"].items()}
    assert all(kind in allowed[w] for w, kind in zip(wf, outcomes["outcome"]))
    # the chance per session holds (code-review: pr_merged 0.6), within 4 standard errors
    cr = (traffic.groupby("session_id")["workflow_tag"].first() == "code-review")
    n = int(cr.sum())
    got = outcomes[(outcomes["outcome"] == "pr_merged") & outcomes["session_id"].isin(cr[cr].index)]
    assert abs(len(got) / n - 0.6) < 4 * (0.6 * 0.4 / n) ** 0.5
    # the tool metadata key sits on agent-session rows only
    tool = traffic["metadata"].map(lambda m: json.loads(m).get("tool"))
    assert (tool.notna() == (traffic["workflow_tag"] == "agent-session")).all()
    assert set(tool.dropna()) <= {"claude-code", "cursor", "internal-agent"}


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
