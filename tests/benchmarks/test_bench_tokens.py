"""End-to-end token counting (dedupe + batch encode on 2 threads) vs raw tiktoken ``encode_batch`` on the same texts.

Run: ``PYTHONPATH=$PWD python -m pytest tests/benchmarks/test_bench_tokens.py -o addopts="" --benchmark-only``.
Targets: unique texts >= 80% of raw throughput; realistic repeated prompts far above it.
"""

from __future__ import annotations

import numpy as np
import pytest

from simulator.tokens import count_tokens, get_tokenizer

WORDS = (
    "the of and to in is for on that with as by this are be from at or an it was which can not has have will "
    "budget review latency gateway routing request model token cost team project policy fallback cache prompt"
).split()
CODE = ["def", "return", "self", "(", ")", ":", "=", "+", "if", "else", "for", "in", "{", "}", ";", "x", "i", "0"]
CJK = list("东京是日本的首都人口超过一千三百万这是一个测试请把文字翻译成英文")


def _text(rng: np.random.Generator) -> str:
    kind = rng.integers(3)
    vocab = (WORDS, CODE, CJK)[kind]
    sep = ("", " ", " ")[kind] if kind != 2 else ""
    return sep.join(rng.choice(vocab, size=int(rng.integers(100, 600))))


@pytest.fixture(scope="module")
def unique_texts():
    rng = np.random.default_rng(0)
    return [f"{i} " + _text(rng) for i in range(3000)]


@pytest.fixture(scope="module")
def repeated_texts():
    # 20,000 requests over 300 distinct prompts, Zipf-like: a few system prompts and templates dominate.
    rng = np.random.default_rng(1)
    distinct = [_text(rng) for _ in range(300)]
    picks = np.minimum(rng.zipf(1.3, size=20_000) - 1, len(distinct) - 1)
    return [distinct[i] for i in picks]


@pytest.fixture(scope="module")
def o200k():
    return get_tokenizer("tiktoken:o200k_base")


def _raw(encoding, texts):
    return sum(map(len, encoding.encode_batch(texts)))


@pytest.mark.benchmark(group="unique texts")
def test_raw_tiktoken_unique(benchmark, o200k, unique_texts):
    benchmark(_raw, o200k.encoder, unique_texts)


@pytest.mark.benchmark(group="unique texts")
def test_tfysim_count_unique(benchmark, o200k, unique_texts):
    counts = benchmark(count_tokens, o200k, unique_texts)
    assert int(counts.sum()) == _raw(o200k.encoder, unique_texts)


@pytest.mark.benchmark(group="repeated prompts")
def test_raw_tiktoken_repeated(benchmark, o200k, repeated_texts):
    benchmark(_raw, o200k.encoder, repeated_texts)


@pytest.mark.benchmark(group="repeated prompts")
def test_tfysim_count_repeated(benchmark, o200k, repeated_texts):
    counts = benchmark(count_tokens, o200k, repeated_texts)
    assert int(counts.sum()) == _raw(o200k.encoder, repeated_texts)
