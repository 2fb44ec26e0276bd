"""Gateway configs: TrueFoundry field names and types (expected dicts written by hand from gateway-formats.md),
read-back errors, the round trip (written file -> candidate -> identical simulated results), LiteLLM and Portkey.
The real consumers (truefoundry SDK models, litellm.Router, the Portkey gateway) are exercised in
tests/test_gateway_consumers.py."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from conftest import REPO, SMALL_TRAFFIC
from helpers import scenario
from simulator.api import run
from simulator.errors import ScenarioError
from simulator.outputs.gateways import truefoundry
from simulator.outputs.gateways.litellm import to_litellm
from simulator.outputs.gateways.portkey import to_portkey
from simulator.routing.truefoundry_config import candidate_from_config
from simulator.routing.scenario import load_scenario, parse_scenario
from simulator.outputs.requests import RequestsWriter
from simulator.outputs.writer import write_run

GPT4O, MINI, HAIKU, OPUS = ("openai-main/gpt-4o", "openai-main/gpt-4o-mini", "anthropic-main/claude-haiku-4-5",
                            "anthropic-main/claude-opus-4-7")


def one(candidate: dict):
    return scenario([candidate]).candidates[0]


def to_truefoundry(cand, **kwargs) -> list[dict]:
    return [m for _, m, _ in truefoundry.manifests(cand, **kwargs)]


def render_truefoundry(cand, scenario_name, figures=None, **kwargs) -> dict[str, str]:
    return truefoundry.render(cand, scenario_name, figures, **kwargs)


def test_virtual_model_fields_and_types():
    cand = one({"name": "vm", "rules": [{
        "id": "triage", "when": {"models": ["support-routing/triage-chat"]},
        "sticky_routing": {"ttl_seconds": 7200, "session_identifiers": [{"source": "metadata", "key": "conversation_id"}]},
        "load_balance_targets": [{"target": "anthropic-prod/claude-sonnet", "weight": 70},
                                 {"target": "openai-prod/gpt-4o-mini", "weight": 30,
                                  "fallback_status_codes": [429, 503]}]}]})
    assert to_truefoundry(cand) == [{
        "type": "provider-account/virtual-model",
        "name": "support-routing",
        "integrations": [{
            "type": "integration/model/virtual",
            "name": "triage-chat",
            "model_types": ["chat"],
            "routing_config": {
                "type": "weight-based-routing",
                "sticky_routing": {"ttl_seconds": 7200,
                                   "session_identifiers": [{"source": "metadata", "key": "conversation_id"}]},
                "load_balance_targets": [
                    {"target": "anthropic-prod/claude-sonnet", "weight": 70},
                    {"target": "openai-prod/gpt-4o-mini", "weight": 30, "fallback_status_codes": ["429", "503"]},
                ]}}]}]


def test_served_model_is_not_turned_into_a_virtual_model():
    cand = one({"name": "c", "rules": [{"id": "r", "when": {"models": ["support-routing/triage-chat"]},
                                         "load_balance_targets": [{"target": MINI}]}]})
    manifests = to_truefoundry(cand, known_models={"support-routing/triage-chat"})
    assert manifests[0]["type"] == "gateway-load-balancing-config"


def test_load_balancing_budget_and_rate_limit_fields_and_types():
    cand = one({
        "name": "mixed.v2",
        "rules": [{"id": "downgrade_batch", "type": "priority-based-routing",
                   "when": {"subjects": ["team:data-eng"], "models": ["gpt-4o"], "metadata": {"workflow": "nightly"}},
                   "load_balance_targets": [
                       {"target": MINI, "priority": 0,
                        "retry_config": {"attempts": 3, "delay": 200, "on_status_codes": [429, 503]}},
                       {"target": GPT4O, "priority": 1, "fallback_candidate": False}]}],
        "budgets": [{"id": "proj-cap", "when": {"metadata": {"project": "helpdesk"}}, "limit_to": 4000,
                     "unit": "cost_per_month", "budget_applies_per": ["project"], "audit_mode": True}],
        "rate_limits": [{"id": "per-user", "limit_to": 60, "unit": "requests_per_minute",
                         "rate_limit_applies_per": ["user", "model"]}],
    })
    routing, budgets, limits = to_truefoundry(cand)
    assert routing == {
        "name": "tfysim-mixed-v2",
        "type": "gateway-load-balancing-config",
        "rules": [{
            "id": "downgrade-batch",  # gateway rule ids have no '_'
            "type": "priority-based-routing",
            "when": {"subjects": ["team:data-eng"], "models": ["gpt-4o"], "metadata": {"workflow": "nightly"}},
            "load_balance_targets": [
                {"target": MINI, "priority": 0,
                 "retry_config": {"attempts": 3, "delay": 200, "on_status_codes": ["429", "503"]}},
                {"target": GPT4O, "priority": 1, "fallback_candidate": False}]}]}
    assert budgets == {"name": "tfysim-mixed-v2-budgets", "type": "gateway-budget-config", "rules": [{
        "id": "proj-cap", "when": {"metadata": {"project": "helpdesk"}}, "limit_to": 4000.0, "unit": "cost_per_month",
        "budget_applies_per": ["metadata.project"], "audit_mode": True}]}
    assert isinstance(budgets["rules"][0]["limit_to"], float)
    assert limits == {"name": "tfysim-mixed-v2-rate-limits", "type": "gateway-rate-limiting-config", "rules": [{
        "id": "per-user", "when": {}, "limit_to": 60, "unit": "requests_per_minute",
        "rate_limit_applies_per": ["user", "model"]}]}


def test_yaml_text_quotes_status_codes_and_carries_the_figures():
    cand = one({"name": "c", "rules": [{"id": "r", "when": {"models": [GPT4O]}, "load_balance_targets": [
        {"target": MINI, "weight": 50, "fallback_status_codes": ["429"]}, {"target": HAIKU, "weight": 50}]}]})
    texts = render_truefoundry(cand, "weekly", {"monthly_savings_usd": 1234.5, "monthly_savings_ci95": [1000.0, 1500.0],
                                                "accuracy_delta_pp": -0.4, "accuracy_delta_ci95": [-1.1, 0.3],
                                                "accuracy_delta_moved_pp": -1.6,
                                                "accuracy_delta_moved_ci95": [-4.4, 1.2], "requests_changed": 25})
    text = texts["routing"]
    assert "- '429'" in text
    header = [line for line in text.splitlines() if line.startswith("#")]
    assert "scenario 'weekly'" in header[0]
    assert "$1,234.50 (95% CI $1,000.00 to $1,500.00)" in header[1]
    # The moved-request figure leads; the traffic-wide one is beside it, both labelled.
    assert "accuracy change -1.60 pp (95% CI -4.40 to +1.20) on moved requests; -0.40 pp traffic-wide" in header[1]
    loaded = yaml.safe_load(text)
    assert loaded["rules"][0]["load_balance_targets"][0]["fallback_status_codes"] == ["429"]


def test_weights_not_summing_to_100_are_an_error_with_a_rescaled_example():
    from simulator.errors import ScenarioError

    with pytest.raises(ScenarioError) as info:
        one({"name": "c", "rules": [{"id": "r", "when": {"models": [OPUS]}, "load_balance_targets": [
            {"target": HAIKU, "weight": 80}, {"target": OPUS, "weight": 30}]}]})
    # 80 * 100 / 110 = 72.7 -> 73, and 100 - 73 = 27
    assert "rule 'r': target weights sum to 110, not 100 (the gateway splits by percent); e.g. 73/27 instead " \
           "of 80/30." in str(info.value)


# -- reading back ------------------------------------------------------------------------------------------------
def _bare(name="c"):
    return one({"name": name})


@pytest.mark.parametrize("text, message", [
    ("type: gateway-load-balancing-confg\nname: x\nrules: []\n", "Did you mean 'gateway-load-balancing-config'?"),
    ("name: x\nrules: []\n", "type: required key is missing"),
    ("type: gateway-load-balancing-config\nname: x\nrulez: []\n", "unknown key 'rulez'. Did you mean 'rules'?"),
    ("type: gateway-load-balancing-config\nname: x\nrules:\n- id: a\n  load_balance_targets:\n"
     "  - {target: openai-main/gpt-4o, weight: 150}\n", "rules[0]: load_balance_targets[0].weight"),
    ("type: gateway-budget-config\nname: b\nrules: []\n---\ntype: gateway-rate-limiting-config\nname: r\nrules: []\n",
     "one manifest per file"),
    ("type: provider-account/virtual-model\nname: g\nintegrations: []\n", "integrations: expected a non-empty list"),
    ("- a\n- b\n", "expected one YAML mapping"),
])
def test_bad_config_files_give_one_line_errors(tmp_path, text, message):
    path = tmp_path / "bad.truefoundry.yaml"
    path.write_text(text)
    with pytest.raises(ScenarioError) as exc:
        candidate_from_config(_bare(), path)
    assert message in str(exc.value)
    assert str(path) in str(exc.value)
    assert "\n" not in str(exc.value)


def test_missing_config_file(tmp_path):
    with pytest.raises(ScenarioError, match="file not found"):
        candidate_from_config(_bare(), tmp_path / "nope.yaml")


def test_inline_rules_and_a_config_file_are_ambiguous(tmp_path):
    cand = one({"name": "c", "rules": [{"id": "r", "load_balance_targets": [{"target": MINI}]}]})
    with pytest.raises(ScenarioError, match="not both"):
        candidate_from_config(cand, tmp_path / "x.yaml")


def test_reads_the_documented_legacy_example(tmp_path):
    path = tmp_path / "acme.yaml"
    path.write_text(
        "name: acme-routing\ntype: gateway-load-balancing-config\nrules:\n  - id: downgrade-batch-jobs\n"
        "    type: priority-based-routing\n    when:\n      subjects: [team:data-eng, virtual-account:etl]\n"
        "      models: [gpt-4o]\n      metadata: {workflow: nightly-summaries}\n    load_balance_targets:\n"
        "      - {target: openai-main/gpt-4o-mini, priority: 0}\n      - {target: openai-main/gpt-4o, priority: 1}\n")
    cand = candidate_from_config(_bare(), path)
    rule = cand.rules[0]
    assert rule.id == "downgrade-batch-jobs" and rule.type == "priority-based-routing"
    assert rule.when.subjects == ["team:data-eng", "virtualaccount:etl"]
    assert [t.target for t in rule.load_balance_targets] == [MINI, GPT4O]
    assert cand.truefoundry_config is None


# -- round trip --------------------------------------------------------------------------------------------------
def _virtual_traffic(tmp_path: Path) -> Path:
    frame = pd.read_csv(SMALL_TRAFFIC)
    frame.loc[frame["model"] == GPT4O, "requested_model"] = "support-routing/triage-chat"
    path = tmp_path / "virtual_traffic.csv"
    frame.to_csv(path, index=False)
    return path


def inline_scenarios(tmp_path: Path) -> list:
    virtual = _virtual_traffic(tmp_path)
    common = {"traffic": str(SMALL_TRAFFIC), "seed": 7}
    return [
        parse_scenario({**common, "name": "rt-routing", "candidates": [
            {"name": "downgrade", "rules": [{"id": "ci_rule", "when": {"models": [GPT4O],
                                                                        "metadata": {"workflow_tag": "classify-intent"}},
                                             "load_balance_targets": [{"target": MINI}]}]},
            {"name": "split", "rules": [{"id": "opus", "when": {"models": [OPUS]}, "load_balance_targets": [
                {"target": HAIKU, "weight": 75}, {"target": OPUS, "weight": 25, "fallback_status_codes": ["429"]}]}]},
            {"name": "priority", "rules": [
                {"id": "a", "type": "priority-based-routing", "when": {"subjects": ["team:search"], "models": [GPT4O]},
                 "load_balance_targets": [{"target": MINI, "priority": 0, "retry_config": {"attempts": 1}},
                                          {"target": HAIKU, "priority": 1}]},
                {"id": "b", "when": {"models": ["claude-opus-4-7"]},
                 "load_balance_targets": [{"target": HAIKU, "weight": 100, "metadata_match": {"project": "helpdesk"}},
                                          {"target": OPUS, "weight": 0}]}]},
        ]}, "inline.yaml", tmp_path),
        parse_scenario({**common, "name": "rt-limits", "candidates": [
            {"name": "capped", "budgets": [
                {"id": "cap", "when": {"metadata": {"project": "helpdesk"}}, "limit_to": 0.02, "unit": "cost_per_day",
                 "budget_applies_per": ["project"], "on_exceed": {"fallback": MINI}},
                {"id": "team-cap", "limit_to": 0.01, "unit": "cost_per_week", "budget_applies_per": ["team"]}],
             "rate_limits": [{"id": "rpm", "when": {"models": [GPT4O]}, "limit_to": 1, "unit": "requests_per_hour",
                              "rate_limit_applies_per": ["user"], "fallback": MINI}]},
            {"name": "both", "rules": [{"id": "r", "when": {"models": [GPT4O]},
                                        "load_balance_targets": [{"target": MINI}]}],
             "rate_limits": [{"id": "rph", "limit_to": 2, "unit": "requests_per_hour"}]},
        ]}, "inline.yaml", tmp_path),
        parse_scenario({"traffic": str(virtual), "seed": 3, "name": "rt-virtual", "candidates": [
            {"name": "vm", "rules": [{"id": "triage", "when": {"models": ["support-routing/triage-chat"]},
                                      "sticky_routing": {"ttl_seconds": 3600},
                                      "load_balance_targets": [{"target": MINI, "weight": 60},
                                                               {"target": HAIKU, "weight": 40}]}]},
        ]}, "inline.yaml", tmp_path),
    ]


def example_scenarios() -> list[Path]:
    return sorted((REPO / "scenarios").glob("*.yaml"))


def _round_trip(sc, out: Path) -> int:
    seen_first, seen_second = RequestsWriter(), RequestsWriter()
    first = run(sc, observers=[seen_first])
    write_run(first, out)
    routing = out / "routing"
    candidates, checked = [], 0
    for cand in sc.candidates:
        path = routing / f"{cand.name}.truefoundry.yaml"
        if not path.exists():
            candidates.append(cand)  # nothing to apply (no rules, budgets or rate limits)
            continue
        checked += 1
        assert not any("tfysim-extension" in p.read_text() for p in routing.glob(f"{cand.name}*.yaml"))
        bare = cand.model_copy(update={"rules": [], "budgets": [], "rate_limits": [], "truefoundry_config": str(path)})
        if cand.truefoundry_config is None:  # fallbacks read back as written in the scenario, nothing added
            back = candidate_from_config(bare.model_copy(update={"truefoundry_config": None}), path)
            assert [(b.id, b.on_exceed, b.audit_mode) for b in back.budgets] == [
                (b.id, b.on_exceed, b.audit_mode) for b in cand.budgets]
            assert [(r.id, r.fallback) for r in back.rate_limits] == [(r.id, r.fallback) for r in cand.rate_limits]
            assert len(back.rules) == len(cand.rules)
        candidates.append(bare)
    second = run(sc.model_copy(update={"candidates": candidates}), observers=[seen_second])
    assert second.summary["policies"] == first.summary["policies"]
    for a, b in zip(seen_first.files(), seen_second.files()):
        fa, fb = pd.read_parquet(a), pd.read_parquet(b)
        assert a.name == b.name
        assert fa["model"].tolist() == fb["model"].tolist() and np.array_equal(fa["cost_usd"], fb["cost_usd"])
    return checked


def test_round_trip_reproduces_inline_scenarios(tmp_path):
    checked = sum(_round_trip(sc, tmp_path / sc.name) for sc in inline_scenarios(tmp_path))
    assert checked == 6
    assert (tmp_path / "rt-virtual" / "routing" / "vm.truefoundry.yaml").read_text().count(
        "type: provider-account/virtual-model") == 1
    routing = tmp_path / "rt-limits" / "routing"
    texts = [p.read_text() for p in sorted(routing.glob("capped*.yaml"))]
    assert len(texts) == 3 and not any("tfysim-extension" in t for t in texts)
    rules = yaml.safe_load((routing / "capped.truefoundry.yaml").read_text())["rules"]
    # budget 'cap' (no model condition) covers every recorded model but its fallback; 'rpm' covers gpt-4o only
    assert [r["id"] for r in rules][-1] == "rpm-fallback-0" and rules[-1]["when"] == {"models": [GPT4O]}


@pytest.mark.parametrize("path", example_scenarios(), ids=lambda p: p.name)
def test_round_trip_reproduces_example_scenarios(tmp_path, path):
    _round_trip(load_scenario(path), tmp_path / "out")


def test_diff_against_the_current_config(tmp_path):
    current = tmp_path / "current.yaml"
    current.write_text("name: prod-routing\ntype: gateway-load-balancing-config\nrules:\n- id: opus\n"
                       "  type: weight-based-routing\n  when:\n    models:\n    - anthropic-main/claude-opus-4-7\n"
                       "  load_balance_targets:\n  - target: anthropic-main/claude-opus-4-7\n    weight: 100\n")
    sc = parse_scenario({"name": "d", "traffic": str(SMALL_TRAFFIC), "baseline": {"truefoundry_config": str(current)},
                         "candidates": [{"name": "split", "rules": [{"id": "opus", "when": {"models": [OPUS]},
                                                                      "load_balance_targets": [
                                                                          {"target": HAIKU, "weight": 100}]}]}]},
                        "d.yaml", tmp_path)
    write_run(run(sc), tmp_path / "out")
    diff = (tmp_path / "out" / "routing" / "split.diff").read_text()
    # The proposal keeps the current config's name, so applying it replaces the current routing.
    assert "-  - target: anthropic-main/claude-opus-4-7\n" in diff
    assert "+  - target: anthropic-main/claude-haiku-4-5\n" in diff
    assert "name: prod-routing" in (tmp_path / "out" / "routing" / "split.truefoundry.yaml").read_text()
    assert diff.startswith("--- current/current.yaml\n+++ proposed/split.truefoundry.yaml\n")


# -- LiteLLM and Portkey -----------------------------------------------------------------------------------------
WEIGHTED = {"name": "ab", "rules": [{"id": "ab", "when": {"models": ["chat-default"]}, "load_balance_targets": [
    {"target": MINI, "weight": 70}, {"target": HAIKU, "weight": 30, "fallback_status_codes": ["429", "503"]}]}]}
TAGGED = {"name": "ci", "rules": [{"id": "ci_ab", "when": {"models": [OPUS], "metadata": {"workflow_tag": "ci"}},
                                   "load_balance_targets": [{"target": OPUS, "weight": 90},
                                                            {"target": HAIKU, "weight": 10}]}]}


def test_litellm_tags_weights_passthrough_and_pinned_router_settings():
    config, gaps = to_litellm(one(TAGGED))
    assert gaps == []
    assert config == {
        "model_list": [
            {"model_name": OPUS, "litellm_params": {"model": "anthropic/claude-opus-4-7", "weight": 90,
                                                    "tags": ["workflow_tag=ci"]},
             "model_info": {"id": "ci-ab-0", "tfy_target": OPUS}},
            {"model_name": OPUS, "litellm_params": {"model": "anthropic/claude-haiku-4-5", "weight": 10,
                                                    "tags": ["workflow_tag=ci"]},
             "model_info": {"id": "ci-ab-1", "tfy_target": HAIKU}},
            {"model_name": f"{OPUS}>ci-ab-0", "litellm_params": {"model": "anthropic/claude-opus-4-7",
                                                                 "tags": ["workflow_tag=ci"]},
             "model_info": {"id": "ci-ab-0-fallback", "tfy_target": OPUS}},
            {"model_name": f"{OPUS}>ci-ab-1", "litellm_params": {"model": "anthropic/claude-haiku-4-5",
                                                                 "tags": ["workflow_tag=ci"]},
             "model_info": {"id": "ci-ab-1-fallback", "tfy_target": HAIKU}},
            # requests without the tag stay on the model they asked for, as tfysim replays them
            {"model_name": OPUS, "litellm_params": {"model": "anthropic/claude-opus-4-7", "tags": ["default"]},
             "model_info": {"id": "anthropic-main-claude-opus-4-7-passthrough", "tfy_target": OPUS}},
        ],
        "router_settings": {"routing_strategy": "simple-shuffle", "num_retries": 0, "disable_cooldowns": True,
                            "enable_tag_filtering": True,
                            "fallbacks": [{OPUS: [f"{OPUS}>ci-ab-0", f"{OPUS}>ci-ab-1"]}]},
    }


@pytest.mark.parametrize("target, litellm, portkey", [
    ("anthropic-main/claude-haiku-4-5", "anthropic/claude-haiku-4-5", "anthropic"),
    ("openai-main/gpt-4o-mini", "openai/gpt-4o-mini", "openai"),
    ("google-vertex/gemini-2.5-flash", "vertex_ai/gemini-2.5-flash", "vertex-ai"),
    ("google-ai/gemini-2.5-flash", "gemini/gemini-2.5-flash", "google"),
    ("gemini-main/gemini-2.5-pro", "gemini/gemini-2.5-pro", "google"),
    ("bedrock-us/anthropic.claude-3-haiku", "bedrock/anthropic.claude-3-haiku", "bedrock"),
    ("aws-main/amazon.nova-pro-v1:0", "bedrock/amazon.nova-pro-v1:0", "bedrock"),
    ("azure-openai/gpt-4o", "azure/gpt-4o", "azure-openai"),
    ("mistral-main/mistral-large-latest", "mistral/mistral-large-latest", "mistral-ai"),
    ("deepseek-main/deepseek-chat", "deepseek/deepseek-chat", "deepseek"),
    ("groq-main/llama-3.3-70b", "groq/llama-3.3-70b", "groq"),
    ("together-main/meta-llama/Llama-3-8b", "together_ai/meta-llama/Llama-3-8b", "together-ai"),
    ("fireworks-main/llama-v3", "fireworks_ai/llama-v3", "fireworks-ai"),
    ("cohere-main/command-r", "cohere/command-r", "cohere"),
    ("xai-main/grok-3", "xai/grok-3", "x-ai"),
    ("internal/my-model", None, None),
])
def test_provider_names_per_gateway(target, litellm, portkey):
    """Expected names from LiteLLM's provider docs and the Portkey gateway's provider list (written by hand)."""
    from simulator.outputs.gateways.common import litellm_model
    from simulator.outputs.gateways.portkey import account_target

    assert litellm_model(target) == litellm
    found = account_target(target, {})
    assert (found or {}).get("provider") == portkey


def test_litellm_lists_what_it_cannot_express_and_writes_nothing():
    config, gaps = to_litellm(one(WEIGHTED))
    assert config is None
    assert gaps == [f"rule 'ab': {HAIKU} falls back only on status codes 429, 503 (LiteLLM falls back on any error)"]
    alias_only = one({"name": "a", "rules": [{"id": "a", "when": {"models": ["chat-default"],
                                                                   "metadata": {"workflow_tag": "x"}},
                                               "load_balance_targets": [{"target": MINI}]}]})
    config, gaps = to_litellm(alias_only)
    assert config is None and gaps == ["model 'chat-default': requests without the rule's tags need a default "
                                       "deployment, and 'chat-default' is not a served model id"]


def test_portkey_weighted_candidate_uses_gateway_provider_ids_and_the_simulated_codes():
    config, gaps = to_portkey(one(WEIGHTED))
    mini = {"provider": "openai", "api_key": "${OPENAI_MAIN_API_KEY}", "override_params": {"model": "gpt-4o-mini"}}
    haiku = {"provider": "anthropic", "api_key": "${ANTHROPIC_MAIN_API_KEY}",
             "override_params": {"model": "claude-haiku-4-5"}}
    assert config == {"strategy": {"mode": "loadbalance"}, "targets": [
        {"strategy": {"mode": "fallback", "on_status_codes": [401, 403, 404, 429, 500, 502, 503]},
         "targets": [mini, haiku], "weight": 70},
        {"strategy": {"mode": "fallback", "on_status_codes": [429, 503]}, "targets": [haiku, mini], "weight": 30},
    ]}
    assert all(isinstance(c, int) for t in config["targets"] for c in t["strategy"]["on_status_codes"])
    assert gaps == []


def test_portkey_account_mapping_from_the_scenario():
    sc = scenario([WEIGHTED], portkey={"accounts": {
        "openai-main": {"virtual_key": "openai-vk"},
        "anthropic-main": {"provider": "bedrock", "aws_region": "eu-west-1"}}})
    config, _ = to_portkey(sc.candidates[0], sc.portkey.accounts)
    mini, haiku = config["targets"][0]["targets"]
    assert mini == {"virtual_key": "openai-vk", "override_params": {"model": "gpt-4o-mini"}}
    assert haiku == {"provider": "bedrock", "aws_access_key_id": "${ANTHROPIC_MAIN_AWS_ACCESS_KEY_ID}",
                     "aws_secret_access_key": "${ANTHROPIC_MAIN_AWS_SECRET_ACCESS_KEY}", "aws_region": "eu-west-1",
                     "override_params": {"model": "claude-haiku-4-5"}}


def test_budgets_are_listed_as_not_expressible_for_litellm_and_portkey():
    cand = one({"name": "m", "rules": [{"id": "ci", "when": {"models": [GPT4O], "metadata": {"workflow_tag": "x"}},
                                         "load_balance_targets": [{"target": MINI}]}],
                "budgets": [{"id": "cap", "limit_to": 10}]})
    lite, lite_gaps = to_litellm(cand)
    port, port_gaps = to_portkey(cand)
    assert lite is None and port is None
    assert lite_gaps == ["budgets (cap): set them in the proxy's own budget settings"]
    assert port_gaps == ["budgets (cap)"]


def test_run_writes_all_three_files_and_an_index(tmp_path):
    sc = parse_scenario({"name": "w", "traffic": str(SMALL_TRAFFIC), "candidates": [
        {"name": "split", "rules": [{"id": "opus", "when": {"models": [OPUS]},
                                      "load_balance_targets": [{"target": HAIKU, "weight": 100}]}]}]}, "w.yaml", tmp_path)
    write_run(run(sc), tmp_path)
    routing = tmp_path / "routing"
    assert sorted(p.name for p in routing.iterdir()) == ["index.json", "split.litellm.yaml", "split.portkey.json",
                                                         "split.truefoundry.yaml"]
    assert yaml.safe_load((routing / "split.litellm.yaml").read_text())["model_list"][0]["model_name"] == OPUS
    assert json.loads((routing / "split.portkey.json").read_text())["strategy"] == {"mode": "single"}
    index = json.loads((routing / "index.json").read_text())["split"]
    assert index["config_types"] == {"split.truefoundry.yaml": "gateway-load-balancing-config",
                                     "split.litellm.yaml": "litellm-proxy-config",
                                     "split.portkey.json": "portkey-config"}
    assert index["portkey_attach_when"] == {"models": [OPUS]}


def test_yaml_comment_keeps_scenario_text_on_one_comment_line():
    from simulator.outputs.escape import yaml_comment

    assert yaml_comment("a\nrules: []\r\x00b\u2028c") == "a rules: []  b c"
    assert len(yaml_comment("x" * 1000)) == 500


def test_metadata_text_cannot_inject_yaml_into_a_written_file(tmp_path):
    evil = "ci\nrouter_settings: {num_retries: 9}\n# "
    sc = parse_scenario({"name": "e", "traffic": str(SMALL_TRAFFIC), "candidates": [
        {"name": "c", "rules": [{"id": "r", "when": {"models": [OPUS], "metadata": {"workflow_tag": evil}},
                                 "load_balance_targets": [{"target": HAIKU}]}]}]}, "e.yaml", tmp_path)
    write_run(run(sc), tmp_path)
    text = (tmp_path / "routing" / "c.litellm.yaml").read_text()
    header = text[: text.index("model_list:")]
    assert all(line.startswith("# ") for line in header.splitlines())
    config = yaml.safe_load(text)
    assert config["router_settings"]["num_retries"] == 0
    assert config["model_list"][0]["litellm_params"]["tags"] == [f"workflow_tag={evil}"]
