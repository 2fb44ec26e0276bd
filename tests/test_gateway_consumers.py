"""Every gateway file tfysim writes, checked by its real consumer's own code.

- TrueFoundry: each manifest is validated with the ``truefoundry`` SDK's pydantic models; those accept unknown keys
  and enum values silently, so the validated result is walked and any extra key or unknown enum member fails.
- LiteLLM: ``litellm.Router(model_list=..., **router_settings)`` is built from each file and sent 2,000 mocked
  requests (``mock_response``, offline) per rule with the tags the rule matches; the split must be within 3 pp of
  the simulated weights, untagged requests must stay on the requested model, and under a mocked failure of the first
  target the request must be served by the next target in the simulated fallback order.
- Portkey: the open-source gateway (npm ``@portkey-ai/gateway``, pinned in tests/gateways/package-lock.json) runs on
  127.0.0.1; every config is posted as ``x-portkey-config`` and must pass its validation and reach the (local, mock)
  upstream with the target model.

The files come from every example scenario plus a few inline candidates covering what examples do not (budgets with
fallbacks, rate limits, virtual models, a baseline merge), written by the real writer from a summary stub (the
writer reads only the scenario and summary.json, never the per-request arrays).
"""

from __future__ import annotations

import asyncio
import collections
import enum
import http.server
import json
import os
import shutil
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from conftest import REPO, SMALL_TRAFFIC
from simulator.io.traffic import load_traffic
from simulator.outputs.gateways import write_gateway_configs
from simulator.routing.scenario import load_scenario, parse_scenario

GATEWAY_DIR = REPO / "tests" / "gateways"
GATEWAY_JS = GATEWAY_DIR / "node_modules" / "@portkey-ai" / "gateway" / "build" / "start-server.js"
GPT4O, MINI, HAIKU, OPUS = ("openai-main/gpt-4o", "openai-main/gpt-4o-mini", "anthropic-main/claude-haiku-4-5",
                            "anthropic-main/claude-opus-4-7")
_REAL_SOCKET = socket.socket
_REAL_CREATE_CONNECTION = socket.create_connection


def _inline_scenarios(tmp: Path) -> list:
    current = tmp / "current-routing.yaml"
    current.write_text("name: prod-routing\ntype: gateway-load-balancing-config\nrules:\n- id: keep-me\n"
                       "  type: weight-based-routing\n  when: {models: [openai-main/gpt-4o]}\n"
                       "  load_balance_targets:\n  - {target: openai-main/gpt-4o, weight: 100}\n")
    common = {"traffic": str(SMALL_TRAFFIC), "seed": 7}
    return [
        parse_scenario({**common, "name": "inline-limits", "candidates": [
            {"name": "capped", "budgets": [
                {"id": "cap", "when": {"metadata": {"project": "helpdesk"}}, "limit_to": 0.02, "unit": "cost_per_day",
                 "budget_applies_per": ["project"], "on_exceed": {"fallback": MINI},
                 "alerts": {"thresholds": [75, 90, 100], "notification_target": [
                     {"type": "email", "notification_channel": "finops-email", "to_emails": ["finops@example.com"]}]}},
                {"id": "team-cap", "limit_to": 0.01, "unit": "cost_per_week", "budget_applies_per": ["team"],
                 "audit_mode": True}],
             "rate_limits": [{"id": "rpm", "when": {"models": [GPT4O]}, "limit_to": 1, "unit": "requests_per_hour",
                              "rate_limit_applies_per": ["user", "model"], "fallback": MINI}]},
            {"name": "vm", "rules": [{"id": "triage", "when": {"models": ["support-routing/triage-chat"]},
                                      "sticky_routing": {"ttl_seconds": 3600, "session_identifiers": [
                                          {"source": "metadata", "key": "session_id"}]},
                                      "load_balance_targets": [{"target": MINI, "weight": 60},
                                                               {"target": HAIKU, "weight": 40}]}]},
            {"name": "prio-chain", "rules": [
                {"id": "chain", "type": "priority-based-routing", "when": {"models": [GPT4O]},
                 "load_balance_targets": [{"target": MINI, "priority": 0}, {"target": HAIKU, "priority": 1}]}]},
            {"name": "split-60-40", "rules": [
                {"id": "helpdesk-split", "when": {"models": [GPT4O], "metadata": {"project": "helpdesk"}},
                 "load_balance_targets": [{"target": MINI, "weight": 60}, {"target": HAIKU, "weight": 40}]}]},
            {"name": "priority", "rules": [
                {"id": "p", "type": "priority-based-routing", "when": {"models": [GPT4O]},
                 "load_balance_targets": [{"target": MINI, "priority": 0}, {"target": HAIKU, "priority": 1,
                                                                             "sla_cutoff": {"time_per_output_token_ms": 40}}]}]},
        ]}, "inline.yaml", tmp),
        parse_scenario({**common, "name": "inline-baseline", "baseline": {"truefoundry_config": str(current)},
                        "candidates": [{"name": "split", "rules": [{"id": "opus", "when": {"models": [OPUS]},
                                                                     "load_balance_targets": [
                                                                         {"target": HAIKU, "weight": 100}]}]}]},
                       "inline.yaml", tmp),
    ]


