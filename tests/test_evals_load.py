import gzip
import json

import pandas as pd
import pytest

from simulator.errors import InputError
from simulator.evals.load import load_eval_samples

CSV = """sample_id,model,correct,workflow_tag,output_tokens
s1,m-a,1,qa,10
s1,m-b,0,qa,12
s2,m-a,True,qa,
s2,m-b,maybe,qa,5
s3,m-a,1,qa,-5
,m-a,1,qa,3
s1,m-a,0,qa,4
"""


def test_csv_rejects_are_accounted(tmp_path):
    path = tmp_path / "evals.csv"
    path.write_text(CSV)
    result = load_eval_samples(path)
    assert result.rows_read == 7
    assert result.rows_loaded == 3
    assert result.rows_read == result.rows_loaded + result.rows_rejected
    rows = {r["row"]: r["reason"] for r in result.rejects}
    assert set(rows) == {4, 5, 6, 7}
    assert "correct must be 0/1" in rows[4]
    assert "output_tokens must be an integer >= 0" in rows[5]
    assert "sample_id is empty" in rows[6]
    assert "duplicate" in rows[7]
    assert all(r["source"] == str(path) for r in result.rejects)
    s = result.samples
    assert list(s["correct"]) == [1.0, 0.0, 1.0]
    assert list(s["score"]) == [1.0, 0.0, 1.0]
    assert s["output_tokens"].tolist()[:2] == [10, 12] and pd.isna(s["output_tokens"].iloc[2])


def test_jsonl_gz_scores_and_bad_json(tmp_path):
    path = tmp_path / "evals.jsonl.gz"
    lines = [json.dumps({"sample_id": "a", "model": "m", "score": 0.25}), "{not json",
             json.dumps({"sample_id": "b", "model": "m", "score": 1.5}), json.dumps([1, 2]),
             json.dumps({"sample_id": "c", "model": "m", "score": 0.5, "prompt": "hi", "cost_usd": 0.001})]
    with gzip.open(path, "wt") as handle:
        handle.write("\n".join(lines) + "\n")
    result = load_eval_samples([path])
    assert (result.rows_read, result.rows_loaded, result.rows_rejected) == (5, 2, 3)
    assert [r["row"] for r in result.rejects] == [2, 3, 4]
    assert "score must be a number in [0, 1]. Got 1.5 instead." in result.rejects[1]["reason"]
    assert result.samples["correct"].isna().all()
    assert result.samples["score"].tolist() == [0.25, 0.5]


def test_parquet_roundtrip(tmp_path):
    frame = pd.DataFrame({"sample_id": ["1", "2"], "model": ["x", "x"], "correct": [1, 0], "workflow_tag": ["w", None]})
    path = tmp_path / "e.parquet"
    frame.to_parquet(path)
    out = load_eval_samples(path).samples
    assert out["workflow_tag"].tolist() == ["w", None]
    assert out["correct"].tolist() == [1.0, 0.0]


def test_missing_required_column_is_one_line_input_error(tmp_path):
    path = tmp_path / "e.csv"
    path.write_text("sample,model,correct\n1,a,1\n")
    with pytest.raises(InputError) as err:
        load_eval_samples(path)
    message = str(err.value)
    assert "\n" not in message
    assert "`sample_id` is missing" in message and "Did you mean 'sample'?" in message


def test_missing_outcome_column(tmp_path):
    path = tmp_path / "e.csv"
    path.write_text("sample_id,model,corect\n1,a,1\n")
    with pytest.raises(InputError, match="needs a `correct`"):
        load_eval_samples(path)


