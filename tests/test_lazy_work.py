"""Lazy work (issue 16): the light replacements of heavy library calls agree with the libraries, and the samples a
run fits on are bounded and do not depend on how the traffic is chunked.

Expectations come from the libraries the replacements stand in for (scipy.stats, sklearn) or from a per-character
count written here; none is taken from the code under test.
"""

from __future__ import annotations

import random
import re
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import yaml

from simulator.evals.impact import covariate_shift_weights, logistic_fit, prompt_features
from simulator.evals.stats import mcnemar
from simulator.facts import CALIBRATION_K, PROMPT_K, FactsBuilder
from simulator.tokens import DEFAULT_REGISTRY
from simulator.tokens.calibration import theil_sen
from simulator.tokens.content import classify_text

from tests.shared_data import REPO as ROOT


@pytest.mark.parametrize("n", [2, 3, 10, 57, 400, 1500])
def test_theil_sen_is_scipy_theilslopes(n):
    from scipy.stats import theilslopes

    rng = np.random.default_rng(n)
    x = rng.integers(1, 60, n).astype(float)  # small range: ties in x and y exercise the tie correction
    x[0], x[-1] = 1.0, 61.0
    y = np.round(1.3 * x + rng.normal(0, 4, n))
    expected = theilslopes(y, x, alpha=0.95)
    assert theil_sen(x, y, 0.95) == pytest.approx(tuple(expected), rel=1e-12, abs=1e-12)


def test_theil_sen_without_ties_is_scipy_theilslopes():
    # every x distinct: each block of equal x is one row (the blocks of the ties test above hold many)
    from scipy.stats import theilslopes

    rng = np.random.default_rng(5)
    x = rng.permutation(np.arange(1.0, 301.0)) + rng.uniform(0, 0.5, 300)
    y = 0.8 * x + rng.normal(0, 3, 300)
    assert theil_sen(x, y, 0.9) == pytest.approx(tuple(theilslopes(y, x, alpha=0.9)), rel=1e-12, abs=1e-12)


def test_logistic_fit_is_sklearn_logistic_regression():
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(3)
    x = rng.normal(size=(2500, 3)) * [1.0, 4.0, 0.2]
    y = (x[:, 0] - 0.5 * x[:, 2] + rng.normal(size=2500) > 0.3).astype(float)
    model = LogisticRegression(tol=1e-12, max_iter=10_000).fit(x, y)
    beta = logistic_fit(x, y)
    assert beta[0] == pytest.approx(model.intercept_[0], abs=1e-6)
    assert beta[1:] == pytest.approx(model.coef_[0], abs=1e-6)


def test_covariate_shift_weights_are_the_sklearn_pipelines():
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    rng = random.Random(5)
    words = ["alpha", "beta", "x = f(y);", "{ return 1; }", "2024-01-05", "total 42", "the cat sat"]
    evals = [" ".join(rng.choice(words) for _ in range(rng.randint(1, 30))) for _ in range(300)]
    prod = [" ".join(rng.choice(words[:4]) for _ in range(rng.randint(1, 60))) for _ in range(900)]
    xe, xp = prompt_features(evals), prompt_features(prod)
    x, y = np.vstack([xe, xp]), np.r_[np.zeros(len(xe)), np.ones(len(xp))]
    pipe = make_pipeline(StandardScaler(), LogisticRegression(tol=1e-12, max_iter=10_000)).fit(x, y)
    p = np.clip(pipe.predict_proba(xe)[:, 1], 1e-6, 1 - 1e-6)
    w = np.clip(p / (1 - p) * len(xe) / len(xp), 0.1, 10.0)
    assert covariate_shift_weights(evals, prod) == pytest.approx(w / w.mean(), rel=1e-6)


def test_mcnemar_p_values_are_scipys():
    from scipy.stats import binomtest, chi2

    for b in range(0, 30):
        for c in range(0, 50 - b):
            if b + c:
                assert mcnemar(b, c)["p_value"] == pytest.approx(binomtest(min(b, c), b + c, 0.5).pvalue, rel=1e-12)
    for b, c in [(40, 20), (100, 3), (30, 31)]:
        assert mcnemar(b, c)["p_value"] == pytest.approx(chi2.sf((abs(b - c) - 1) ** 2 / (b + c), 1), rel=1e-12)