@pytest.fixture(scope="module")
def written(tmp_path_factory) -> dict[str, Path]:
    """Scenario name -> its routing/ folder, for every example scenario and the inline ones."""
    tmp = tmp_path_factory.mktemp("gateways")
    scenarios = [load_scenario(p) for p in sorted((REPO / "scenarios").glob("*.yaml"))] + _inline_scenarios(tmp)
    models: dict[tuple, list[str]] = {}
    out = {}
    for sc in scenarios:
        paths = tuple(str(p) for p in sc.paths("traffic"))
        if paths not in models:
            frame = load_traffic(list(paths), adapter=sc.adapter, mapping=sc.columns or None,
                                 timezone=sc.timezone).frame
            models[paths] = sorted(set(frame["model"]))
        summary = {"policies": [], "baseline": {"breakdowns": {"model": [{"model": m} for m in models[paths]]}}}
        write_gateway_configs(SimpleNamespace(scenario=sc, summary=summary), tmp / sc.name)
        out[sc.name] = tmp / sc.name / "routing"
    return out


def _files(written: dict[str, Path], pattern: str) -> list[Path]:
    return sorted(p for folder in written.values() for p in folder.glob(pattern))


def test_every_example_writes_each_format_it_can_express(written):
    index = json.loads((written["premium-review"] / "index.json").read_text())
    for name in ("classify-intent-to-haiku", "classify-intent-ab-10pct"):
        assert {f.rsplit(".", 2)[-2] for f in index[name]["files"]} >= {"truefoundry", "litellm", "portkey"}
    # code-review-to-haiku matches every requested model: LiteLLM routes by model name, so it says why instead
    assert index["code-review-to-haiku"]["not_expressible"]["litellm"]
    for folder in written.values():
        for name, entry in json.loads((folder / "index.json").read_text()).items():
            if not entry["files"] and entry.get("client_changes"):  # e.g. batch: nothing for a gateway to do
                assert entry["note"].startswith("nothing to apply on the gateway"), (folder, name)
                continue
            for fmt, suffix in (("litellm", ".litellm.yaml"), ("portkey", ".portkey.json")):
                has_file = f"{name}{suffix}" in entry["files"]
                assert has_file != bool(entry["not_expressible"][fmt]), (folder, name, fmt)  # never partial
            tfy = any(f.endswith(".truefoundry.yaml") for f in entry["files"])
            assert not (tfy and entry["not_expressible"]["truefoundry"])


# -- TrueFoundry: the SDK's own models -------------------------------------------------------------------------
def _sdk_model(kind: str):
    types = pytest.importorskip("truefoundry_sdk.types", reason="pip install truefoundry-sdk (test extra)")
    return {"gateway-load-balancing-config": types.LoadBalancingConfig, "gateway-budget-config": types.BudgetConfig,
            "gateway-rate-limiting-config": types.RateLimitConfig,
            "provider-account/virtual-model": types.VirtualModelProviderAccount}[kind]


