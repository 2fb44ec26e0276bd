"""Gateway model ids: ``provider_account/model`` split into account, model name and provider.

The provider is guessed from the account name (``anthropic-main`` -> ``anthropic``) or, failing that,
from the model name (``claude-*`` -> ``anthropic``). A scenario's ``models:`` map always wins over the guess.
"""

from __future__ import annotations

import re

# Account-name fragments and model-name prefixes that identify a provider, checked in order.
_ACCOUNT_HINTS = (
    ("anthropic", "anthropic"),
    ("claude", "anthropic"),
    ("bedrock", "aws"),
    ("aws", "aws"),
    ("azure", "azure"),
    ("openai", "openai"),
    ("vertex", "google"),
    ("gemini", "google"),
    ("google", "google"),
    ("mistral", "mistral"),
    ("deepseek", "deepseek"),
    ("groq", "groq"),
    ("together", "together"),
    ("fireworks", "fireworks"),
    ("cohere", "cohere"),
    ("xai", "x-ai"),
    ("x-ai", "x-ai"),
)
_MODEL_HINTS = (
    (re.compile(r"^claude"), "anthropic"),
    (re.compile(r"^(gpt|o\d|chatgpt|text-embedding|davinci)"), "openai"),
    (re.compile(r"^gemini"), "google"),
    (re.compile(r"^(mistral|mixtral|codestral|ministral|magistral|pixtral|devstral)"), "mistral"),
    (re.compile(r"^deepseek"), "deepseek"),
    (re.compile(r"^grok"), "x-ai"),
    (re.compile(r"^command"), "cohere"),
)


def split_model_id(model_id: str) -> tuple[str, str]:
    """``"anthropic-main/claude-opus-4-7"`` -> ``("anthropic-main", "claude-opus-4-7")``; no slash -> ``("", id)``."""
    account, sep, name = str(model_id).partition("/")
    return (account, name) if sep else ("", account)


def guess_provider(model_id: str) -> str | None:
    """The genai-prices provider id for a gateway model id, or None when nothing identifies it."""
    account, name = split_model_id(model_id)
    lowered = account.lower()
    for hint, provider in _ACCOUNT_HINTS:
        if hint in lowered:
            return provider
    for pattern, provider in _MODEL_HINTS:
        if pattern.match(name.lower()):
            return provider
    return None
