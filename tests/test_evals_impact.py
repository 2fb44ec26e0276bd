import numpy as np
import pandas as pd
import pytest

from simulator.evals.gates import impact_gate, non_inferiority, samples_needed
from simulator.evals.impact import kish_ess, match_eval_model, policy_accuracy_impact


def _binary(workflow, model, outcomes, prompts=None):
    return pd.DataFrame({"sample_id": [f"{workflow}-{i}" for i in range(len(outcomes))], "model": model,
                         "correct": np.asarray(outcomes, float), "score": np.asarray(outcomes, float),
                         "workflow_tag": workflow, "prompt": prompts})


@pytest.fixture
def evals():
    # w1: A right on all 40, B right on 36 -> delta(B - A) = -0.1; C equals A.
    # w2: A right on 25 of 50, C right on those 25 plus 5 more -> delta(C - A) = +0.1.
    w1a = [1] * 40
    w1b = [1] * 36 + [0] * 4
    w2a = [1] * 25 + [0] * 25
    w2c = [1] * 30 + [0] * 20
    return pd.concat([_binary("w1", "A", w1a), _binary("w1", "B", w1b), _binary("w1", "C", w1a),
                      _binary("w2", "A", w2a), _binary("w2", "C", w2c)], ignore_index=True)


def test_match_eval_model():
    models = ["gpt-4o", "mistralai/Mixtral-8x7B", "claude-haiku"]
    assert match_eval_model("openai/gpt-4o", models) == "gpt-4o"
    assert match_eval_model("together/mistralai/Mixtral-8x7B", models) == "mistralai/Mixtral-8x7B"
    assert match_eval_model("groq/mixtral-8x7b", models) == "mistralai/Mixtral-8x7B"
    assert match_eval_model("anthropic-main/claude-haiku-4-5", models) is None
    assert match_eval_model("anthropic-main/claude-haiku-4-5", models, {"anthropic-main/claude-haiku-4-5": "claude-haiku"}) == "claude-haiku"


def test_hand_computed_impact_and_coverage(evals):
    moves = pd.DataFrame({"workflow_tag": ["w1", "w2", "w3"], "from_model": ["acct/A"] * 3,
                          "to_model": ["acct/B", "acct/C", "acct/B"], "requests": [500, 200, 100]})
    traffic = pd.DataFrame({"workflow_tag": ["w1", "w2", "w3"], "requests": [900, 1000, 100]})
    r = policy_accuracy_impact(moves, traffic, evals, n_boot=500)
    # 100 * (500/2000 * -0.1 + 200/2000 * +0.1) = -1.5 pp; w3 has no eval samples.
    assert r["accuracy_delta_pp"] == pytest.approx(-1.5)
    assert r["coverage_share"] == pytest.approx(700 / 800)
    assert r["moved_share"] == pytest.approx(800 / 2000)
    lo, hi = r["accuracy_delta_ci95"]
    assert lo < -1.5 < hi
    assert any("w3" in note for note in r["notes"])
    w3 = [m for m in r["moves"] if m["workflow_tag"] == "w3"][0]
    assert not w3["covered"] and "no eval samples" in w3["reason"]
    # Implicit weights: 0.25/40 on 40 samples and 0.1/50 on 50 samples -> Kish ESS by hand.
    w = np.r_[np.full(40, 0.25 / 40), np.full(50, 0.1 / 50)]
    assert r["kish_ess"] == pytest.approx(w.sum() ** 2 / (w ** 2).sum())
    gate = impact_gate(r, 5.0)
    assert gate["verdict"] == "undecided" and "87.5% of moved traffic" in gate["detail"]


def test_joint_bootstrap_keeps_pairs_correlated(evals):
    # A -> B and B -> A with equal traffic in the same workflow cancel exactly in every joint draw.
    moves = pd.DataFrame({"workflow_tag": ["w1", "w1"], "from_model": ["A", "B"], "to_model": ["B", "A"],
                          "requests": [100, 100]})
    traffic = pd.DataFrame({"workflow_tag": ["w1"], "requests": [1000]})
    r = policy_accuracy_impact(moves, traffic, evals, n_boot=500)
    assert r["accuracy_delta_pp"] == pytest.approx(0.0, abs=1e-12)
    assert r["accuracy_delta_ci95"] == pytest.approx((0.0, 0.0), abs=1e-12)