def strict_problems(obj, path: str = "") -> list[str]:
    """Keys the SDK model did not know and enum values it did not recognise, anywhere in a validated model."""
    import pydantic

    out = []
    if isinstance(obj, pydantic.BaseModel):
        for key in (obj.model_extra or {}):
            out.append(f"{path}.{key}: unknown key")
        for name in type(obj).model_fields:
            out += strict_problems(getattr(obj, name), f"{path}.{name}")
    elif isinstance(obj, enum.Enum):
        if obj.name.startswith("_UNKNOWN"):
            out.append(f"{path}: unknown value {obj.value!r}")
    elif isinstance(obj, (list, tuple)):
        for i, item in enumerate(obj):
            out += strict_problems(item, f"{path}[{i}]")
    elif isinstance(obj, dict):
        for k, v in obj.items():
            out += strict_problems(v, f"{path}.{k}")
    return out


def sdk_check(manifest: dict) -> list[str]:
    model = _sdk_model(manifest["type"])
    validated = model.model_validate(manifest)
    # `name` is not a field of the SDK's config models, but `tfy apply` rejects a gateway config without one
    # (gateway-formats.md, section 3), so it is the one top-level key allowed beyond the model.
    return [p for p in strict_problems(validated) if p != ".name: unknown key"]


def test_the_strict_walk_catches_what_the_sdk_accepts_silently():
    manifest = {"name": "x", "type": "gateway-budget-config", "rules": [
        {"id": "a", "when": {}, "limit_to": 1.0, "unit": "cost_per_fortnight", "on_exceed": {"fallback": MINI}}]}
    assert sorted(sdk_check(manifest)) == [".rules[0].on_exceed: unknown key",
                                           ".rules[0].unit: unknown value 'cost_per_fortnight'"]


def test_every_truefoundry_manifest_passes_the_sdk_models(written):
    files = _files(written, "*.truefoundry.yaml")
    assert len(files) >= 20
    kinds = collections.Counter()
    for path in files:
        text = path.read_text()
        assert "tfysim-extension" not in text
        manifest = yaml.safe_load(text)
        kinds[manifest["type"]] += 1
        assert sdk_check(manifest) == [], path
    assert set(kinds) == {"gateway-load-balancing-config", "gateway-budget-config", "gateway-rate-limiting-config",
                          "provider-account/virtual-model"}


def test_baseline_merge_writes_the_whole_tenant_config_and_a_diff(written):
    folder = written["inline-baseline"]
    merged = yaml.safe_load((folder / "split.truefoundry.yaml").read_text())
    assert merged["name"] == "prod-routing"
    assert [r["id"] for r in merged["rules"]] == ["opus", "keep-me"]  # candidate first: first match wins
    diff = (folder / "split.diff").read_text()
    assert diff.startswith("--- current/current-routing.yaml\n+++ proposed/split.truefoundry.yaml\n")
    assert "+- id: opus\n" in diff and "-  - {target: openai-main/gpt-4o, weight: 100}\n" in diff
    header = (written["premium-review"] / "classify-intent-to-haiku.truefoundry.yaml").read_text()
    assert "applying REPLACES the tenant's gateway-load-balancing-config" in header


@pytest.fixture
def loopback_only(monkeypatch):
    """Sockets again, for 127.0.0.1 only (the autouse no_network fixture refuses every socket; asyncio's event loop
    needs a local socket pair)."""

    class Loopback(_REAL_SOCKET):
        def connect(self, address):
            if address[0] not in ("127.0.0.1", "localhost"):
                raise OSError(f"test may only connect to 127.0.0.1, not {address[0]}")
            return super().connect(address)

    monkeypatch.setattr(socket, "socket", Loopback)
    monkeypatch.setattr(socket, "create_connection", _REAL_CREATE_CONNECTION)


# -- LiteLLM: litellm.Router ------------------------------------------------------------------------------------
def _router(config: dict, fail: set[str]):
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    litellm = pytest.importorskip("litellm", reason="pip install litellm (test extra)")
    model_list = []
    for d in config["model_list"]:
        target = d["model_info"]["tfy_target"]
        mock = Exception(f"mocked failure of {target}") if target in fail else f"served by {target}"
        model_list.append({**d, "litellm_params": {**d["litellm_params"], "mock_response": mock}})
    return litellm.Router(model_list=model_list, **config["router_settings"])