CLEAN_CSV = """sample_id,model,correct,score,workflow_tag,prompt,input_tokens,cost_usd,judge
s1,m-a,True,,qa,hello,10,0.5,x
s1,m-b,0,0.0, ,,3,,y
s2,m-a,,0.25,qa,  hi  ,,0.001,
"""


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_clean_files_load_column_by_column_as_row_by_row(tmp_path, monkeypatch, fmt):
    # Two files of valid rows; the second repeats (s1, m-a): rejected as a duplicate, the first row kept.
    first, second = tmp_path / f"a.{fmt}", tmp_path / f"b.{fmt}"
    again = "sample_id,model,correct,score,workflow_tag,prompt,input_tokens,cost_usd,judge\ns1,m-a,1,,qa,x,1,,z\n"
    if fmt == "csv":
        first.write_text(CLEAN_CSV)
        second.write_text(again)
    else:
        pd.DataFrame({"sample_id": ["s1", "s1", "s2"], "model": ["m-a", "m-b", "m-a"], "correct": [1.0, 0.0, None],
                      "score": [None, 0.0, 0.25], "workflow_tag": ["qa", " ", "qa"], "prompt": ["hello", None, "  hi  "],
                      "input_tokens": [10, 3, None], "cost_usd": [0.5, None, 0.001],
                      "judge": ["x", "y", None]}).to_parquet(first)
        pd.DataFrame({"sample_id": ["s1"], "model": ["m-a"], "correct": [1.0], "score": [None], "workflow_tag": ["qa"],
                      "prompt": ["x"], "input_tokens": [1.0], "cost_usd": [None], "judge": ["z"]}).to_parquet(second)
    result = load_eval_samples([first, second])
    s = result.samples
    assert (result.rows_read, result.rows_loaded) == (4, 3)
    assert result.rejects == [{"source": str(second), "row": 1,
                               "reason": "duplicate sample_id 's1' for model 'm-a'; the first row is kept."}]
    assert s["sample_id"].tolist() == ["s1", "s1", "s2"] and s["model"].tolist() == ["m-a", "m-b", "m-a"]
    assert s["correct"].tolist()[:2] == [1.0, 0.0] and pd.isna(s["correct"].iloc[2])
    assert s["score"].tolist() == [1.0, 0.0, 0.25]
    assert s["workflow_tag"].tolist() == ["qa", None, "qa"]  # a blank tag is no tag
    assert s["prompt"].tolist() == ["hello", None, "  hi  "]  # text is kept as given
    assert s["input_tokens"].tolist()[:2] == [10, 3] and pd.isna(s["input_tokens"].iloc[2])
    assert s["cost_usd"].tolist()[0::2] == [0.5, 0.001] and pd.isna(s["cost_usd"].iloc[1])
    assert list(s.columns)[-1] == "judge" and s["judge"].tolist()[:2] == ["x", "y"]
    # the same table, dtypes and rejects as validating each row on its own
    import simulator.evals.load as load

    monkeypatch.setattr(load, "_load_columns", lambda files: None)
    rows = load_eval_samples([first, second])
    pd.testing.assert_frame_equal(s, rows.samples, check_exact=True)
    assert (result.rejects, result.rows_read) == (rows.rejects, rows.rows_read)


def test_blank_text_and_duplicates_found_column_by_column(tmp_path):
    """Whitespace-only text (Unicode spaces included) is blank and text that only starts or ends with space is
    kept; each repeated (sample_id, model) is rejected with its own file and row, the first row kept."""
    first, second = tmp_path / "a.parquet", tmp_path / "b.parquet"
    pd.DataFrame({"sample_id": ["s1", "s2", "s1", "s3"], "model": ["m", "m", "m", "m"], "correct": [1, 0, 1, 1],
                  "workflow_tag": ["\u3000", " qa", "qa", "\x1c\t"],
                  "prompt": ["\u2003x", "", None, "y\u00a0"]}).to_parquet(first)
    pd.DataFrame({"sample_id": ["s4", "s3", "s2"], "model": ["m", "m", "n"], "correct": [1, 0, 1],
                  "workflow_tag": ["qa", "qa", "qa"], "prompt": ["a", "b", "\u00a0"]}).to_parquet(second)
    result = load_eval_samples([first, second])
    assert result.rejects == [
        {"source": str(first), "row": 3, "reason": "duplicate sample_id 's1' for model 'm'; the first row is kept."},
        {"source": str(second), "row": 2, "reason": "duplicate sample_id 's3' for model 'm'; the first row is kept."}]
    s = result.samples
    assert s["sample_id"].tolist() == ["s1", "s2", "s3", "s4", "s2"]
    assert s["workflow_tag"].tolist() == [None, " qa", None, "qa", "qa"]
    assert s["prompt"].tolist() == ["\u2003x", None, "y\u00a0", "a", None]