def test_covariate_shift_weights_follow_production_prompts():
    rng = np.random.default_rng(0)
    n = 200
    long = rng.random(n) < 0.5
    prompts = ["x" * (2000 if is_long else 20) + str(i) for i, is_long in enumerate(long)]
    a = np.ones(n)
    b = np.where(long, 1.0, 0.0)  # B fails only on short prompts
    evals = pd.concat([_binary("w", "A", a, prompts), _binary("w", "B", b, prompts)], ignore_index=True)
    prod = pd.DataFrame({"workflow_tag": "w", "prompt": ["y" * 2100] * 90 + ["z" * 25] * 10})
    moves = pd.DataFrame({"workflow_tag": ["w"], "from_model": ["A"], "to_model": ["B"], "requests": [100]})
    traffic = pd.DataFrame({"workflow_tag": ["w"], "requests": [100]})
    plain = policy_accuracy_impact(moves, traffic, evals, n_boot=200)
    shifted = policy_accuracy_impact(moves, traffic, evals, prod_prompts=prod, n_boot=200)
    assert plain["accuracy_delta_pp"] == pytest.approx(-100 * (~long).mean())
    # Production is 90% long prompts, where B loses nothing: the reweighted drop must be much smaller.
    assert shifted["accuracy_delta_pp"] > plain["accuracy_delta_pp"] / 2
    assert shifted["workflows"][0]["weighting"] == "post-stratification + covariate shift"
    assert shifted["workflows"][0]["kish_ess"] < n


def test_covariate_shift_weights_follow_the_workflow_map_of_each_call():
    # One eval workflow "w"; production has a workflow of long prompts and one of short prompts. B fails only on
    # short prompts, so mapping the short workflow onto "w" must give a larger drop than mapping the long one, even
    # when both calls pass the very same sample and prompt objects (the weights are kept per call's inputs).
    n = 200
    long = np.arange(n) % 2 == 0
    prompts = ["x" * (2000 if is_long else 20) + str(i) for i, is_long in enumerate(long)]
    evals = pd.concat([_binary("w", "A", np.ones(n), prompts), _binary("w", "B", long.astype(float), prompts)],
                      ignore_index=True)
    prod = pd.DataFrame({"workflow_tag": ["long-wf"] * 100 + ["short-wf"] * 100,
                         "prompt": ["y" * 2100] * 100 + ["z" * 25] * 100})

    def impact(tag, samples, prompts_frame):
        moves = pd.DataFrame({"workflow_tag": [tag], "from_model": ["A"], "to_model": ["B"], "requests": [100]})
        traffic = pd.DataFrame({"workflow_tag": [tag], "requests": [100]})
        return policy_accuracy_impact(moves, traffic, samples, workflow_map={tag: "w"}, prod_prompts=prompts_frame,
                                      n_boot=200)["accuracy_delta_pp"]

    to_long, to_short = impact("long-wf", evals, prod), impact("short-wf", evals, prod)
    # Half the eval samples are short (B loses them all: -50 pp unweighted); long production lowers the drop,
    # short production raises it.
    assert to_long > -50 > to_short
    assert to_short == impact("short-wf", evals.copy(), prod.copy())  # fresh objects: nothing kept between calls


def test_kish_ess():
    assert kish_ess([1, 1, 1, 1]) == 4
    assert kish_ess([3, 1]) == pytest.approx(16 / 10)


def test_non_inferiority_verdicts():
    assert non_inferiority((-1.0, 1.0), 2)["verdict"] == "pass"
    assert non_inferiority((-2.0, 1.0), 2)["verdict"] == "pass"  # lower bound exactly at -margin passes
    fail = non_inferiority((-3.0, -2.5), 2)
    assert fail["verdict"] == "fail" and not fail["passed"]
    und = non_inferiority((-2.5, 0.5), 2, delta_pp=-1.0, variance_per_sample=0.1, n_now=100)
    # n = (1.959964 + 0.841621)^2 * 0.1 / 0.01^2 = 7848.88 -> 7849 - 100 more.
    assert und["verdict"] == "undecided" and not und["passed"] and und["n_more"] == 7749
    assert "7,749 more paired eval samples" in und["detail"] and "\n" not in und["detail"]
    assert samples_needed(-0.02, 0.02, 0.1) == float("inf")


def test_moved_request_delta_by_hand(evals):
    moves = pd.DataFrame({"workflow_tag": ["w1", "w2", "w3"], "from_model": ["acct/A"] * 3,
                          "to_model": ["acct/B", "acct/C", "acct/B"], "requests": [500, 200, 100]})
    traffic = pd.DataFrame({"workflow_tag": ["w1", "w2", "w3"], "requests": [900, 1000, 100]})
    r = policy_accuracy_impact(moves, traffic, evals, n_boot=500)
    # Per covered moved request (w3 has no evidence): 100 * (500 * -0.1 + 200 * 0.1) / 700 = -30/7 pp.
    assert r["accuracy_delta_moved_pp"] == pytest.approx(-30 / 7)
    # The same bootstrap draws, rescaled: traffic-wide interval x 2000 / 700.
    wide, moved = r["accuracy_delta_ci95"], r["accuracy_delta_moved_ci95"]
    assert moved == pytest.approx((wide[0] * 2000 / 700, wide[1] * 2000 / 700))