def _send(loop, router, model: str, tags: list[str] | None, n: int) -> collections.Counter:
    """Send ``n`` mocked chat requests (250 at a time) and count the target that served each."""

    async def one():
        kwargs = {"metadata": {"tags": tags}} if tags else {}
        resp = await router.acompletion(model=model, messages=[{"role": "user", "content": "hi"}], **kwargs)
        return resp.choices[0].message.content.removeprefix("served by ")

    async def main():
        out = collections.Counter()
        for start in range(0, n, 250):
            out.update(await asyncio.gather(*[one() for _ in range(min(250, n - start))]))
        return out

    return loop.run_until_complete(main())


def _litellm_cases(written) -> list[tuple[Path, object, object]]:
    """(file, scenario, candidate) for every LiteLLM file."""
    out = []
    for name, folder in written.items():
        for path in sorted(folder.glob("*.litellm.yaml")):
            sc = next(s for s in _all_scenarios(written) if s.name == name)
            cand = next(c for c in sc.candidates if f"{c.name}.litellm.yaml" == path.name)
            out.append((path, sc, cand))
    return out


_SCENARIOS: list = []


def _all_scenarios(written) -> list:
    if not _SCENARIOS:
        tmp = next(iter(written.values())).parent.parent
        _SCENARIOS.extend([load_scenario(p) for p in sorted((REPO / "scenarios").glob("*.yaml"))]
                          + _inline_scenarios(tmp))
    return _SCENARIOS


def test_every_litellm_file_routes_as_simulated_in_litellm_router(written, loopback_only):
    cases = _litellm_cases(written)
    assert len(cases) >= 5
    loop = asyncio.new_event_loop()  # one loop: LiteLLM's logging worker is bound to it
    splits_checked = fallbacks_checked = 0
    try:
        for path, _, cand in cases:
            config = yaml.safe_load(path.read_text())
            router = _router(config, fail=set())
            for rule in cand.rules:
                tag = ",".join(f"{k}={v}" for k, v in sorted(rule.when.metadata.items())) or None
                weights = [t.weight if t.weight is not None else 100 for t in rule.load_balance_targets]
                if rule.type == "priority-based-routing":
                    first = min(range(len(weights)), key=lambda i: (rule.load_balance_targets[i].priority or 0, i))
                    weights = [100 if i == first else 0 for i in range(len(weights))]
                expected = collections.Counter()
                for t, w in zip(rule.load_balance_targets, weights):
                    expected[t.target] += w / sum(weights)
                # 2,000 requests where the rule splits traffic; a one-target rule sends all to it (200 show none leak)
                n = 2000 if sum(1 for v in expected.values() if v > 0) > 1 else 200
                for alias in rule.when.models:
                    got = _send(loop, router, alias, [tag] if tag else None, n)
                    assert sum(got.values()) == n
                    for target, share in expected.items():
                        assert abs(got[target] / n - share) <= 0.03, (path, alias, target, got)
                    splits_checked += n == 2000
                    if tag:  # a request without the rule's tag keeps the model it asked for
                        assert _send(loop, router, alias, ["other=tag"], 20) == {alias: 20}
                        assert _send(loop, router, alias, None, 20) == {alias: 20}
            for entry in config["router_settings"].get("fallbacks") or []:
                (alias, chain), = entry.items()
                rule = next(r for r in cand.rules if alias in r.when.models)
                tag = ",".join(f"{k}={v}" for k, v in sorted(rule.when.metadata.items())) or None
                # the simulated order (core._target_order): priority, else weight descending; the first fails
                targets = rule.load_balance_targets
                sim_order = sorted(range(len(targets)), key=lambda i: (targets[i].priority or 0, i)) \
                    if rule.type == "priority-based-routing" else \
                    sorted(range(len(targets)), key=lambda i: (-(targets[i].weight or 0), i))
                first, second = targets[sim_order[0]].target, targets[sim_order[1]].target
                got = _send(loop, _router(config, fail={first}), alias, [tag] if tag else None, 20)
                assert got == {second: 20}, (path, got)
                fallbacks_checked += 1
    finally:
        loop.close()
    assert splits_checked >= 2 and fallbacks_checked >= 2


