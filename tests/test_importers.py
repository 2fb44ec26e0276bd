import csv
import json
import math

import pytest

from shared_data import FIXTURES, shared_data
from simulator.evals.stats import accuracy_table, paired_delta
from simulator.io.importers.routellm import import_routellm
from simulator.io.importers.routerbench import import_routerbench, literal_cell

STRONG, WEAK = "gpt-4-1106-preview", "mistralai/Mixtral-8x7B-Instruct-v0.1"


def _raw_accuracy(files, exclude):
    """Per-model accuracy straight from the CSVs with the csv module (independent of the importer)."""
    csv.field_size_limit(2**31 - 1)
    right = {STRONG: 0, WEAK: 0}
    n = 0
    for path in files:
        with open(path, newline="", encoding="utf-8") as handle:
            for row in csv.DictReader(handle):
                if row["prompt"].strip() in exclude:
                    continue
                n += 1
                for model in right:
                    right[model] += row[model] == "True"
    return {m: right[m] / n for m in right}, n


def _contaminated(path):
    return {json.loads(line)["eval_prompt"].strip() for line in open(path, encoding="utf-8") if line.strip()}


@pytest.fixture(scope="module")
def routellm():
    root = shared_data("routellm-evals")
    return root, import_routellm(root)


@pytest.mark.parametrize("exclude_contaminated", [True, False])
def test_routellm_reproduces_raw_accuracies(exclude_contaminated):
    root = shared_data("routellm-evals")
    samples, stats = import_routellm(root, exclude_contaminated=exclude_contaminated)
    table = accuracy_table(samples).set_index(["workflow_tag", "model"])
    for tag, files, contaminated in (
        ("mmlu", sorted((root / "mmlu" / "responses").glob("mmlu_*.csv")), root / "mmlu" / "contaminated_prompts.jsonl"),
        ("gsm8k", [root / "gsm8k" / "gsm8k_responses.csv"], root / "gsm8k" / "contaminated_prompts.jsonl"),
    ):
        expected, n = _raw_accuracy(files, _contaminated(contaminated) if exclude_contaminated else set())
        for model, acc in expected.items():
            assert table.loc[(tag, model), "n"] == n
            assert table.loc[(tag, model), "accuracy"] == pytest.approx(acc, abs=1e-12)
    # The published figures (data.md): Mixtral 0.681 / GPT-4 0.806 on MMLU, 0.638 / 0.857 on GSM8K.
    if not exclude_contaminated:
        assert round(table.loc[("mmlu", WEAK), "accuracy"], 3) == 0.681
        assert round(table.loc[("mmlu", STRONG), "accuracy"], 3) == 0.806
        assert round(table.loc[("gsm8k", WEAK), "accuracy"], 3) == 0.638
        assert round(table.loc[("gsm8k", STRONG), "accuracy"], 3) == 0.857
        assert table.loc[("mmlu", STRONG), "n"] == 14042 and table.loc[("gsm8k", STRONG), "n"] == 1319
    assert stats["rows_read"] == 14042 + 1319 + 320


def test_routellm_mt_bench_scores(routellm):
    root, (samples, stats) = routellm
    raw = [json.loads(line) for line in open(root / "mt_bench" / "judgements.jsonl", encoding="utf-8")]
    mean_gpt4 = sum(r["score"] for r in raw if r["model"] == STRONG) / 160
    assert mean_gpt4 == pytest.approx(9.23, abs=0.005)
    full, _ = import_routellm(root, exclude_contaminated=False)
    mt = full[(full["workflow_tag"] == "mt-bench") & (full["model"] == STRONG)]
    assert len(mt) == 160 and mt["correct"].isna().all()
    assert mt["score"].mean() == pytest.approx((mean_gpt4 - 1) / 9, abs=1e-12)
    # 8 contaminated questions x 2 turns x 2 models are excluded by default.
    assert stats["rows_by_benchmark"]["mt-bench"] == 320 - 32
    assert stats["scores_unparsed_dropped"] == 0


def test_routellm_unparsed_judge_score_is_dropped_and_counted(tmp_path):
    mt = tmp_path / "mt_bench"
    mt.mkdir()
    (mt / "question.jsonl").write_text(json.dumps({"question_id": 1, "category": "x", "turns": ["a", "b"]}) + "\n")
    rows = [{"question_id": 1, "model": "m", "turn": 1, "score": 10}, {"question_id": 1, "model": "m", "turn": 2, "score": -1},
            {"question_id": 1, "model": "n", "turn": 1, "score": 5.5}]
    (mt / "judgements.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    samples, stats = import_routellm(tmp_path)
    assert stats["scores_unparsed_dropped"] == 1
    assert sorted(samples["score"].tolist()) == [0.5, 1.0]
    assert sorted(samples["sample_id"]) == ["mt-bench/1/turn1", "mt-bench/1/turn1"]


def test_routellm_sample_ids_are_stable_and_paired(routellm):
    _, (samples, _) = routellm
    assert not samples.duplicated(["sample_id", "model"]).any()
    assert "mmlu/abstract_algebra/0" in set(samples["sample_id"])
    res = paired_delta(samples, STRONG, WEAK, workflow_tag="gsm8k", n_boot=500)
    assert res["n_paired"] == 1319 - 12 and res["kind"] == "binary"


def test_routerbench_fixture():
    samples, stats = import_routerbench([FIXTURES / "routerbench_small.csv"])
    assert stats["rows_read"] == 5
    assert stats["rows_all_scores_empty"] == 1  # mmlu.2
    assert stats["cells_invalid"] == 1  # mixtral scored 7 on mtb.1
    assert stats["models"] == ["gpt-4", "mixtral"]
    got = {(r.sample_id, r.model): r for r in samples.itertuples()}
    assert set(got) == {("mmlu.0", "gpt-4"), ("mmlu.0", "mixtral"), ("mmlu.1", "gpt-4"), ("mmlu.1", "mixtral"),
                        ("mtb.0", "gpt-4"), ("mtb.0", "mixtral"), ("mtb.1", "gpt-4")}
    assert got[("mmlu.0", "gpt-4")].prompt == "What is 2+2?"
    assert got[("mmlu.0", "mixtral")].correct == 0.0 and got[("mmlu.0", "mixtral")].cost_usd == 0.00001
    assert got[("mtb.0", "gpt-4")].score == pytest.approx(0.8)  # two turns averaged
    assert got[("mtb.0", "gpt-4")].prompt == "Write a poem\nNow shorter"
    assert math.isnan(got[("mtb.1", "gpt-4")].correct)  # graded workflow: no binary outcome
    assert got[("mmlu.1", "mixtral")].workflow_tag == "mmlu-math"


def test_literal_cell_never_evaluates_code():
    assert literal_cell("['a']") == "a"
    assert literal_cell("[__import__('os').getcwd()]") == "[__import__('os').getcwd()]"
    assert literal_cell("[0.5, 1.0]") == [0.5, 1.0]