def _classify_per_character(text: str) -> str:
    """The content rule counted one character at a time (the definition the module's run counts must equal)."""
    sample = text[:4096]
    letters = sum(1 for ch in sample if re.fullmatch(r"[^\W\d_]", ch))
    latin = sum(1 for ch in sample if re.fullmatch(
        r"[A-Za-z\u00AA\u00BA\u00C0-\u00D6\u00D8-\u00F6\u00F8-\u024F\u1E00-\u1EFF]", ch))
    if letters and (letters - latin) / letters >= 0.3:
        return "non_latin"
    non_space = sum(1 for ch in sample if re.fullmatch(r"\S", ch))
    symbols = sum(1 for ch in sample if ch in "{}()[];=<>|&*/\\$#@^~`")
    if non_space and symbols / non_space >= 0.06:
        return "code"
    return "code-lines?"


def test_content_classes_count_characters_exactly():
    rng = random.Random(11)
    alphabet = list("abc XYZ\t\n{}();=_1²½٣é漢字Привет\x1c\u2028\u00a0;#->==//")
    texts = ["".join(rng.choice(alphabet) for _ in range(rng.randint(0, 200))) for _ in range(1500)]
    for text in texts:
        expected = _classify_per_character(text)
        got = classify_text(text)
        if expected == "code-lines?":  # decided by the line rule, which is unchanged
            assert got in ("code", "prose")
        else:
            assert got == expected, repr(text)


@pytest.fixture(scope="module")
def traffic():
    from simulator.io.traffic import load_traffic

    return load_traffic([ROOT / "datasets" / "sample" / "traffic.parquet"]).frame


def _facts(frame: pd.DataFrame, chunks: int, order: list[int]):
    builder = FactsBuilder(DEFAULT_REGISTRY, want_prompts=True)
    parts = np.array_split(np.arange(len(frame)), chunks)
    for i in order:
        builder.add(frame.iloc[parts[i]])
    return builder.finish()


def test_calibration_and_prompt_samples_are_bounded_and_do_not_depend_on_chunking(traffic):
    one = _facts(traffic, 1, [0])
    many = _facts(traffic, 7, [6, 2, 0, 5, 1, 3, 4])
    (fam1, ct1, ref1, tok1), = one.calibration_rows
    (fam7, ct7, ref7, tok7), = many.calibration_rows
    assert fam1.tolist() == fam7.tolist() and ct1.tolist() == ct7.tolist()
    assert ref1.tolist() == ref7.tolist() and tok1.tolist() == tok7.tolist()
    # per family: min(k, distinct (prompt, input_tokens) rows of its models with input_tokens > 0)
    with_prompt = traffic[traffic["prompt"].notna()]
    usable = with_prompt[with_prompt["input_tokens"] > 0].astype({"model": object, "prompt": object})
    family_of = {m: DEFAULT_REGISTRY.spec_for_model(m) for m in usable["model"].unique()}
    usable = usable.assign(family=[family_of[m].id if family_of[m].kind == "calibrated" else None
                                   for m in usable["model"]]).dropna(subset=["family"])
    distinct = usable.drop_duplicates(["family", "prompt", "input_tokens"])["family"].value_counts()
    assert sorted(set(fam1)) == sorted(distinct.index)
    for family, n in distinct.items():
        assert (fam1 == family).sum() == min(CALIBRATION_K, n)
    pd.testing.assert_frame_equal(one.prompts.reset_index(drop=True), many.prompts.reset_index(drop=True))
    counts = one.prompts["workflow_tag"].value_counts()
    totals = traffic[traffic["prompt"].notna()]["workflow_tag"].astype(object).value_counts()
    for tag, n in counts.items():
        assert n == min(PROMPT_K, totals[tag])  # every workflow keeps min(k, its requests with prompts)
    assert set(one.prompts["prompt"]) <= set(with_prompt["prompt"].astype(object))


