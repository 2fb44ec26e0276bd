"""What the gateway writers share: the header comment, YAML dumping, provider names per gateway."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from simulator.formats import money

import yaml

from simulator.outputs.escape import yaml_comment
from simulator.pricing.model_ids import guess_provider, split_model_id

# tfysim's provider guess (genai-prices ids) -> the gateway's own provider name. Google is split by account name:
# an account named like Vertex AI is Vertex, any other Google account is the Gemini API.
LITELLM_PREFIX = {
    "anthropic": "anthropic", "openai": "openai", "google": "gemini", "google-vertex": "vertex_ai", "aws": "bedrock",
    "azure": "azure", "mistral": "mistral", "deepseek": "deepseek", "groq": "groq", "together": "together_ai",
    "fireworks": "fireworks_ai", "cohere": "cohere", "x-ai": "xai",
}
PORTKEY_PROVIDER = {
    "anthropic": "anthropic", "openai": "openai", "google": "google", "google-vertex": "vertex-ai", "aws": "bedrock",
    "azure": "azure-openai", "mistral": "mistral-ai", "deepseek": "deepseek", "groq": "groq", "together": "together-ai",
    "fireworks": "fireworks-ai", "cohere": "cohere", "x-ai": "x-ai",
}


def provider_key(target: str) -> str | None:
    """The key into the provider tables for a gateway model id (``google-vertex`` for Vertex accounts)."""
    provider = guess_provider(target)
    account, _ = split_model_id(target)
    if provider == "google" and "vertex" in account.lower():
        return "google-vertex"
    return provider


def litellm_model(target: str) -> str | None:
    """``anthropic-main/claude-haiku-4-5`` -> ``anthropic/claude-haiku-4-5``; None when the provider is unknown."""
    prefix = LITELLM_PREFIX.get(provider_key(target) or "")
    _, name = split_model_id(target)
    return f"{prefix}/{name}" if prefix and name else None


_money = money


def figures_line(figures: dict[str, Any] | None) -> str:
    """One line of figures for a header comment: monthly savings with interval, accuracy change, gates."""
    f = figures or {}
    parts = []
    if f.get("monthly_savings_usd") is not None:
        ci = f.get("monthly_savings_ci95") or [None, None]
        parts.append(f"monthly savings {_money(f['monthly_savings_usd'])} (95% CI {_money(ci[0])} to {_money(ci[1])})")
    if f.get("accuracy_delta_pp") is not None:
        from simulator.outputs.report.content import accuracy_text

        parts.append(f"accuracy change {accuracy_text(f)}")
    else:
        parts.append("accuracy change: not measured (no eval data for the moved traffic)")
    gates = f.get("gates") or []
    if gates:
        failed = [g["name"] for g in gates if not g["passed"]]
        parts.append("gates: " + ("FAILED " + ", ".join(failed) if failed else "all passed"))
    return "; ".join(parts)


def header(lines: Iterable[str]) -> str:
    """Comment lines, each passed through :func:`simulator.outputs.escape.yaml_comment`."""
    return "".join(f"# {yaml_comment(line)}\n" for line in lines)


class _NoAliases(yaml.SafeDumper):
    """No ``&id001`` anchors: a list shared by two rules is written out twice, as a person would write it."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def dump_yaml(obj: Any) -> str:
    return yaml.dump(obj, Dumper=_NoAliases, sort_keys=False, default_flow_style=False, allow_unicode=True, width=120)


def traffic_models(summary: dict[str, Any]) -> list[str]:
    """The models recorded in the traffic, from summary.json's baseline breakdown by model."""
    rows = ((summary.get("baseline") or {}).get("breakdowns") or {}).get("model") or []
    return sorted({r["model"] for r in rows})
