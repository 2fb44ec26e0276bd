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


# A release date: YYYYMMDD, YYYY-MM-DD or an OpenAI-style MMDD (``-0613``); ``-2411`` (YYMM) names a distinct release.
_DATE_SUFFIX = re.compile(r"[-@_](?:20\d{2}-?(?:0[1-9]|1[0-2])-?(?:0[1-9]|[12]\d|3[01])|(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01]))$")
_VENDOR_PREFIX = re.compile(r"^(?:[a-z]{2,4}\.)?(?:anthropic|mistral|deepseek|qwen|openai|meta|cohere|google)\.")
_VERSION_TAG = re.compile(r"-v\d+:\d+$")  # Bedrock's "-v1:0"; "deepseek-v3" is a model, not a tag


def model_match_key(model_id: str) -> str:
    """A key equal for the ids one model goes by in gateways, catalogs and eval files (lower case).

    Drops the ``provider_account/`` (or ``provider/``) part, ``models/``, Bedrock vendor and region prefixes and
    version tags, and a trailing release date (``-20251001``, ``-2024-08-06``, ``@20240620``, ``-0613``), as price
    catalogs match a dated snapshot to its model: ``claude-haiku-4-5-20251001`` and ``anthropic-main/claude-haiku-4-5``
    share the key ``claude-haiku-4-5``.
    """
    name = str(model_id).strip().lower().rsplit("/", 1)[-1]
    name = _VENDOR_PREFIX.sub("", name.removeprefix("models/"))
    name = _VERSION_TAG.sub("", name)
    return _DATE_SUFFIX.sub("", name)