def test_a_partial_split_fails_the_moved_gate_like_the_full_move():
    # B is wrong on 150 of 5,000 samples A gets right: -3.0 pp on every moved request, at any split.
    n = 5000
    samples = pd.concat([_binary("w", "A", np.ones(n)), _binary("w", "B", np.r_[np.zeros(150), np.ones(n - 150)])],
                        ignore_index=True)
    traffic = pd.DataFrame({"workflow_tag": ["w"], "requests": [1000]})
    full = policy_accuracy_impact(pd.DataFrame({"workflow_tag": ["w"], "from_model": ["A"], "to_model": ["B"],
                                                "requests": [1000]}), traffic, samples, n_boot=1000)
    half = policy_accuracy_impact(pd.DataFrame({"workflow_tag": ["w"], "from_model": ["A"], "to_model": ["B"],
                                                "requests": [500]}), traffic, samples, n_boot=1000)
    assert full["accuracy_delta_moved_pp"] == pytest.approx(-3.0)
    assert half["accuracy_delta_moved_pp"] == pytest.approx(-3.0)
    assert half["accuracy_delta_pp"] == pytest.approx(-1.5)  # diluted over the unmoved half
    assert impact_gate(full, 2.0)["verdict"] == impact_gate(half, 2.0)["verdict"] == "fail"
    # The traffic-wide figure of the half split would have passed a 2 pp margin: that is the dilution.
    assert impact_gate(half, 2.0, moved=False)["verdict"] == "pass"


def test_date_suffixed_eval_ids_match_gateway_ids():
    models = ["claude-haiku-4-5-20251001", "gpt-4o-2024-08-06", "claude-3-5-sonnet@20240620", "gpt-4-0613"]
    assert match_eval_model("anthropic-main/claude-haiku-4-5", models) == "claude-haiku-4-5-20251001"
    assert match_eval_model("openai-main/gpt-4o", models) == "gpt-4o-2024-08-06"
    assert match_eval_model("vertex/claude-3-5-sonnet", models) == "claude-3-5-sonnet@20240620"
    assert match_eval_model("azure/gpt-4", models) == "gpt-4-0613"
    assert match_eval_model("openai-main/gpt-4o-mini", models) is None  # another model, not a snapshot of gpt-4o
    # A YYMM release tag names a distinct release, and a version in the name is part of it: neither is stripped.
    assert match_eval_model("mistral/mistral-large-2411", ["mistral-large-2407"]) is None
    assert match_eval_model("deepseek/deepseek-v3", ["deepseek-v2"]) is None
    assert match_eval_model("bedrock/us.anthropic.claude-3-5-sonnet-20240620-v1:0", models) == \
        "claude-3-5-sonnet@20240620"


def test_a_mismatch_names_both_ids():
    from simulator.evals.impact import eval_mismatch

    text = eval_mismatch("anthropic-main/claude-haiku-4-6", ["claude-haiku-4-5-20251001", "gpt-4o"])
    assert "'anthropic-main/claude-haiku-4-6'" in text and "'claude-haiku-4-5-20251001'" in text
    moves = pd.DataFrame({"workflow_tag": ["w1"], "from_model": ["A"], "to_model": ["acct/claude-haiku-4-6"],
                          "requests": [10]})
    evals = pd.concat([_binary("w1", "A", [1] * 30), _binary("w1", "claude-haiku-4-5-20251001", [1] * 30)])
    r = policy_accuracy_impact(moves, pd.DataFrame({"workflow_tag": ["w1"], "requests": [10]}), evals, n_boot=100)
    assert "acct/claude-haiku-4-6" in r["moves"][0]["reason"] and "claude-haiku-4-5-20251001" in r["moves"][0]["reason"]


def test_effective_sample_size_counts_a_shared_sample_once(evals):
    # Two moves in w1 use the same 40 samples (A -> B and C -> B): 40 samples with equal weight, so ESS = 40.
    moves = pd.DataFrame({"workflow_tag": ["w1", "w1"], "from_model": ["A", "C"], "to_model": ["B", "B"],
                          "requests": [100, 100]})
    r = policy_accuracy_impact(moves, pd.DataFrame({"workflow_tag": ["w1"], "requests": [1000]}), evals, n_boot=100)
    assert r["n_paired"] == 40 and r["kish_ess"] == pytest.approx(40.0)