# -- Portkey: the open-source gateway ------------------------------------------------------------------------------
class _Upstream(http.server.ThreadingHTTPServer):
    hits: collections.Counter


class _Handler(http.server.BaseHTTPRequestHandler):
    def do_POST(self):  # noqa: N802 - http.server's naming
        body = json.loads(self.rfile.read(int(self.headers.get("content-length") or 0)) or b"{}")
        self.server.hits[body.get("model") or self.path] += 1
        answer = {"id": "m", "object": "chat.completion", "created": 0, "model": body.get("model", "m"),
                  "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"},
                               "finish_reason": "stop"}],
                  "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}}
        if self.path.endswith("/messages"):
            answer = {"id": "m", "type": "message", "role": "assistant", "model": body.get("model", "m"),
                      "content": [{"type": "text", "text": "ok"}], "stop_reason": "end_turn",
                      "usage": {"input_tokens": 1, "output_tokens": 1}}
        data = json.dumps(answer).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


def _free_port() -> int:
    with _REAL_SOCKET() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _leaves(config: dict):
    if "targets" in config:
        for t in config["targets"]:
            yield from _leaves(t)
    else:
        yield config


def test_portkey_gateway_accepts_every_config(written, loopback_only, tmp_path):
    if shutil.which("node") is None:
        pytest.skip("node is not installed: the Portkey gateway check needs Node.js (apt-get install nodejs)")
    if not GATEWAY_JS.is_file():
        pytest.skip("the Portkey gateway is not installed: run `npm ci` in tests/gateways (.ci/run does)")
    files = _files(written, "*.portkey.json")
    assert len(files) >= 5
    upstream = _Upstream(("127.0.0.1", 0), _Handler)
    upstream.hits = collections.Counter()
    threading.Thread(target=upstream.serve_forever, daemon=True).start()
    port = _free_port()
    log = (tmp_path / "gateway.log").open("w")
    proc = subprocess.Popen(["node", "--require", str(GATEWAY_DIR / "loopback.cjs"), str(GATEWAY_JS), "--headless",
                             f"--port={port}"], cwd=GATEWAY_DIR, stdout=log, stderr=subprocess.STDOUT,
                            env={**os.environ, "NODE_ENV": "production"})
    url = f"http://127.0.0.1:{port}/v1/chat/completions"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2).read()
                break
            except (urllib.error.URLError, ConnectionError):
                if time.monotonic() > deadline or proc.poll() is not None:
                    pytest.fail(f"the Portkey gateway did not start: {(tmp_path / 'gateway.log').read_text()}")
                time.sleep(0.3)
        for path in files:
            config = json.loads(path.read_text())
            # Send it to the local mock upstream instead of the provider (custom_host is not part of validation
            # of provider, credentials, strategy or status codes, which is what is checked).
            for leaf in _leaves(config):
                leaf["custom_host"] = f"http://127.0.0.1:{upstream.server_address[1]}/v1"
            models = {leaf["override_params"]["model"] for leaf in _leaves(config)}
            before = sum(upstream.hits[m] for m in models)
            request = urllib.request.Request(url, data=json.dumps({"model": "x", "messages": [
                {"role": "user", "content": "hi"}], "max_tokens": 5}).encode(), headers={
                "content-type": "application/json", "x-portkey-config": json.dumps(config)})
            try:
                with urllib.request.urlopen(request, timeout=30) as resp:
                    status, body = resp.status, resp.read().decode()
            except urllib.error.HTTPError as exc:
                status, body = exc.code, exc.read().decode()
            assert not (status == 400 and "Invalid config" in body), (path, body)
            assert sum(upstream.hits[m] for m in models) == before + 1, (path, status, body)
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        upstream.shutdown()
        log.close()
