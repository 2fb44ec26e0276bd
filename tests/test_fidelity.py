"""Decision fidelity (issue 13): accuracy judged on the moved requests, assumption lines that match what the replay
did, one action per group of candidates acting on the same requests, verdicts that flip inside an assumption's
interval, dollar figures on recommendations. Expectations come from hand arithmetic or from the per-request arrays
of the replay (never from the summary fields under test)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from helpers import Captured
from simulator.api import run
from simulator.outputs.gateways import write_gateway_configs
from simulator.outputs.report.content import action_queue, build_document
from simulator.outputs.report.document import to_markdown

REPO = Path(__file__).resolve().parents[1]
OPUS, MINI = "anthropic-main/claude-opus-4-7", "openai-main/gpt-4o-mini"


# -- accuracy on the moved requests ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def bad_move(tmp_path_factory) -> Path:
    """400 classify-intent requests on Opus 4.7; eval samples where gpt-4o-mini (named with its release date, as
    eval files often do) is wrong on 150 of 5,000 samples Opus gets right: -3.0 pp on every moved request."""
    folder = tmp_path_factory.mktemp("bad-move")
    start = pd.Timestamp("2026-11-16", tz="UTC")
    pd.DataFrame({"request_id": [f"r{i:04d}" for i in range(400)],
                  "timestamp": [start + pd.Timedelta(minutes=25 * i) for i in range(400)],
                  "model": OPUS, "input_tokens": 1000, "output_tokens": 20, "status_code": 200,
                  "workflow_tag": "classify-intent"}).to_csv(folder / "traffic.csv", index=False)
    n = 5000
    rows = [{"sample_id": f"s{i}", "model": "claude-opus-4-7", "correct": 1, "workflow_tag": "classify-intent"}
            for i in range(n)]
    rows += [{"sample_id": f"s{i}", "model": "gpt-4o-mini-2024-07-18", "correct": int(i >= 150),
              "workflow_tag": "classify-intent"} for i in range(n)]
    pd.DataFrame(rows).to_csv(folder / "evals.csv", index=False)
    target = lambda weights: [{"target": t, "weight": w} for t, w in weights]  # noqa: E731
    scenario = {"name": "bad-move", "traffic": "traffic.csv", "evals": "evals.csv", "seed": 4,
                "gates": {"max_accuracy_drop_pp": 2},
                "candidates": [
                    {"name": "full", "rules": [{"id": "ci", "when": {"metadata": {"workflow_tag": "classify-intent"}},
                                                "load_balance_targets": target([(MINI, 100)])}]},
                    {"name": "half", "rules": [{"id": "ci", "when": {"metadata": {"workflow_tag": "classify-intent"}},
                                                "load_balance_targets": target([(OPUS, 50), (MINI, 50)])}]}]}
    (folder / "scenario.yaml").write_text(yaml.safe_dump(scenario, sort_keys=False))
    return folder / "scenario.yaml"


def test_half_split_of_a_bad_move_fails_the_gate_like_the_full_move(bad_move):
    result = Captured(bad_move)
    full, half = result.summary["policies"]
    # Date-suffixed eval id matched: the moves have evidence.
    assert full["accuracy"]["coverage_share"] == 1.0 and half["accuracy"]["coverage_share"] == 1.0
    for p in (full, half):
        assert p["accuracy_delta_moved_pp"] == pytest.approx(-3.0)
        gate = next(g for g in p["gates"] if g["name"] == "max_accuracy_drop_pp")
        assert not gate["passed"] and "moved requests" in gate["detail"], gate
    moved = int((result.outcomes[1].changed & ~result.outcomes[1].blocked).sum())
    assert 150 < moved < 250  # about half of 400
    # Traffic-wide, the half split is diluted: -3.0 pp x moved / 400 requests.
    assert half["accuracy_delta_pp"] == pytest.approx(-3.0 * moved / 400)
    assert full["accuracy_delta_pp"] == pytest.approx(-3.0)


def test_report_and_yaml_show_the_moved_figure_with_the_traffic_wide_one(bad_move, tmp_path):
    result = run(bad_move)
    files = write_gateway_configs(result, tmp_path)
    md = to_markdown(build_document(result, json.loads((tmp_path / "routing" / "index.json").read_text())), {})
    half = result.summary["policies"][1]
    moved, wide = half["accuracy_delta_moved_pp"], half["accuracy_delta_pp"]
    assert f"{moved:+.2f} pp (95% CI" in md and "on moved requests" in md and f"{wide:+.2f} pp traffic-wide" in md
    header = next(p for p in files if p.name == "half.truefoundry.yaml").read_text().splitlines()[1]
    assert f"accuracy change {moved:+.2f} pp" in header and f"{wide:+.2f} pp traffic-wide" in header


# -- every example scenario: assumption lines against the replay's own counters; consistent actions ------------------
EXAMPLES = sorted((REPO / "scenarios").glob("*.yaml"))
_METHOD = r"(identity-unknown|identity|partial-exact|exact|calibrated-default|calibrated) \(.*?\) ([\d,]+)"


def _int(text: str) -> int:
    return int(text.replace(",", ""))


@pytest.fixture(scope="module")
def examples():
    return {path.name: Captured(path) for path in EXAMPLES}


def _counters(result, k: int) -> dict:
    """What the replay did to candidate k, from its per-request arrays."""
    p, o = result.prepared, result.outcomes[k]
    moved = o.changed & ~o.blocked
    vocab = np.array(p.vocab, dtype=object)
    methods, counts = np.unique(o.translation[o.changed].astype(str), return_counts=True)
    days = (int(p.ts.max()) - int(p.ts.min())) / 86_400e9
    targets, added = np.unique(vocab[o.model[moved]], return_counts=True)
    return {
        "methods": dict(zip(methods.tolist(), counts.tolist())), "moved": int(moved.sum()),
        "input": (int(o.input_tokens[moved].sum()), int(p.inp[moved].sum())),
        "output": (int(o.output_tokens[moved].sum()), int(p.out[moved].sum())),
        "cache": int((p.cr + p.cw)[moved].sum()), "days": days,
        "targets": dict(zip(targets.tolist(), added.tolist())),
        "recorded": {m: int((p.model == i).sum()) for i, m in enumerate(p.vocab)},
        "failed_attempts": int((o.attempts - (o.status < 400)).clip(min=0).sum()),
        "covered": _covered(result, k),
        "tiers": _tier_counts(o),
        "batch_ineligible": int(o.counts.get("batch_ineligible", 0)),
        "flex_unavailable": int(o.counts.get("flex_unavailable", 0)),
        "cache_tokens": (int(o.cache_read_tokens.sum()), int(o.cache_write_tokens.sum()),
                         int(o.cache_write_1h_tokens.sum())),
    }


def _covered(result, k: int) -> int:
    """Requests a candidate's prompt_caching rules cover: matched on their request conditions and, where models are
    named, on the served or the recorded model; rows that kept their recorded cache tokens are not re-simulated."""
    from simulator.api import resolve_candidates
    from simulator.routing.matching import match

    cand = resolve_candidates(result.scenario)[k]
    p, o = result.prepared, result.outcomes[k]
    served = np.array(p.vocab, dtype=object)[o.model]
    hit = np.zeros(p.n, bool)
    for rule in cand.prompt_caching:
        mask = match(p.view, rule.when.model_copy(update={"models": []}))
        if rule.when.models:
            mask &= np.isin(served, rule.when.models) | np.isin(np.array(p.vocab, dtype=object)[p.model],
                                                                rule.when.models)
        hit |= mask
    kept = ~o.changed & ((p.cr > 0) | (p.cw > 0))
    return int((hit & ~kept).sum())



def _tier_counts(o) -> dict[str, int]:
    """Served, unblocked requests per service tier other than the default (tier codes as in pricing/tiers)."""
    from simulator.pricing.tiers import TIERS

    served = (o.service_tier != 0) & ~o.blocked & (o.status < 400)
    codes, counts = np.unique(o.service_tier[served], return_counts=True)
    return {TIERS[int(code)]: int(n) for code, n in zip(codes, counts)}


def _check_line(line: str, c: dict, policy: dict, cand) -> str:
    """Verify one assumption line against the counters; returns the kind of line (fails on anything else)."""
    if m := re.fullmatch(r"token translation of ([\d,]+) requests served by another model: (.*)", line):
        found = {meth: _int(n) for meth, n in re.findall(_METHOD, m[2])}
        assert found == c["methods"] and _int(m[1]) == sum(c["methods"].values()), (line, c["methods"])
        return "translation"
    if m := re.fullmatch(r"input tokens of the ([\d,]+) moved requests: x([\d.]+) on their targets "
                         r"\(([\d,]+) from ([\d,]+) recorded\)", line):
        after, before = c["input"]
        assert (_int(m[1]), _int(m[3]), _int(m[4])) == (c["moved"], after, before), line
        assert float(m[2]) == pytest.approx(after / before, abs=5e-4), line
        return "input"
    if m := re.fullmatch(r"output tokens of the ([\d,]+) moved requests: x([\d.]+) \(([\d,]+) from ([\d,]+) "
                         r"recorded\), scaled like the input by the tokenizer ratio(.*)", line):
        after, before = c["output"]
        assert (_int(m[1]), _int(m[3]), _int(m[4])) == (c["moved"], after, before), line
        assert float(m[2]) == pytest.approx(after / before, abs=5e-4), line
        assert ("eval output-length ratio" in m[5]) == (cand.output_tokens == "eval-ratio"), line
        return "output"
    if m := re.fullmatch(r"cold cache on the targets: ([\d,]+) recorded cache-read/write tokens of moved requests "
                         r"are billed as plain input", line):
        assert _int(m[1]) == c["cache"] > 0 and not cand.prompt_caching, line
        return "cold-cache"
    if m := re.fullmatch(r"latency of the ([\d,]+) moved requests: each target's fit on its recorded traffic "
                         r"\(ms per request \+ ms per output token\), static over the window", line):
        assert _int(m[1]) == c["moved"], line
        return "latency"
    if m := re.fullmatch(r"provider rate limits at the new volume are not modelled: `(.+)` receives ([\d,]+) more "
                         r"requests(?:, \+(\d+)% of the ([\d,]+) it served in the recording|, which served none in "
                         r"the recording)", line):
        assert _int(m[2]) == c["targets"][m[1]], line
        before = c["recorded"].get(m[1], 0)
        if m[3] is None:
            assert before == 0, line
        else:
            assert _int(m[4]) == before and int(m[3]) == round(100 * c["targets"][m[1]] / before), line
        return "rate-limit:" + m[1]
    if m := re.fullmatch(r"prompt caching simulated per serving model for ([\d,]+) requests; a switched model "
                         r"starts cold", line):
        assert _int(m[1]) == c["covered"] and cand.prompt_caching, line
        return "caching"
    if m := re.fullmatch(r"prompt caching rule (\d+) \((.+?), (.+?)\): ([\d,]+) requests, ([\d,]+) cache-read "
                         r"tokens, ([\d,]+) cache-write tokens \(of which ([\d,]+) written with a 1-hour TTL\), "
                         r"priced by the model's dated cache rules"
                         r"(?:; cached-content storage \$[\d,.]+ billed per token-hour)?", line):
        rule = cand.prompt_caching[int(m[1]) - 1]
        assert m[2] == (rule.mode or "provider default"), line
        assert (m[3] == f"TTL {rule.ttl}") != bool(rule.breakpoints), line
        tokens = (_int(m[5]), _int(m[6]), _int(m[7]))
        assert all(t <= total for t, total in zip(tokens, c["cache_tokens"])), (line, c["cache_tokens"])
        assert tokens[2] <= tokens[1], line  # 1-hour writes are part of the writes
        return f"caching-rule:{_int(m[4])}"
    if m := re.fullmatch(r"(batch|flex|priority): prices of the \1 tier for ([\d,]+) requests recorded on the default "
                         r"tier \((.+?)\); (.*)", line):
        assert _int(m[2]) == c["tiers"].get(m[1], 0) > 0, (line, c["tiers"])
        assert ("left out of the latency percentiles" in m[4]) == (m[1] == "batch"), line
        return "tier:" + m[1]
    if m := re.fullmatch(r"([\d,]+) requests matched a batch rule but are interactive \(.*\): kept on the default "
                         r"tier", line):
        assert _int(m[1]) == c["batch_ineligible"] > 0, line
        return "batch-ineligible"
    if m := re.fullmatch(r"flex: ([\d,]+) requests refused with 429 and served on the default tier \(([\d.]+)% "
                         r"service_tiers.flex_unavailable_rate; the provider publishes no rate\)", line):
        assert _int(m[1]) == c["flex_unavailable"], line
        return "flex-unavailable"
    if m := re.fullmatch(r"([\d,]+) requests served in the recording fail in the candidate \(unserved, \$([\d,.]+) "
                         r"recorded cost\): not counted as savings", line):
        assert _int(m[1]) == policy["requests_unserved"], line
        return "unserved"
    if m := re.fullmatch(r"([\d,]+) requests recorded as failed and served by the candidate are priced from their "
                         r"workflow's median tokens on the target \(imputed\)", line):
        assert _int(m[1]) == policy["requests_imputed"], line
        return "imputed"
    if m := re.fullmatch(r"([\d,]+) failed attempts billed: input tokens at the attempted model's price", line):
        assert _int(m[1]) == c["failed_attempts"] and cand.bill_failed_attempts, line
        return "billed"
    if line == "budgets and rate limits are checked against the executed model, in fixed UTC windows":
        assert cand.budgets or cand.rate_limits, line
        return "budgets"
    if m := re.fullmatch(r"accuracy from ([\d,]+) paired eval samples covering ([\d.]+)% of the moved requests, "
                         r"reweighted to the production workflow mix", line):
        assert _int(m[1]) == policy["accuracy"]["n_paired"], line
        return "accuracy"
    if m := re.fullmatch(r"monthly figures scale the ([\d,.]+)-day window ([\d,.]+)x to 30 days(; the window is "
                         r"shorter than a week, so it holds no full weekly pattern)?", line):
        assert float(m[1].replace(",", "")) == pytest.approx(c["days"], abs=0.005), line
        assert float(m[2].replace(",", "")) == pytest.approx(30 / c["days"], rel=1e-3, abs=0.005), line
        assert (m[3] is not None) == (c["days"] < 6.9), line
        return "window"
    raise AssertionError(f"assumption line with no check (add one, or fix the line): {line!r}")


@pytest.mark.slow
@pytest.mark.parametrize("name", [p.name for p in EXAMPLES])
def test_every_assumption_line_matches_the_replay(examples, name):
    result = examples[name]
    from simulator.api import resolve_candidates

    cands = resolve_candidates(result.scenario)
    for k, (policy, cand) in enumerate(zip(result.summary["policies"], cands)):
        c = _counters(result, k)
        kinds = [_check_line(line, c, policy, cand) for line in policy["assumptions"]]
        assert "window" in kinds
        assert {f"tier:{t}" for t in c["tiers"]} <= set(kinds), kinds  # every tier a request moved to is stated
        if cand.prompt_caching and c["covered"]:  # the rules' lines account for every covered request
            assert sum(int(k.split(":")[1]) for k in kinds if k.startswith("caching-rule:")) == c["covered"], kinds
        if c["moved"]:  # what a move assumes is always stated
            assert {"input", "output", "latency"} <= set(kinds), kinds
            assert {f"rate-limit:{t}" for t in c["targets"]} <= set(kinds), kinds
            if c["cache"] and not cand.prompt_caching:
                assert "cold-cache" in kinds
        if c["methods"]:
            assert "translation" in kinds


@pytest.mark.slow
@pytest.mark.parametrize("name", [p.name for p in EXAMPLES])
def test_no_apply_contradicts_another(examples, name, tmp_path):
    result = examples[name]
    from simulator.api import resolve_candidates

    write_gateway_configs(result, tmp_path)
    index = json.loads((tmp_path / "routing" / "index.json").read_text())
    actions = action_queue(result.summary, {"drift_flagged": [], "rows_rejected": 0}, index)
    applied = [re.match(r"Apply `([^`]+)`", a)[1] for a in actions if a.startswith("Apply `")]
    policies = {p["name"]: p for p in result.summary["policies"]}
    cands = {c.name: c for c in resolve_candidates(result.scenario)}

    def moved_workflows(name: str) -> set:
        return {r["workflow_tag"] for r in policies[name]["breakdowns"]["workflow_tag"] if r["requests_changed"]}

    def whens(name: str) -> set:
        c = cands[name]
        return {json.dumps(x.when.model_dump(mode="json"), sort_keys=True)
                for x in [*c.rules, *c.budgets, *c.rate_limits, *c.prompt_caching]}

    for name in applied:
        p = policies[name]
        assert all(g["passed"] for g in p["gates"]), name
        assert f"{name}.truefoundry.yaml" in index[name]["files"], name  # never Apply without a config file
        assert not any(s["flips"] for s in p["sensitivity"]), name
    for i, a in enumerate(applied):
        for b in applied[i + 1:]:
            assert not (moved_workflows(a) & moved_workflows(b)), (a, b)
            assert not (whens(a) & whens(b)), (a, b)


def test_premium_review_applies_one_classify_intent_candidate_and_names_the_other(examples):
    result = examples["premium-review.yaml"]
    actions = action_queue(result.summary, {"drift_flagged": [], "rows_rejected": 0},
                           {p["name"]: {"files": [f"{p['name']}.truefoundry.yaml"]} for p in result.summary["policies"]})
    applies = [a for a in actions if a.startswith("Apply `")]
    assert len(applies) == 1 and applies[0].startswith("Apply `classify-intent-to-haiku`")
    assert "alternatives for the same requests: `classify-intent-ab-10pct`" in applies[0]
    assert any(a.startswith("Hold `code-review-to-haiku`") for a in actions)


def test_seed_example_caching_verdict_flips_inside_the_tokenizer_range(examples):
    """Opus 4.7 -> Haiku 4.5 with a 5,000-token system prompt: at the shipped ratio 1.304 the prompt is
    round(5000 / 1.304) = 3,834 Haiku tokens, below Haiku's 4,096 minimum; at the stated range's low end (ratio
    1.0) it is 5,000 tokens and cacheable. The report shows both outcomes and never applies the caching candidate."""
    result = examples["seed-worked-example.yaml"]
    policy = next(p for p in result.summary["policies"] if p["name"] == "to-haiku-then-cache")
    cache = next(s for s in policy["sensitivity"] if s["kind"] == "caching")
    assert cache["flips"] == ["caching verdict"]
    assert cache["caching"]["used"]["cacheable_requests"] == 0
    assert cache["caching"]["used"]["below_minimum_requests"] == 28_000
    assert cache["caching"]["high_token_counts"]["cacheable_requests"] == 28_000
    k = [p["name"] for p in result.summary["policies"]].index("to-haiku")
    o, p = result.outcomes[k], result.prepared
    assert set(np.unique(np.rint(p.traffic.frame["prefix_tokens"].to_numpy() * o.input_tokens / p.inp))) <= \
        {3833, 3834, 3835}
    md = to_markdown(build_document(result, {}), {})
    assert "**Sensitivity: check before applying**" in md and "the caching verdict changes" in md
    assert "Apply `to-haiku-then-cache`" not in md


# -- the window warning and the action queue on hand-made summaries ----------------------------------------------------
def _policy(name: str, saving: float, *, scope=("workflow:w",), gates=True, flips=(), changes=("rules",)) -> dict:
    return {"name": name, "monthly_savings_usd": saving, "monthly_savings_ci95": [saving * 0.8, saving * 1.2],
            "gates": [{"name": "min_monthly_savings_usd", "passed": gates, "detail": "d"}],
            "sensitivity": [{"kind": "gates", "flips": list(flips), "monthly_savings_usd": {
                "low_token_counts": saving * 1.1, "used": saving, "high_token_counts": saving * 0.9}}],
            "scope": list(scope), "changes": list(changes), "requests_changed": 10, "accuracy_delta_pp": 0.0,
            "accuracy_delta_moved_pp": 0.0, "accuracy_delta_moved_ci95": [-1.0, 1.0], "breakdowns": {}}


def _files(*names):
    return {n: {"files": [f"{n}.truefoundry.yaml"]} for n in names}


def test_action_queue_one_action_per_scope_and_never_apply_without_config():
    dq = {"drift_flagged": [], "rows_rejected": 0}
    summary = {"policies": [_policy("a", 100.0), _policy("b", 300.0), _policy("c", 50.0, scope=("workflow:x",))]}
    actions = action_queue(summary, dq, _files("a", "b"))
    assert actions[0].startswith("Apply `b`") and "alternatives for the same requests: `a` ($100.00/month" in actions[0]
    assert actions[1].startswith("Configure `c` by hand")  # no config file: never "Apply"
    # The best saver fails a gate: the best passing one is applied, the failing one named as an alternative.
    summary = {"policies": [_policy("a", 100.0), _policy("b", 300.0, gates=False)]}
    actions = action_queue(summary, dq, _files("a", "b"))
    assert actions[0].startswith("Apply `a`") and "`b` ($300.00/month, gate min_monthly_savings_usd failed)" in actions[0]
    # A verdict that flips inside an assumption's interval: Check, not Apply.
    summary = {"policies": [_policy("a", 100.0, flips=["gate min_monthly_savings_usd"])]}
    actions = action_queue(summary, dq, _files("a"))
    assert actions[0].startswith("Check `a` before applying") and "$90.00 at the high end" in actions[0]
    # Caching only: set in the application.
    summary = {"policies": [_policy("a", 100.0, changes=("prompt_caching",))]}
    assert action_queue(summary, dq, {})[0].startswith("Enable prompt caching for `a` in the application")


def test_window_warning_in_the_headline_above_10x():
    from simulator.summary.assumptions import window_warning

    assert window_warning(7.0) is None and window_warning(3.0) is None  # 10x exactly: no warning
    text = window_warning(17 / 1440)  # a 17-minute trace
    assert "0.28 hours" in text and f"{30 / (17 / 1440):,.0f}x" in text


# -- sensitivity of a gate, and dollar figures on recommendations --------------------------------------------------------
def test_gate_sensitivity_by_hand():
    from simulator.summary.sensitivity import gate_sensitivity

    # Window: baseline $100, candidate $60 over 7 days -> $171.43/month saved, gate "at least $150/month" passes.
    # The moved requests cost $30 on the target; at the ends of their translation intervals $27 and $39.
    policy = {"cost_usd": 60.0, "monthly_savings_usd": 40 * 30 / 7,
              "gates": [{"name": "min_monthly_savings_usd", "passed": True, "detail": ""}]}
    evaluate = lambda rec: [{"name": "min_monthly_savings_usd", "passed": rec["monthly_savings_usd"] >= 150}]  # noqa
    out = gate_sensitivity(policy, {"cost_usd": 30.0, "cost_low_usd": 27.0, "cost_high_usd": 39.0}, 60.0, 100.0, 7.0,
                           evaluate)
    assert out["monthly_savings_usd"]["high_token_counts"] == pytest.approx(31 * 30 / 7)  # 132.86: fails
    assert out["monthly_savings_usd"]["low_token_counts"] == pytest.approx(43 * 30 / 7)  # 184.29: passes
    assert out["flips"] == ["gate min_monthly_savings_usd"]
    assert out["gates"]["min_monthly_savings_usd"] == {"low_token_counts": True, "used": True,
                                                       "high_token_counts": False}
    # No interval on the moved cost: nothing to report.
    assert gate_sensitivity(policy, {"cost_usd": 30.0, "cost_low_usd": 30.0, "cost_high_usd": 30.0}, 60.0, 100.0,
                            7.0, evaluate) is None


def test_recommend_reports_the_dollar_figure_of_each_move(tmp_path):
    from simulator.cli.recommend import recommend_scenario, recommend_text

    # 70 gpt-4o requests of workflow w (1,000 input and 100 output tokens each) over 6 days, plus one gpt-4o-mini
    # request of another workflow (so the traffic knows its gateway id); gpt-4o-mini is as good on 200 paired samples.
    # Same tokenizer (identity): each moved request saves 1000 x (2.50 - 0.15) / 1e6 + 100 x (10.00 - 0.60) / 1e6 =
    # $0.00329 (list prices per million); x 70 requests x 30 / 6 days.
    start = pd.Timestamp("2026-11-16", tz="UTC")
    frame = pd.DataFrame({"request_id": [f"r{i}" for i in range(71)],
                          "timestamp": [start + pd.Timedelta(hours=144 * i / 69) for i in range(70)] + [start],
                          "model": ["openai-main/gpt-4o"] * 70 + ["openai-main/gpt-4o-mini"], "input_tokens": 1000,
                          "output_tokens": 100, "status_code": 200, "workflow_tag": ["w"] * 70 + ["other"]})
    frame.to_csv(tmp_path / "traffic.csv", index=False)
    rows = [{"sample_id": f"s{i}", "model": m, "correct": 1, "workflow_tag": "w"}
            for i in range(200) for m in ("gpt-4o-2024-08-06", "gpt-4o-mini-2024-07-18")]
    pd.DataFrame(rows).to_csv(tmp_path / "evals.csv", index=False)
    (tmp_path / "s.yaml").write_text(yaml.safe_dump({"name": "rec", "traffic": "traffic.csv", "evals": "evals.csv"}))
    report = recommend_scenario(tmp_path / "s.yaml", 2.0)
    text = recommend_text(report)
    days = 144 / 24
    expected = 70 * (1000 * (2.50 - 0.15) + 100 * (10.00 - 0.60)) / 1e6 * 30 / days
    assert f"w: openai-main/gpt-4o -> openai-main/gpt-4o-mini: saves ${expected:,.2f}/month (70 requests)" in text
    assert f"the recommendation saves ${expected:,.2f}/month" in text
    assert report["monthly_savings_usd"] == pytest.approx(expected, abs=0.01)
    assert [(m["target"], m["requests"]) for m in report["moves"] if m["target"]] == [("openai-main/gpt-4o-mini", 70)]
    from click.testing import CliRunner

    from simulator.cli import cli

    out = CliRunner().invoke(cli, ["recommend", str(tmp_path / "s.yaml"), "--json"])
    assert out.exit_code == 0, out.output
    printed = json.loads(out.stdout)
    assert printed["schema_version"] == 1 and printed["monthly_savings_usd"] == round(expected, 2)
    assert printed["candidate"] == report["candidate"]