def test_prompt_features_count_characters_not_bytes():
    """Digits and code punctuation are counted per character in any script; worked by hand."""
    from simulator.evals.impact import prompt_features

    got = prompt_features(["日本語12;", "é{}", None, "\ud800x9", "plain"])
    expected = np.array([
        [np.log1p(6), 2 / 6, 1 / 6],  # 3 CJK characters (9 UTF-8 bytes), 2 digits, one ';'
        [np.log1p(3), 0.0, 2 / 3],  # 'é' is two bytes, one character
        [0.0, 0.0, 0.0],  # missing prompt: the empty string
        [np.log1p(3), 1 / 3, 0.0],  # a lone surrogate (from JSON escapes) is one character
        [np.log1p(5), 0.0, 0.0],
    ])
    np.testing.assert_array_equal(got, expected)


def test_moves_are_summed_per_workflow_and_pair_in_key_order(evals):
    # Rows split over the table, out of order, with an untagged workflow (None and NaN both mean ""), a row that
    # stays on its model, a row with no requests and one without a target model: both left out.
    moves = pd.DataFrame({"workflow_tag": ["w2", "w1", None, "w1", "w1", "w1", np.nan, "w2"],
                          "from_model": ["A", "A", "A", "A", "A", "A", "A", "A"],
                          "to_model": ["C", "B", "C", "B", "A", "B", "C", None],
                          "requests": [120, 300, 10, 200, 50, 0, 5, 7]})
    traffic = pd.DataFrame({"workflow_tag": ["w1", "w2", None, "w1", np.nan], "requests": [500, 1000, 30, 400, 70]})
    r = policy_accuracy_impact(moves, traffic, evals, n_boot=200)
    # Sorted by (workflow, from, to): ("", A, C) 10 + 5, (w1, A, B) 300 + 200, (w2, A, C) 120; total 2000 requests.
    got = [(m["workflow_tag"], m["from_model"], m["to_model"], m["requests"]) for m in r["moves"]]
    assert got == [(None, "A", "C", 15), ("w1", "A", "B", 500), ("w2", "A", "C", 120)]
    assert [m["share_of_traffic"] for m in r["moves"]] == [15 / 2000, 500 / 2000, 120 / 2000]
    assert r["moved_share"] == 635 / 2000
    # By hand: 100 * (500/2000 * -0.1 + 120/2000 * +0.1) = -1.9 pp; the untagged workflow has no eval samples.
    assert r["accuracy_delta_pp"] == pytest.approx(-1.9)


def test_float_request_counts_are_summed_like_integer_ones(evals):
    moves = pd.DataFrame({"workflow_tag": ["w1", "w1"], "from_model": ["A", "A"], "to_model": ["B", "B"],
                          "requests": [250.0, 250.0]})
    traffic = pd.DataFrame({"workflow_tag": ["w1", "w2"], "requests": [1000.0, 1000.0]})
    r = policy_accuracy_impact(moves, traffic, evals, n_boot=200)
    assert [(m["workflow_tag"], m["requests"]) for m in r["moves"]] == [("w1", 500)]
    assert r["accuracy_delta_pp"] == pytest.approx(100 * 500 / 2000 * -0.1)


def test_scores_are_matched_by_sample_id_whatever_the_row_order():
    # 6 samples: A right on s1-s4, B right on s1, s2, s5; s6 scored by A only (unpaired). Rows shuffled, models mixed.
    rows = [("s3", "A", 1.0), ("s5", "B", 1.0), ("s1", "B", 1.0), ("s6", "A", 1.0), ("s2", "A", 1.0),
            ("s4", "B", 0.0), ("s5", "A", 0.0), ("s1", "A", 1.0), ("s3", "B", 0.0), ("s2", "B", 1.0),
            ("s4", "A", 1.0)]
    samples = pd.DataFrame({"sample_id": [r[0] for r in rows], "model": [r[1] for r in rows],
                            "score": [r[2] for r in rows], "correct": [r[2] for r in rows], "workflow_tag": "w"})
    moves = pd.DataFrame({"workflow_tag": ["w"], "from_model": ["acct/A"], "to_model": ["acct/B"], "requests": [10]})
    traffic = pd.DataFrame({"workflow_tag": ["w"], "requests": [10]})
    r = policy_accuracy_impact(moves, traffic, samples, min_paired=2, n_boot=50)
    # paired differences B - A on s1..s5: 0, 0, -1, -1, +1 -> mean -0.2
    assert r["moves"][0]["n_paired"] == 5
    assert r["accuracy_delta_pp"] == pytest.approx(-20.0)
