"""Pass 1 (:mod:`simulator.facts`): the parts that scale with rows give the facts counted here row by row in Python,
in any chunking. Expectations come from plain Python over the rows (or by hand), never from the code under test."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from simulator.facts import ANY, SAMPLE_K, UNTAGGED, FactsBuilder, smallest_rows

from tests.shared_data import REPO


@pytest.fixture(scope="module")
def traffic():
    from simulator.io.traffic import load_traffic

    return load_traffic([REPO / "datasets" / "sample" / "traffic.parquet"]).frame


def _facts(frame: pd.DataFrame, order: list[int]):
    """Facts of ``frame`` added as ``len(order)`` chunks, in ``order``."""
    builder = FactsBuilder()
    chunks = np.array_split(np.arange(len(frame)), len(order))
    for i in order:
        builder.add(frame.iloc[chunks[i]])
    return builder.finish()


@pytest.mark.parametrize("kind", ["uniform", "ties", "low"])
def test_smallest_rows_hold_each_groups_k_smallest(kind):
    """Checked against a full sort per group: uniform hashes, heavy ties, and hashes far below the cut (skewed)."""
    rng = np.random.default_rng(len(kind))
    for _ in range(60):
        n, k = int(rng.integers(1, 4000)), int(rng.integers(1, 60))
        groups = rng.integers(0, int(rng.integers(1, 25)), n)
        hashes = {"uniform": rng.integers(0, 2**63, n, dtype=np.uint64) * np.uint64(2),
                  "ties": rng.integers(0, 4, n).astype(np.uint64),
                  "low": rng.integers(0, 2**20, n, dtype=np.uint64)}[kind]
        got = smallest_rows(hashes, groups, k)
        assert np.all(np.diff(got) > 0)
        for g in np.unique(groups):
            rows = np.flatnonzero(groups == g)
            first = rows[sorted(range(len(rows)), key=lambda i: (int(hashes[rows[i]]), i))[:k]]
            assert set(first.tolist()) <= set(got.tolist())


def test_token_medians_are_the_medians_of_each_groups_smallest_hashes(traffic):
    """Typical tokens per (workflow, model), workflow and all traffic: the median of the successful requests with the
    SAMPLE_K smallest request-id hashes (ties in row order), sorted here in Python, in any chunking."""
    from simulator.hashing import hash64

    ok = traffic[traffic["status_code"] < 400]
    hashes = hash64(ok["request_id"], 0, "sample").tolist()
    wf = ok["workflow_tag"].astype(object).where(ok["workflow_tag"].notna(), UNTAGGED).tolist()
    model = ok["model"].astype(object).tolist()
    tokens = list(zip(ok["input_tokens"].tolist(), ok["output_tokens"].tolist()))
    groups: dict = {}
    for i in range(len(ok)):
        for key in ((wf[i], model[i]), (wf[i], ANY), (ANY, ANY)):
            groups.setdefault(key, []).append(i)
    expected = {}
    for key, rows in groups.items():
        kept = sorted(rows, key=lambda i: (hashes[i], i))[:SAMPLE_K]
        expected[key] = tuple(int(round(float(np.median([tokens[i][j] for i in kept])))) for j in (0, 1))
    assert any(len(rows) > SAMPLE_K for rows in groups.values())
    for facts in (_facts(traffic, [0]), _facts(traffic, [3, 0, 4, 1, 2])):
        assert facts.token_medians == expected


@pytest.mark.parametrize(("k", "rows"), [(7, 6000), (2000, None)])
def test_prompt_samples_are_each_groups_smallest_keys_in_any_chunking(traffic, monkeypatch, k, rows):
    """The calibration sample per tokenizer family: the distinct (prompt, input_tokens) of the k smallest content
    keys, the first row of equal keys; the prompts per workflow: those of the requests with the k smallest keys (ties
    in row order). Selected here in Python from each row's key, the same in one chunk and in five chunks in any
    order (the builder keeps only a chunk's own k smallest before it makes their text)."""
    import simulator.facts as facts_module
    from simulator.hashing import hash64, mix64
    from simulator.tokens import calibration_families
    from simulator.tokens.translator import Translator

    monkeypatch.setattr(facts_module, "CALIBRATION_K", k)
    monkeypatch.setattr(facts_module, "PROMPT_K", 2 * k)
    registry = Translator().registry
    frame = traffic.iloc[:rows]
    prompt = frame["prompt"].astype(object).tolist()
    tokens = frame["input_tokens"].tolist()
    families = calibration_families(frame, registry).tolist()
    content = mix64(hash64(frame["prompt"], 0, "calibration"), frame["input_tokens"].to_numpy()).tolist()
    calib: dict = {}
    for i, family in enumerate(families):
        if family is not None:
            calib.setdefault(family, {}).setdefault(content[i], i)  # the first row of each key
    request = mix64(hash64(frame["request_id"], 0, "prompts"), hash64(frame["prompt"], 0, "prompts")).tolist()
    workflow = frame["workflow_tag"].astype(object).tolist()
    by_tag: dict = {}
    for i, tag in enumerate(workflow):
        if isinstance(tag, str) and isinstance(prompt[i], str):
            by_tag.setdefault(tag, []).append(i)
    assert any(len(rows) > k for rows in calib.values()) and any(len(rows) > 2 * k for rows in by_tag.values())
    for order in ([0], [3, 0, 4, 1, 2]):
        builder = FactsBuilder(registry, want_prompts=True)
        for i in order:
            builder.add(frame.iloc[np.array_split(np.arange(len(frame)), len(order))[i]])
        assert sorted(builder.calib) == sorted(calib)
        for family, first in calib.items():
            kept = sorted(first)[:k]
            sample = builder.calib[family]
            assert sample.hash.tolist() == kept
            assert sample.values[0].tolist() == [prompt[first[key]] for key in kept]
            assert sample.values[1].tolist() == [tokens[first[key]] for key in kept]
        assert sorted(builder.prompts) == sorted(by_tag)
        for tag, rows in by_tag.items():
            kept = sorted(rows, key=lambda i: (request[i], i))[: 2 * k]
            assert builder.prompts[tag].hash.tolist() == [request[i] for i in kept]
            assert builder.prompts[tag].values[0].tolist() == [prompt[i] for i in kept]


def test_failure_buckets_are_counted_per_model_and_five_minutes(traffic):
    """Failure rate and most common failing status per (model, 5-minute bucket), counted here row by row in Python
    (ties: the lowest status), the same in any chunking."""
    counts: dict = {}
    for model, ts, status in zip(traffic["model"].astype(object), traffic["timestamp"].array.asi8,
                                 traffic["status_code"].tolist()):
        entry = counts.setdefault((model, ts // (5 * 60 * 10**9)), [0, {}])
        entry[0] += 1
        if status >= 400:
            entry[1][status] = entry[1].get(status, 0) + 1
    vocab = sorted(set(traffic["model"].astype(object)))
    expected = {(vocab.index(m), b): (sum(st.values()) / n, min(st, key=lambda s: (-st[s], s)))
                for (m, b), (n, st) in counts.items() if st}
    assert expected  # the sample week has failures
    for facts in (_facts(traffic, [0]), _facts(traffic, [5, 1, 3, 0, 2, 4])):
        assert facts.failure_buckets == expected


def test_failure_buckets_of_a_long_window_with_few_rows():
    """Three requests a year apart (the sparse path): each bucket its own rate, worked out by hand."""
    from simulator.io.traffic import normalize

    raw = pd.DataFrame({"request_id": ["a", "b", "c", "d"], "model": ["openai/gpt-4o"] * 3 + ["openai/gpt-4o-mini"],
                        "timestamp": ["2025-01-01T00:00:00Z", "2025-01-01T00:04:59Z", "2025-12-31T23:59:00Z",
                                      "2025-06-01T12:00:00Z"],
                        "input_tokens": [1, 1, 1, 1], "output_tokens": [1, 1, 1, 1], "status_code": [500, 200, 429, 503]})
    frame, rejects = normalize(raw)
    assert not rejects
    facts = FactsBuilder().add(frame).finish()
    jan, dec, jun = (pd.Timestamp(t).value // (5 * 60 * 10**9) for t in
                     ("2025-01-01T00:00:00Z", "2025-12-31T23:55:00Z", "2025-06-01T12:00:00Z"))
    assert facts.failure_buckets == {(0, jan): (0.5, 500), (0, dec): (1.0, 429), (1, jun): (1.0, 503)}


@pytest.mark.parametrize("chunk_rows", [None, 7])
def test_gather_facts_reads_latencies_only_for_a_median_fallback(tmp_path, chunk_rows):
    """Model b has 4 successful requests with a finite latency (fewer than 20: the fit falls back to their median);
    its failed request and its request without a latency take no part. Model a (30 requests, latency 100 ms + 2 ms
    per output token) keeps its least-squares fit. Medians by hand; the same in one chunk and in chunks of 7."""
    from types import SimpleNamespace

    from simulator.engines.driver import InMemorySource, gather_facts
    from simulator.io.traffic import load_traffic

    rows = [("a", 10 + i, 200, str(100 + 2 * (10 + i))) for i in range(30)]
    rows += [("b", 5, 200, "40"), ("b", 5, 200, "10"), ("b", 5, 503, "1"), ("b", 5, 200, "30"), ("b", 5, 200, ""),
             ("b", 5, 200, "25")]
    lines = ["request_id,timestamp,model,input_tokens,output_tokens,status_code,latency_ms"]
    lines += [f"r{k:02d},2026-11-16T09:{k:02d}:00Z,p/{m},100,{out},{status},{lat}"
              for k, (m, out, status, lat) in enumerate(rows)]
    (tmp_path / "t.csv").write_text("\n".join(lines) + "\n")
    loaded = load_traffic([tmp_path / "t.csv"])
    facts = gather_facts(None, InMemorySource(loaded, chunk_rows), SimpleNamespace(registry=None), False, None)
    code = {m: i for i, m in enumerate(facts.models)}
    assert facts.latency_model[code["p/b"]] == (27.5, 0.0)  # median of 10, 25, 30, 40
    per_request, per_token = facts.latency_model[code["p/a"]]
    assert per_request == pytest.approx(100.0) and per_token == pytest.approx(2.0)


def test_median_fallback_is_the_same_on_the_local_and_streaming_engines(tmp_path):
    """Opus requests downgraded to Haiku take Haiku's latency: its fit falls back to the median of its 4 successful
    requests with a latency (10, 25, 30, 40 ms: 27.5 ms), read in the extra pass on both engines (streaming in
    chunks of 7 rows), so 30 of the 36 requests after the move take 27.5 ms: the p50 after is 27.5 ms."""
    import yaml

    from simulator.api import run
    from simulator.engines.streaming import run_streaming

    opus, haiku = "anthropic-main/claude-opus-4-7", "anthropic-main/claude-haiku-4-5"
    rows = [(opus, 10 + i, 200, str(100 + 2 * (10 + i))) for i in range(30)]
    rows += [(haiku, 5, 200, "40"), (haiku, 5, 200, "10"), (haiku, 5, 503, "1"), (haiku, 5, 200, "30"),
             (haiku, 5, 200, ""), (haiku, 5, 200, "25")]
    lines = ["request_id,timestamp,model,input_tokens,output_tokens,status_code,latency_ms"]
    lines += [f"r{k:02d},2026-11-16T09:{k:02d}:00Z,{m},100,{out},{status},{lat}"
              for k, (m, out, status, lat) in enumerate(rows)]
    (tmp_path / "t.csv").write_text("\n".join(lines) + "\n")
    scenario = tmp_path / "s.yaml"
    scenario.write_text(yaml.safe_dump({
        "schema_version": 1, "name": "m", "traffic": str(tmp_path / "t.csv"), "seed": 1,
        "candidates": [{"name": "down", "rules": [{
            "id": "d", "when": {"models": [opus]}, "type": "weight-based-routing",
            "load_balance_targets": [{"target": haiku, "weight": 100}]}]}]}))
    for summary in (run(scenario).summary, run_streaming(scenario, chunk_rows=7).summary):
        assert summary["policies"][0]["latency_p50_ms_after"] == 27.5