def test_help_imports_no_heavy_library():
    code = ("import sys; from click.testing import CliRunner; from simulator.cli import cli; "
            "r = CliRunner().invoke(cli, ['--help']); assert r.exit_code == 0, r.output; "
            "heavy = ['scipy', 'sklearn', 'matplotlib', 'numba', 'dask', 'transformers', 'pandas', 'pyarrow']; "
            "print(','.join(m for m in heavy if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.strip() == ""


def test_validate_of_a_broken_scenario_and_schema_import_no_data_library(tmp_path):
    """The scenario model is pandas-free: a scenario that fails its schema is answered without pandas or pyarrow."""
    bad = tmp_path / "bad.yaml"
    bad.write_text("schema_version: 1\nname: bad\ntraffic: missing.parquet\ncandidates:\n- name: x\n  rulez: []\n")
    code = ("import sys; from click.testing import CliRunner; from simulator.cli import cli; "
            f"r = CliRunner().invoke(cli, ['validate', {str(bad)!r}]); "
            "s = CliRunner().invoke(cli, ['schema']); assert s.exit_code == 0, s.output; "
            "heavy = ['scipy', 'sklearn', 'matplotlib', 'numba', 'dask', 'pandas', 'pyarrow', 'genai_prices']; "
            "print(r.exit_code); print(r.output); print('loaded:', ','.join(m for m in heavy if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    lines = out.stdout.strip().split("\n")
    assert lines[0] == "2"
    assert "candidates[0].rulez: unknown key 'rulez'. Did you mean 'rules'?" in out.stdout
    assert "traffic: file" in out.stdout and "missing.parquet' does not exist" in out.stdout
    assert lines[-1] == "loaded:"


def test_validate_of_a_valid_scenario_imports_no_replay_code():
    """``validate`` reads the traffic as ``run`` does, but replays nothing and draws nothing: no numba kernels, no
    engines, no matplotlib, no statistics (the sample week's scenario, with evals, tokenizers and a config file)."""
    code = ("import sys; from click.testing import CliRunner; from simulator.cli import cli; "
            "r = CliRunner().invoke(cli, ['validate', 'scenarios/premium-review.yaml']); "
            "heavy = ['scipy', 'sklearn', 'matplotlib', 'numba', 'dask', 'transformers', 'simulator.core', "
            "'simulator.engines']; "
            "print(r.exit_code); print('loaded:', ','.join(m for m in heavy if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.strip().split("\n") == ["0", "loaded:"]


def test_validate_command_process_imports_no_heavy_library():
    """``python -m simulator validate`` as a user runs it, the modules loaded when the process ends. pandas is not
    in the list: pyarrow imports it on its first conversion between Arrow and numpy whenever it is installed
    (pyarrow's pandas shim), so a validate that reads traffic with pyarrow cannot leave it out."""
    heavy = ["scipy", "sklearn", "matplotlib", "numba", "tiktoken", "transformers", "dask", "simulator.core",
             "simulator.engines"]
    code = ("import runpy, sys\n"
            "sys.argv = ['simulator', 'validate', 'scenarios/premium-review.yaml']\n"
            "try:\n    runpy.run_module('simulator', run_name='__main__', alter_sys=True)\n"
            "except SystemExit as exc:\n    print('exit', exc.code)\n"
            f"print('loaded:', ','.join(m for m in {heavy!r} if m in sys.modules))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    lines = out.stdout.strip().split("\n")
    assert lines[0].startswith("scenarios/premium-review.yaml: ok. 40,000 rows (0 rejected)")
    assert lines[-2:] == ["exit 0", "loaded:"]


def test_mix64_is_fmix64_of_hash_xor_value_times_fnv_prime():
    from simulator.hashing import mix64

    mask = (1 << 64) - 1

    def reference(h: int, v: int) -> int:
        h = (h ^ ((v & mask) * 0x100000001B3)) & mask
        h ^= h >> 33
        h = (h * 0xFF51AFD7ED558CCD) & mask
        h ^= h >> 33
        h = (h * 0xC4CEB9FE1A85EC53) & mask
        return h ^ (h >> 33)

    hashes = [0, 1, 0xCBF29CE484222325, mask]
    values = [0, 7, -1, 123_456_789_012]
    got = mix64(np.array(hashes, np.uint64), np.array(values, np.int64))
    assert got.tolist() == [reference(h, v) for h, v in zip(hashes, values)]


@pytest.mark.parametrize("longest", [12, 200_000])  # the numpy path and the compiled kernel
def test_hash64_paths_are_fnv1a_fmix64(longest):
    import pyarrow as pa

    from simulator.hashing import NUMPY_MAX_WORK, hash64

    mask = (1 << 64) - 1

    def reference(text: str, seed: int, salt: str) -> int:
        h = 0xCBF29CE484222325
        for byte in f"{seed}\x1f{salt}\x1f".encode() + text.encode():
            h = ((h ^ byte) * 0x100000001B3) & mask
        for shift, mult in ((33, 0xFF51AFD7ED558CCD), (33, 0xC4CEB9FE1A85EC53)):
            h ^= h >> shift
            h = (h * mult) & mask
        return h ^ (h >> 33)

    rng = random.Random(longest)
    texts = ["".join(rng.choice("ab\u00e9\u6f22 \x00") for _ in range(rng.randint(0, 12))) for _ in range(300)]
    texts += ["", "x" * longest]
    assert (longest * len(texts) > NUMPY_MAX_WORK) == (longest > 12)
    assert hash64(pa.array(texts), 42, "salt").tolist() == [reference(t, 42, "salt") for t in texts]


def test_progress_is_one_line_per_stage_on_a_log_and_silent_in_the_test_runner(tmp_path):
    from click.testing import CliRunner

    from simulator.cli import cli

    scenario = tmp_path / "s.yaml"
    scenario.write_text(yaml.safe_dump({
        "schema_version": 1, "name": "progress", "traffic": str(ROOT / "tests" / "fixtures" / "small_traffic.csv"),
        "candidates": [{"name": "mini", "rules": [{
            "id": "m", "when": {"models": ["openai-main/gpt-4o"]}, "type": "weight-based-routing",
            "load_balance_targets": [{"target": "openai-main/gpt-4o-mini", "weight": 100}]}]}]}))
    proc = subprocess.run([sys.executable, "-m", "simulator", "run", str(scenario), "--out", str(tmp_path / "a")],
                          capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    stages = [re.sub(r"done in [0-9.]+ s", "done in S s", line) for line in proc.stderr.splitlines()]
    assert stages == ["tfysim: replaying candidates: 1 done in S s", "tfysim: replay (local engine): done in S s",
                      "tfysim: writing summary, report and configs: done in S s"]
    in_memory = CliRunner().invoke(cli, ["run", str(scenario), "--out", str(tmp_path / "b")])
    assert in_memory.exit_code == 0 and in_memory.stderr == ""
    assert in_memory.stdout.replace(str(tmp_path / "b"), "OUT") == proc.stdout.replace(str(tmp_path / "a"), "OUT")


def test_replay_modules_import_no_compiler_or_statistics_library():
    """The replay core, its engines and the modules holding compiled kernels (prompt cache, loop detector, budgets)
    import numba only when a kernel first runs; scipy, matplotlib and the rest only in the step that uses them."""
    modules = ["simulator.api", "simulator.core", "simulator.engines.driver", "simulator.engines.chunks",
               "simulator.state.cache_replay", "simulator.state.caching.kernel", "simulator.state.kernels",
               "simulator.control.loops", "simulator.control.loop_kernel", "simulator.hashing"]
    heavy = ["numba", "llvmlite", "scipy", "sklearn", "matplotlib", "dask", "transformers", "tiktoken"]
    code = (f"import importlib, sys\nfor m in {modules!r}:\n    importlib.import_module(m)\n"
            f"print('loaded:', ','.join(m for m in {heavy!r} if m in sys.modules))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.strip() == "loaded:"


def test_a_lazy_kernel_is_callable_from_compiled_code_and_inlined_as_asked():
    from simulator.jit import njit

    @njit(inline="always")
    def triple_plus_one(x):
        return 3 * x + 1

    @njit
    def total(values):
        s = 0
        for v in values:
            s += triple_plus_one(v)
        return s

    assert total.compiled is None and triple_plus_one.compiled is None  # nothing compiled before the first call
    assert total(np.array([1, 2, 5], np.int64)) == 4 + 7 + 16
    assert triple_plus_one.compiled is not None  # compiled as the caller's callee
    assert triple_plus_one(10) == 31 and triple_plus_one.py_func(10) == 31


def test_imports_are_kept_out_of_the_collector_only_within_a_command(tmp_path, monkeypatch):
    import gc

    from click.testing import CliRunner

    from simulator.cli import cli
    from simulator.memory import imports_done, imports_kept

    assert gc.get_freeze_count() == 0
    imports_done()  # outside a command (library use, tests): nothing is frozen
    assert gc.get_freeze_count() == 0
    with imports_kept():
        with imports_kept():
            imports_done()
            assert gc.get_freeze_count() > 0
        assert gc.get_freeze_count() > 0  # the inner block ends: the outer one still holds
    assert gc.get_freeze_count() == 0
    frozen = []

    def spy():
        imports_done()
        frozen.append(gc.get_freeze_count())

    monkeypatch.setattr("simulator.cli.imports_done", spy)
    bad = tmp_path / "bad.yaml"
    bad.write_text("schema_version: 1\nname: bad\n")
    r = CliRunner().invoke(cli, ["run", str(bad), "--out", str(tmp_path / "out")])
    assert r.exit_code == 2 and r.output.startswith("Error:")
    assert frozen and frozen[0] > 0  # `run` froze its imports, and its error ended the block: nothing stays frozen
    assert gc.get_freeze_count() == 0
