"""hash64: pinned against a slow pure-Python implementation of the same function, written here from its definition
(FNV-1a 64 over f"{seed}\\x1f{salt}\\x1f" + UTF-8 bytes, then MurmurHash3 fmix64)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from simulator.hashing import hash64, uniform

MASK = (1 << 64) - 1


def reference(text: str | None, seed, salt: str = "") -> int:
    h = 0xCBF29CE484222325
    for byte in f"{seed}\x1f{salt}\x1f".encode() + (text or "").encode():
        h = ((h ^ byte) * 0x100000001B3) & MASK
    h ^= h >> 33
    h = (h * 0xFF51AFD7ED558CCD) & MASK
    h ^= h >> 33
    h = (h * 0xC4CEB9FE1A85EC53) & MASK
    h ^= h >> 33
    return h


WORDS = ["", "a", "req-000001", "chatcmpl-9f1c2d3e4a5b", "ünïcödé ✓ 日本語", "x" * 300, "sess/7\x00nul"]


@pytest.mark.parametrize("seed, salt", [(0, ""), (42, "ab"), ("1234567890123456", "failure"), (-7, "split:r1")])
def test_matches_the_reference_on_every_input_kind(seed, salt):
    want = np.array([reference(w, seed, salt) for w in WORDS], dtype=np.uint64)
    inputs = {
        "string": pa.array(WORDS, type=pa.string()),
        "large_string": pa.array(WORDS, type=pa.large_string()),
        "dictionary": pa.array(WORDS).dictionary_encode(),
        "chunked": pa.chunked_array([WORDS[:3], WORDS[3:]]),
        "sliced": pa.array(["zz"] + WORDS + ["zz"]).slice(1, len(WORDS)),
        "arrow series": pd.Series(WORDS, dtype="string[pyarrow]"),
        "category": pd.Series(WORDS, dtype="category"),
        "object": pd.Series(WORDS, dtype=object),
        "list": WORDS,
    }
    for name, strings in inputs.items():
        np.testing.assert_array_equal(hash64(strings, seed, salt), want, err_msg=name)


def test_pinned_values_never_change():
    # Literals written down once from reference(); a change here changes every A/B assignment of every user.
    assert hash64(["req-1", "req-2", ""], 42).tolist() == [0x1F05F03A3B69E000, 0xA59B1A4A3F292B62,
                                                            reference("", 42)]
    assert hash64([""], 0).tolist() == [0x53B951BC0D32713B]
    assert hash64(["ünïcödé ✓ 日本語"], "12345678901234567", "failure").tolist() == [0x9DCBAAB3BE12ED8]


def test_full_seed_is_in_the_key():
    ids = [f"r{i}" for i in range(1000)]
    a = hash64(ids, 1234567890123456)
    b = hash64(ids, 12345678901234567)
    assert (a != b).all()


def test_missing_values_hash_as_empty_text_and_salt_matters():
    got = hash64(pd.Series(["x", None], dtype="string[pyarrow]"), 3)
    assert got[1] == reference("", 3)
    assert hash64(["x"], 3, "a")[0] != hash64(["x"], 3, "b")[0]
    got = hash64(pd.Series(["x", None], dtype="category"), 3)
    assert got.tolist() == [reference("x", 3), reference("", 3)]


def test_uniform_draws_are_uniform():
    u = uniform(hash64([f"req-{i}" for i in range(200_000)], 7))
    assert ((u >= 0) & (u < 1)).all()
    counts = np.bincount((u * 10).astype(int), minlength=10)
    # 10 bins of 20,000 expected each; a fair draw stays within 5 standard deviations (sd ~ 134)
    assert np.abs(counts - 20_000).max() < 700


def test_rejects_non_text():
    with pytest.raises(TypeError):
        hash64(pa.array([1, 2]), 0)


def test_prompt_sized_input_without_a_loaded_kernel_stays_on_numpy(monkeypatch):
    # 400 texts up to 30,000 bytes: longest x count (12 M) is over NUMPY_MAX_WORK, but 0.3 MB of text is far less
    # than loading numba costs, so numpy hashes it (the kernel is replaced by one that fails if called).
    import functools
    import random

    import simulator.hashing as hashing

    @functools.lru_cache(maxsize=1)
    def no_kernel():
        raise AssertionError("the compiled kernel was used")

    monkeypatch.setattr(hashing, "_kernel", no_kernel)
    rng = random.Random(3)
    texts = ["".join(rng.choice("ab é漢\n") for _ in range(rng.randint(0, 400))) for _ in range(399)] + ["y" * 30_000]
    assert 30_000 * len(texts) > hashing.NUMPY_MAX_WORK
    got = hash64(pa.array(texts), 7, "calibration")
    assert got.tolist() == [reference(t, 7, "calibration") for t in texts]
    with pytest.raises(AssertionError, match="compiled kernel"):  # a string longer than NUMPY_MAX_LENGTH: compiled
        hash64(pa.array(texts + ["z" * (hashing.NUMPY_MAX_LENGTH + 1)]), 7, "calibration")


def test_dictionary_text_hashes_like_the_plain_text():
    from simulator.hashing import dictionary_text

    words = ["long prompt " * 50, None, "a", "long prompt " * 50, "", "a", None]
    encoded = dictionary_text(pd.Series(words, dtype="string[pyarrow]"))
    assert pa.types.is_dictionary(encoded.type) and len(encoded.dictionary) == 3
    assert hash64(encoded, 0, "prompts").tolist() == [reference(w, 0, "prompts") for w in words]


@pytest.mark.parametrize("compiled", [False, True])
def test_several_salts_in_one_pass_equal_one_salt_at_a_time(monkeypatch, compiled):
    # hash64_salts reads each byte once for all salts (numpy path) or runs the kernel per salt: each row must be
    # the reference hash with its own salt, for plain text with missing values and for a dictionary.
    import simulator.hashing as hashing
    from simulator.hashing import dictionary_text, hash64_salts

    monkeypatch.setattr(hashing, "_compiled", lambda lengths: compiled and len(lengths) > 0)
    words = WORDS + [None, "long prompt " * 40, "a"]
    salts = ("calibration", "prompts", "")
    for strings in (pd.Series(words, dtype="string[pyarrow]"), dictionary_text(pd.Series(words, dtype=object)),
                    pa.array([], type=pa.string())):
        got = hash64_salts(strings, 5, salts)
        assert len(got) == 3
        for salt, hashes in zip(salts, got):
            assert hashes.dtype == np.uint64
            assert hashes.tolist() == [reference(w, 5, salt) for w in words[:len(strings)]]
