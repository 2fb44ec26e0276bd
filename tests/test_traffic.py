"""The reject discipline, file-level errors, ordering, format round trips and row-conservation properties."""

from __future__ import annotations

import csv
import gzip
import io
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from simulator.errors import InputError
from simulator.io.traffic import load_traffic

NOW = pd.Timestamp("2026-11-26T00:00:00Z")
HEADER = "request_id,timestamp,model,input_tokens,output_tokens,cost_usd,metadata\n"
GOOD = 'ok,2026-11-02T10:00:00Z,openai/gpt-4o,100,10,0.001,"{""team"":""a""}"\n'


def write(tmp_path: Path, name: str, text: str | bytes) -> Path:
    path = tmp_path / name
    if isinstance(text, str):
        text = text.encode()
    path.write_bytes(gzip.compress(text, mtime=0) if name.endswith(".gz") else text)
    return path


def load(paths, **kw):
    return load_traffic([paths] if isinstance(paths, Path) else paths, now=NOW, **kw)


def values(column: pd.Series) -> list:
    """A column's values with missing as None (categories hold NaN, text columns pd.NA)."""
    return [None if v is None or (not isinstance(v, list) and pd.isna(v)) else v for v in column.tolist()]


def reasons(traffic) -> list[tuple[int, str | None, str]]:
    return [(int(r.row), r.request_id, r.reason) for r in traffic.rejects.itertuples()]


# -- row rejects with exact reasons ---------------------------------------------------------------------------
def test_csv_row_rejects_have_line_numbers_and_exact_reasons(tmp_path):
    path = write(tmp_path, "t.csv", HEADER + GOOD + (
        "neg,2026-11-02T10:00:01Z,openai/gpt-4o,-5,10,0.001,\n"                 # line 3
        "frac,2026-11-02T10:00:02Z,openai/gpt-4o,12.5,10,0.001,\n"              # line 4
        "word,2026-11-02T10:00:03Z,openai/gpt-4o,100,many,0.001,\n"             # line 5
        "nocell,2026-11-02T10:00:04Z,openai/gpt-4o,,10,0.001,\n"                # line 6
        "nan,2026-11-02T10:00:05Z,openai/gpt-4o,100,10,NaN,\n"                  # line 7
        "inf,2026-11-02T10:00:06Z,openai/gpt-4o,100,10,inf,\n"                  # line 8
        "ninf,2026-11-02T10:00:07Z,openai/gpt-4o,100,10,-Infinity,\n"           # line 9
        "negcost,2026-11-02T10:00:08Z,openai/gpt-4o,100,10,-0.5,\n"             # line 10
        "naive,2026-11-02T10:00:09,openai/gpt-4o,100,10,0.001,\n"               # line 11
        "secs,1793613600,openai/gpt-4o,100,10,0.001,\n"                         # line 12
        "future,2026-12-30T00:00:00Z,openai/gpt-4o,100,10,0.001,\n"             # line 13
        "garbage,yesterday+01:00,openai/gpt-4o,100,10,0.001,\n"                 # line 14
        "nomodel,2026-11-02T10:00:10Z,,100,10,0.001,\n"                         # line 15
        ",2026-11-02T10:00:11Z,openai/gpt-4o,100,10,0.001,\n"                   # line 16
        'metalist,2026-11-02T10:00:12Z,openai/gpt-4o,100,10,0.001,"[1, 2]"\n'   # line 17
        "metatext,2026-11-02T10:00:13Z,openai/gpt-4o,100,10,0.001,not json\n"   # line 18
        "huge,2026-11-02T10:00:14Z,openai/gpt-4o,1e300,10,0.001,\n"             # line 19
    ))
    t = load(path)
    assert t.frame["request_id"].tolist() == ["ok"]
    assert (t.rows_read, t.rows_replayed, t.rows_rejected) == (18, 1, 17)
    assert reasons(t) == [
        (3, "neg", "input_tokens must be >= 0"),
        (4, "frac", "input_tokens must be a whole number of tokens"),
        (5, "word", "output_tokens must be an integer >= 0"),
        (6, "nocell", "input_tokens is missing"),
        (7, "nan", "cost_usd must be a finite number"),
        (8, "inf", "cost_usd must be finite"),
        (9, "ninf", "cost_usd must be finite"),
        (10, "negcost", "cost_usd must be >= 0"),
        (11, "naive", "timestamp has no time zone; add an offset (Z, +02:00) or set timezone: in the scenario"),
        (12, "secs", "epoch timestamp looks like seconds; expected milliseconds since 1970"),
        (13, "future", "timestamp is in the future"),
        (14, "garbage", "timestamp is not ISO-8601 with an offset or epoch ms"),
        (15, "nomodel", "model is missing"),
        (16, None, "request_id is missing"),
        (17, "metalist", "metadata must be a JSON object"),
        (18, "metatext", "metadata must be a JSON object"),
        (19, "huge", "input_tokens is implausibly large (above 1,000,000,000 tokens, limit max_tokens)"),
    ]
    assert set(t.rejects["source"]) == {str(path)}


def test_cache_and_status_consistency_rejects(tmp_path):
    path = write(tmp_path, "t.csv",
                 "request_id,timestamp,model,input_tokens,output_tokens,cache_read_tokens,cache_write_tokens,"
                 "cache_write_1h_tokens,status_code\n"
                 "ok,2026-11-02T10:00:00Z,m/a,100,1,60,40,40,429\n"
                 "over,2026-11-02T10:00:01Z,m/a,100,1,60,41,0,200\n"
                 "ttl,2026-11-02T10:00:02Z,m/a,100,1,0,10,11,200\n"
                 "code,2026-11-02T10:00:03Z,m/a,100,1,0,0,0,700\n")
    t = load(path)
    assert t.frame["status_code"].tolist() == [429]
    assert reasons(t) == [
        (3, "over", "cache_read_tokens + cache_write_tokens exceed input_tokens "
                    "(input_tokens must include cached tokens)"),
        (4, "ttl", "cache_write_1h_tokens exceed cache_write_tokens"),
        (5, "code", "status_code must be an HTTP status between 100 and 599"),
    ]


def test_timezone_localises_naive_timestamps_only(tmp_path):
    path = write(tmp_path, "t.csv", HEADER + (
        "summer,2026-07-01T12:00:00,m/a,1,1,,\n"            # CEST = UTC+2
        "winter,2026-01-15 12:00:00,m/a,1,1,,\n"            # CET = UTC+1
        "zoned,2026-07-01T12:00:00+05:30,m/a,1,1,,\n"       # an explicit offset is never reinterpreted
        "gap,2026-03-29T02:30:00,m/a,1,1,,\n"               # clocks jump 02:00 -> 03:00
        "fold,2026-10-25T02:30:00,m/a,1,1,,\n"              # 02:00-03:00 happens twice
        "bad,2026-02-30T10:00:00,m/a,1,1,,\n"
    ))
    t = load(path, timezone="Europe/Berlin")
    assert t.frame["request_id"].tolist() == ["winter", "zoned", "summer"]
    assert t.frame["timestamp"].tolist() == [pd.Timestamp("2026-01-15T11:00:00Z"),
                                             pd.Timestamp("2026-07-01T06:30:00Z"),
                                             pd.Timestamp("2026-07-01T10:00:00Z")]
    dst = "timestamp does not exist or is ambiguous in time zone Europe/Berlin (DST change)"
    assert reasons(t) == [(5, "gap", dst), (6, "fold", dst), (7, "bad", "timestamp is not a valid ISO-8601 date-time")]


def test_unknown_timezone_is_an_input_error(tmp_path):
    with pytest.raises(InputError, match=r"^timezone 'Mars/Olympus' is not an IANA time zone name"):
        load(write(tmp_path, "t.csv", HEADER + GOOD), timezone="Mars/Olympus")


def test_epoch_milliseconds_in_csv_and_json(tmp_path):
    csv_path = write(tmp_path, "t.csv", HEADER + "a,1793613600123,m/a,1,1,,\n")
    jsonl_path = write(tmp_path, "t.jsonl",
                       '{"request_id": "b", "timestamp": 1793613600123, "model": "m/a", "input_tokens": 1, '
                       '"output_tokens": 1}\n'
                       '{"request_id": "c", "timestamp": 1793613600500.0, "model": "m/a", "input_tokens": 1, '
                       '"output_tokens": 1}\n')
    t = load([csv_path, jsonl_path])
    # 1793613600000 ms is 2026-11-02T10:00:00Z
    assert t.frame["timestamp"].tolist() == [pd.Timestamp("2026-11-02T10:00:00.123Z")] * 2 + [
        pd.Timestamp("2026-11-02T10:00:00.500Z")]
    assert t.frame["request_id"].tolist() == ["a", "b", "c"]


def test_duplicate_request_ids_keep_the_earliest(tmp_path):
    path = write(tmp_path, "t.csv", HEADER + (
        "x,2026-11-02T10:00:05Z,m/a,1,1,,\n"   # line 2: later copy
        "x,2026-11-02T10:00:01Z,m/a,2,2,,\n"   # line 3: earliest, kept
        "y,2026-11-02T10:00:02Z,m/a,3,3,,\n"
        "x,2026-11-02T10:00:09Z,m/a,4,4,,\n"   # line 5
    ))
    t = load(path)
    assert t.frame[["request_id", "input_tokens"]].values.tolist() == [["x", 2], ["y", 3]]
    dup = "duplicate request_id (an earlier row has the same id)"
    assert reasons(t) == [(2, "x", dup), (5, "x", dup)]


def test_conflicting_duplicates_at_the_same_time_do_not_depend_on_row_order(tmp_path):
    rows = ["x,2026-11-02T10:00:00Z,m/a,1,1,,\n", "x,2026-11-02T10:00:00Z,m/a,7,7,,\n"]
    a = load(write(tmp_path, "a.csv", HEADER + rows[0] + rows[1]))
    b = load(write(tmp_path, "b.csv", HEADER + rows[1] + rows[0]))
    pd.testing.assert_frame_equal(a.frame, b.frame)
    assert a.rows_rejected == b.rows_rejected == 1


def test_output_sorted_by_timestamp_then_request_id(tmp_path):
    path = write(tmp_path, "t.csv", HEADER + (
        "c,2026-11-02T10:00:01Z,m/a,1,1,,\n"
        "b,2026-11-02T11:00:00+01:00,m/a,1,1,,\n"   # 10:00:00Z
        "a,2026-11-02T10:00:00Z,m/a,1,1,,\n"
        "d,1793613599000,m/a,1,1,,\n"                # 09:59:59Z
    ))
    assert load(path).frame["request_id"].tolist() == ["d", "a", "b", "c"]


# -- line-level reader rejects --------------------------------------------------------------------------------
def test_jsonl_line_rejects(tmp_path):
    good = '{"request_id": "%s", "timestamp": "2026-11-02T10:00:0%dZ", "model": "m/a", "input_tokens": 1, ' \
           '"output_tokens": 1%s}'
    data = b"\n".join([
        (good % ("a", 0, "")).encode(),                                   # line 1
        b"",                                                              # line 2: blank, skipped
        b'{"request_id": "r2" "timestamp": 1}',                           # line 3
        b"[1, 2]",                                                        # line 4
        (good % ("b", 1, "")).encode().replace(b'"b"', b'"b\xff"'),       # line 5: Latin-1 byte
        (good % ("c", 2, ', "cost_usd": NaN')).encode(),                  # line 6
        (good % ("d", 3, ', "cost_usd": Infinity')).encode(),             # line 7
        (good % ("e", 4, ', "metadata": "[]"')).encode(),                 # line 8
        (good % ("f", 5, ', "metadata": {"team": "t", "k": 1}')).encode(),  # line 9
    ]) + b"\n"
    t = load(write(tmp_path, "t.jsonl", data))
    assert t.frame["request_id"].tolist() == ["a", "f"]
    assert values(t.frame["team"]) == [None, "t"]
    assert values(t.frame["metadata"]) == [None, '{"k": 1}']
    assert (t.rows_read, t.rows_replayed, t.rows_rejected) == (8, 2, 6)
    assert reasons(t) == [
        (3, None, "malformed JSON: Expecting ',' delimiter at column 21"),
        (4, None, "expected a JSON object, got list"),
        (5, None, "not UTF-8 text"),
        (6, "c", "cost_usd must be a finite number"),
        (7, "d", "cost_usd must be finite"),
        (8, "e", "metadata must be a JSON object"),
    ]


def test_malformed_csv_lines_keep_physical_line_numbers(tmp_path):
    # Quoted JSON metadata and a blank line: later rows must still be reported at their physical line.
    path = write(tmp_path, "t.csv", HEADER + GOOD + (
        "\n"                                                                    # line 3: blank
        'extra,2026-11-02T10:00:01Z,m/a,1,1,0.1,"{}",surplus\n'                 # line 4: 8 fields
        'neg,2026-11-02T10:00:02Z,m/a,-1,1,0.1,"{""a"":""x,y""}"\n'             # line 5
        'multi,2026-11-02T10:00:03Z,m/a,1,1,0.1,"{""note"":\n""two lines""}"\n'  # lines 6-7
        "neg2,2026-11-02T10:00:04Z,m/a,1,-1,,\n"                                # line 8
    ))
    t = load(path)
    assert t.frame["request_id"].tolist() == ["ok", "multi"]
    assert t.frame["metadata"].tolist()[1] == '{"note": "two lines"}'
    assert reasons(t) == [
        (4, None, "malformed CSV line: expected 7 fields, saw 8"),
        (5, "neg", "input_tokens must be >= 0"),
        (8, "neg2", "output_tokens must be >= 0"),
    ]
    assert t.rows_read == 5


# -- file-level errors ----------------------------------------------------------------------------------------
def test_truncated_gzip_is_an_input_error(tmp_path):
    blob = gzip.compress((HEADER + GOOD * 50).encode())
    path = write(tmp_path, "t.csv.gz", b"")
    path.write_bytes(blob[: len(blob) // 2])
    with pytest.raises(InputError, match=r"t\.csv\.gz: truncated gzip file .* Re-export or re-compress it\.$"):
        load(path)


@pytest.mark.parametrize("name, text, message", [
    ("empty.csv", "", "empty file, expected a CSV header and rows."),
    ("blank.csv", "\n\n  \n", "empty file, expected a CSV header and rows."),
    ("empty.jsonl", "", "empty file, expected one JSON object per line."),
    ("empty.json", "", "empty file, expected JSON."),
    ("empty.csv.gz", "", "empty file, expected a CSV header and rows."),
    ("header.csv", HEADER, "no data rows (header only?)."),
    ("header.csv.gz", HEADER, "no data rows (header only?)."),
])
def test_empty_and_header_only_files(tmp_path, name, text, message):
    path = write(tmp_path, name, text)
    with pytest.raises(InputError) as err:
        load(path)
    assert str(err.value) == f"{path}: {message}"


@pytest.mark.parametrize("drop", ["input_tokens", "output_tokens", "request_id", "timestamp", "model"])
def test_missing_required_column_names_it(tmp_path, drop):
    columns = ["request_id", "timestamp", "model", "input_tokens", "output_tokens"]
    values = {"request_id": "a", "timestamp": "2026-11-02T10:00:00Z", "model": "m/a", "input_tokens": "1",
              "output_tokens": "1"}
    kept = [c for c in columns if c != drop]
    path = write(tmp_path, "t.csv", ",".join(kept) + "\n" + ",".join(values[c] for c in kept) + "\n")
    with pytest.raises(InputError, match=rf"t\.csv: missing required column\(s\) {drop} \(found: "):
        load(path)


def test_missing_timestamps_in_typed_parquet_columns_are_rejected(tmp_path):
    frame = pd.DataFrame({"request_id": ["a", "b"], "model": ["m/a", "m/a"], "input_tokens": [1, 1],
                          "output_tokens": [1, 1],
                          "timestamp": pd.to_datetime(["2026-11-02T10:00:00Z", None], utc=True)})
    path = tmp_path / "t.parquet"
    frame.to_parquet(path)
    t = load(path)
    assert t.frame["request_id"].tolist() == ["a"]
    assert reasons(t) == [(2, "b", "timestamp is missing")]


@pytest.mark.parametrize("far", [False, True])
def test_typed_millisecond_timestamps_in_and_out_of_range(tmp_path, far):
    """Typed timestamp[ms, UTC]: values are scaled to ns (1,793,613,600,123 ms is 2026-11-02T10:00:00.123Z); with
    year 3000 in the column that row is rejected for the range and the other keeps its value."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    ms = [1_793_613_600_123] + ([32_503_680_000_000] if far else [1_793_613_600_124])  # 3000-01-01
    pq.write_table(pa.table({"request_id": ["a", "b"], "model": ["m/a", "m/a"], "input_tokens": [1, 1],
                             "output_tokens": [1, 1], "timestamp": pa.array(ms, pa.timestamp("ms", "UTC"))}),
                   tmp_path / "t.parquet")
    t = load(tmp_path / "t.parquet")
    assert t.frame["timestamp"].astype("int64").tolist()[0] == 1_793_613_600_123_000_000
    if far:
        assert reasons(t) == [(2, "b", "timestamp is outside the supported range (years 1678 to 2261)")]
    else:
        assert t.frame["timestamp"].astype("int64").tolist() == [1_793_613_600_123_000_000,
                                                                 1_793_613_600_124_000_000]


# -- round trips across formats ------------------------------------------------------------------------------
ROWS = pd.DataFrame({
    "request_id": ["r3", "r1", "r2", "r4"],
    "timestamp": ["2026-11-02T10:00:02Z", "2026-11-02T12:00:00+02:00", "2026-11-02T10:00:01.250Z",
                  "2026-11-02T10:00:01.250Z"],
    "model": ["openai-main/gpt-4o", "anthropic-main/claude-sonnet-4-5", "openai-main/gpt-4o-mini", "openai/gpt-4o"],
    "requested_model": ["support/triage", None, "openai-main/gpt-4o-mini", None],
    "input_tokens": [1200, 3000, 50, 7],
    "output_tokens": [100, 0, 5, 1],
    "cache_read_tokens": [1024, 2000, 0, 0],
    "cache_write_tokens": [0, 600, 0, 0],
    "cost_usd": [0.0045, 0.0126375, np.nan, 1e-7],
    "latency_ms": [812.5, np.nan, 90.0, 12.0],
    "status_code": [200, 200, 429, 200],
    "team": ["search", None, "support", None],
    "metadata": ['{"env": "prod", "project": "p1"}', None, '{"tier": "gold"}', None],
    "prefix_hash": ["h-sys", None, None, "h-sys"],
    "prefix_tokens": [1024, 0, 0, 1024],
    "prefix_blocks": [["b1", "b2"], None, None, ["b1"]],
    "block_tokens": [512, 0, 0, 512],
})


def _write_formats(tmp_path: Path) -> dict[str, Path]:
    as_text = ROWS.assign(prefix_blocks=ROWS["prefix_blocks"].map(lambda b: json.dumps(b) if b else None))
    csv_bytes = as_text.to_csv(index=False).encode()
    records = [{k: v for k, v in rec.items() if v is not None and not (isinstance(v, float) and np.isnan(v))}
               for rec in ROWS.astype(object).to_dict("records")]
    for rec in records:
        if "metadata" in rec:
            rec["metadata"] = json.loads(rec["metadata"])  # an object in JSON, text in CSV and Parquet
    jsonl_bytes = "".join(json.dumps(rec) + "\n" for rec in records).encode()
    parquet = io.BytesIO()
    ROWS.to_parquet(parquet, index=False)
    typed = io.BytesIO()
    ROWS.assign(timestamp=pd.to_datetime(ROWS["timestamp"], utc=True, format="ISO8601")).to_parquet(typed, index=False)
    out = {}
    for name, blob in [("t.csv", csv_bytes), ("t.jsonl", jsonl_bytes), ("t.parquet", parquet.getvalue()),
                       ("typed.parquet", typed.getvalue()), ("array.json", json.dumps(records).encode())]:
        out[name] = write(tmp_path, name, blob)
        out[name + ".gz"] = write(tmp_path, name + ".gz", blob)
    return out


def test_same_rows_in_every_format_load_identically(tmp_path):
    files = _write_formats(tmp_path)
    reference = load(files["t.csv"])
    assert reference.frame["request_id"].tolist() == ["r1", "r2", "r4", "r3"]  # 10:00:00Z, 10:00:01.25 (x2), 10:00:02
    assert values(reference.frame["metadata"]) == [None, '{"tier": "gold"}', None, '{"env": "prod"}']
    assert values(reference.frame["project"]) == [None, None, None, "p1"]
    assert reference.frame["prefix_blocks"].tolist() == [None, None, ["b1"], ["b1", "b2"]]
    assert reference.rows_rejected == 0
    for name, path in files.items():
        t = load(path)
        assert (t.rows_read, t.rows_rejected) == (4, 0), name
        pd.testing.assert_frame_equal(t.frame, reference.frame, obj=name)


# -- properties: conservation, order independence, splitting -------------------------------------------------
VALID = {
    "request_id": ["a", "b", "c", "d"],
    "timestamp": ["2026-11-02T10:00:00Z", "2026-11-02T11:00:00+01:00", "1793613600000", "1793613601000"],
    "model": ["openai/gpt-4o", "anthropic/claude-sonnet-4-5"],
    "input_tokens": ["100", "2000", "0"],
    "output_tokens": ["10", "0", "3"],
    "cost_usd": ["0.001", "0.25", ""],
    "metadata": ["", '{"team": "t1"}', '{"project": "p", "k": "v"}'],
}
INVALID = {
    "request_id": [""],
    "timestamp": ["2026-11-02T10:00:00", "later", "", "1793613600"],
    "model": [""],
    "input_tokens": ["-1", "1.5", "x", ""],
    "output_tokens": ["-2", "1e400"],
    "cost_usd": ["NaN", "inf", "-1"],
    "metadata": ["[1]", "{bad"],
}


@st.composite
def ROW(draw):
    """A valid row (ids collide often, some at the same instant) or one with a single invalid field."""
    row = {name: draw(st.sampled_from(options)) for name, options in VALID.items()}
    if draw(st.integers(0, 3)) == 0:
        field = draw(st.sampled_from(sorted(INVALID)))
        row[field] = draw(st.sampled_from(INVALID[field]))
    return row


COLUMNS = ["request_id", "timestamp", "model", "input_tokens", "output_tokens", "cost_usd", "metadata"]
ANCHOR = {"request_id": "anchor", "timestamp": "2026-11-01T00:00:00Z", "model": "openai/gpt-4o",
          "input_tokens": "1", "output_tokens": "1", "cost_usd": "", "metadata": ""}
FAST = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def _csv(path: Path, rows: list[dict]) -> Path:
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    return path


def _jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@FAST
@given(rows=st.lists(ROW(), max_size=25), as_json=st.booleans())
def test_every_row_is_replayed_or_rejected(tmp_path, rows, as_json):
    rows = [ANCHOR] + rows  # one valid row so the file never fails as a whole
    path = (_jsonl if as_json else _csv)(tmp_path / ("p.jsonl" if as_json else "p.csv"), rows)
    t = load(path)
    assert t.rows_read == len(rows)
    assert t.rows_read == t.rows_replayed + t.rows_rejected
    assert t.frame["request_id"].is_unique
    assert t.rejects["row"].is_unique  # one reject per line, at most


@FAST
@given(data=st.data(), rows=st.lists(ROW(), max_size=25))
def test_permuting_rows_gives_the_identical_frame(tmp_path, data, rows):
    rows = [ANCHOR] + rows
    shuffled = data.draw(st.permutations(rows))
    a = load(_csv(tmp_path / "a.csv", rows))
    b = load(_csv(tmp_path / "b.csv", shuffled))
    pd.testing.assert_frame_equal(a.frame, b.frame)
    assert (a.rows_read, a.rows_rejected) == (b.rows_read, b.rows_rejected)


@FAST
@given(data=st.data(), rows=st.lists(ROW(), min_size=1, max_size=25))
def test_splitting_a_file_in_two_gives_the_same_frame(tmp_path, data, rows):
    rows = [ANCHOR] + rows
    cut = data.draw(st.integers(1, len(rows) - 1))
    whole = load(_csv(tmp_path / "whole.csv", rows))
    first = _csv(tmp_path / "part1.csv", rows[:cut])
    second = _jsonl(tmp_path / "part2.jsonl", rows[cut:])
    split = load([first, second])
    pd.testing.assert_frame_equal(whole.frame, split.frame)
    assert (whole.rows_read, whole.rows_rejected) == (split.rows_read, split.rows_rejected)


# -- the table contract the replay core is written against ---------------------------------------------------
def test_table_dtypes_follow_the_contract(tmp_path):
    from simulator.io.traffic import COLUMNS, TEXT_DTYPE

    files = _write_formats(tmp_path)
    for name in ("t.csv", "t.jsonl", "t.parquet", "typed.parquet"):
        frame = load(files[name]).frame
        assert list(frame.columns) == list(COLUMNS), name
        assert str(frame["timestamp"].dtype) == "datetime64[ns, UTC]"
        for column, (kind, *_rest) in COLUMNS.items():
            dtype = frame[column].dtype
            if column in ("request_id", "prompt"):
                assert dtype == TEXT_DTYPE, (name, column)
            elif kind in ("str", "json"):
                assert isinstance(dtype, pd.CategoricalDtype), (name, column)
                assert list(dtype.categories) == sorted(dtype.categories), (name, column)
                assert all(isinstance(c, str) for c in dtype.categories)
            elif kind == "int":
                assert dtype == np.int64, (name, column)
            elif kind == "float":
                assert dtype == np.float64, (name, column)
        # categories hold only values in use
        assert list(frame["model"].cat.categories) == sorted(set(ROWS["model"]))


def test_many_labels_sort_in_code_point_order(tmp_path):
    """Over a thousand distinct labels (sorted by Arrow rather than numpy): categories in Python's string order
    (code points: uppercase before lowercase, non-ASCII last, a prefix before its extensions), values kept."""
    words = ["a", "B", "é", "ab", "Z", "€", "😀", "a b", "Ā"]
    sessions = [f"{w}{i % 600}" for i, w in zip(range(1300), words * 200)]
    rows = "".join(f"r{i},2026-11-02T10:00:00Z,openai/gpt-4o,1,1,,,{s}\n" for i, s in enumerate(sessions))
    frame = load(write(tmp_path, "t.csv", HEADER.rstrip("\n") + ",session_id\n" + rows)).frame
    assert list(frame["session_id"].cat.categories) == sorted(set(sessions))
    by_id = dict(zip(frame["request_id"], frame["session_id"].astype(str)))
    assert [by_id[f"r{i}"] for i in range(len(sessions))] == sessions


def test_date_only_is_local_midnight_with_a_timezone(tmp_path):
    path = write(tmp_path, "t.csv", HEADER + "d,2026-07-01,m/a,1,1,,\n" + "e,2026-07-01T00:00:00Z,m/a,1,1,,\n")
    berlin = load(path, timezone="Europe/Berlin")
    assert berlin.frame["timestamp"].tolist() == [pd.Timestamp("2026-06-30T22:00:00Z"),
                                                   pd.Timestamp("2026-07-01T00:00:00Z")]
    plain = load(path)
    assert reasons(plain) == [(2, "d", "timestamp has no time zone; add an offset (Z, +02:00) or set timezone: in "
                                        "the scenario")]


def test_epoch_ms_text_with_a_fraction(tmp_path):
    # 1793613600000 ms is 2026-11-02T10:00:00Z; half a millisecond more is 500,000 ns
    path = write(tmp_path, "t.csv", HEADER + "a,1793613600123.5,m/a,1,1,,\nb, 1793613600000 ,m/a,1,1,,\n")
    assert load(path).frame["timestamp"].tolist() == [pd.Timestamp("2026-11-02T10:00:00Z"),
                                                      pd.Timestamp("2026-11-02T10:00:00.123500Z")]


def test_clickhouse_null_marker_is_absent_but_quoted_text_is_kept(tmp_path):
    path = write(tmp_path, "t.csv", "request_id,timestamp,model,input_tokens,output_tokens,cost_usd,team,project\n"
                                    'a,2026-11-02T10:00:00Z,m/a,1,1,\\N,\\N,"\\N"\n')
    t = load(path)
    assert t.rows_rejected == 0
    assert np.isnan(t.frame["cost_usd"].iloc[0])
    assert values(t.frame["team"]) == [None]
    assert values(t.frame["project"]) == ["\\N"]  # quoted: the text \N, not a NULL


def test_limits_are_parameters_and_environment(tmp_path, monkeypatch):
    from simulator.io.limits import Limits

    path = write(tmp_path, "t.csv", HEADER + GOOD + "big,2026-11-02T10:00:01Z,m/a,5000,1,2.5,\n")
    assert load(path).rows_rejected == 0
    t = load(path, limits=Limits(max_tokens=1000, max_cost_usd=2.0))
    assert reasons(t) == [(3, "big", "input_tokens is implausibly large (above 1,000 tokens, limit max_tokens)")]
    monkeypatch.setenv("TFYSIM_MAX_COST_USD", "2")
    assert reasons(load(path)) == [(3, "big", "cost_usd is implausibly large (above 2 USD per request, limit "
                                              "max_cost_usd)")]
    monkeypatch.delenv("TFYSIM_MAX_COST_USD")
    monkeypatch.setenv("TFYSIM_MIN_TIMESTAMP", "2026-11-02T10:00:01Z")
    assert reasons(load(path)) == [(2, "ok", "timestamp is before 2026-11-02T10:00:01Z, outside the plausible range "
                                             "(limit min_timestamp)")]


def test_deep_metadata_in_a_parquet_struct_and_json_text(tmp_path):
    deep = {"a": 1}
    for _ in range(40):
        deep = {"k": deep}
    frame = pd.DataFrame({"request_id": ["a", "b"], "timestamp": ["2026-11-02T10:00:00Z"] * 2, "model": ["m/a"] * 2,
                          "input_tokens": [1, 1], "output_tokens": [1, 1],
                          "metadata": [json.dumps(deep), json.dumps({"team": "t", "x": {"y": 1}})]})
    frame.to_parquet(tmp_path / "t.parquet")
    t = load(tmp_path / "t.parquet")
    assert reasons(t) == [(1, "a", "metadata is nested more than 32 levels deep (limit max_metadata_depth)")]
    assert values(t.frame["team"]) == ["t"] and values(t.frame["metadata"]) == ['{"x": {"y": 1}}']


def test_readme_limits_table_matches_the_defaults():
    import dataclasses

    from simulator.io.limits import Limits

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    block = readme.split("<!-- limits:start -->")[1].split("<!-- limits:end -->")[0].strip().splitlines()[2:]
    table = {cells[0].strip("`"): cells[1] for cells in ([c.strip() for c in line.strip("|").split("|")]
                                                          for line in block)}
    assert table == {f.name: str(f.default) for f in dataclasses.fields(Limits)}


def _record_lines_by_hand(data: bytes) -> list[int]:
    """Physical lines where CSV records start, walking the bytes one by one (quotes toggle, empty lines skipped)."""
    starts, quoted, line, at_start, content = [], False, 1, True, b""
    for byte in data + b"\n":
        if at_start and not quoted:
            start_line, at_start, content = line, False, b""
        if byte == ord("\n"):
            if not quoted and content.rstrip(b"\r"):
                starts.append(start_line)
            if not quoted:
                at_start = True
            line += 1
            continue
        if byte == ord('"'):
            quoted = not quoted
        content += bytes([byte])
    return starts


@pytest.mark.parametrize("data", [
    b'a,b\n1,2\n\n"x\ny",3\r\n\r\n4,"q""q"\n5,6',
    b'h\n"multi\n\nline"\n\n\nz\n',
    b"a,b\r\n1,2\r\n",
])
def test_line_scan_is_exact_wherever_the_stream_is_cut(data):
    from simulator.io.readers import LineScan

    want = _record_lines_by_hand(data)
    for cut in range(len(data) + 1):
        for second in (cut, min(len(data), cut + 3)):
            scan = LineScan()
            for piece in (data[:cut], data[cut:second], data[second:]):
                scan.feed(piece)
            assert scan.record_lines().tolist() == want, (cut, second)


def test_crlf_csv_and_a_bom_read_like_lf(tmp_path):
    lf = HEADER + GOOD + "two,2026-11-02T10:00:01Z,openai/gpt-4o,-1,10,0.001,\n"
    a = load(write(tmp_path, "lf.csv", lf))
    b = load(write(tmp_path, "crlf.csv", "\ufeff" + lf.replace("\n", "\r\n")))
    pd.testing.assert_frame_equal(a.frame, b.frame)
    assert reasons(a) == reasons(b) == [(3, "two", "input_tokens must be >= 0")]


def test_duplicates_found_by_hash_on_large_tables_match_the_small_table_path(tmp_path):
    # 250,000 rows take the hashed path; rows 7, 50,007, ... repeat the id of the row 3 before them (5 copies).
    n = 250_000
    ids = np.array([f"id-{i - 3}" if i % 50_000 == 7 else f"id-{i}" for i in range(n)], dtype=object)
    frame = pd.DataFrame({"request_id": ids, "timestamp": pd.Timestamp("2026-11-02T10:00:00Z") +
                          pd.to_timedelta(np.arange(n), unit="ms"), "model": "m/a", "input_tokens": 1,
                          "output_tokens": 1})
    frame.to_parquet(tmp_path / "t.parquet")
    t = load(tmp_path / "t.parquet")
    counts = pd.Series(ids).value_counts()
    repeated = set(counts[counts > 1].index)
    assert t.rows_rejected == sum(counts[counts > 1] - 1) == len(repeated) == 5
    assert set(t.rejects["request_id"]) == repeated
    assert t.frame["request_id"].is_unique and len(t.frame) == n - len(repeated)


@pytest.mark.parametrize("name", ["t.csv.gz", "t.jsonl.gz", "t.json", "t.parquet.gz"])
def test_byte_limit_stops_every_format(tmp_path, name):
    from simulator.io.limits import Limits

    rows = [{"request_id": f"r{i}", "timestamp": "2026-11-02T10:00:00Z", "model": "m/a", "input_tokens": 1,
             "output_tokens": 1} for i in range(3000)]
    if name.startswith("t.csv"):
        blob = pd.DataFrame(rows).to_csv(index=False).encode()
    elif name.startswith("t.jsonl"):
        blob = "".join(json.dumps(r) + "\n" for r in rows).encode()
    elif name == "t.json":
        blob = json.dumps(rows).encode()
    else:
        buf = io.BytesIO()
        pd.DataFrame(rows).to_parquet(buf)
        blob = buf.getvalue()
    path = write(tmp_path, name, blob)
    assert load(path).rows_replayed == 3000
    limit = len(blob) - 1 if name != "t.parquet.gz" else len(blob) // 2
    with pytest.raises(InputError, match=rf"more than {limit} bytes after decompression \(limit max_file_bytes"):
        load(path, limits=Limits(max_file_bytes=limit))


def test_malformed_line_that_is_not_utf8_is_one_clear_error(tmp_path, capfd):
    # Found by the atheris csv target: pyarrow failed to decode the line for the malformed-line handler and printed
    # "Exception ignored ... UnicodeDecodeError" on stderr. Header 54 bytes + first row 32 bytes + "r2," = byte 89.
    path = write(tmp_path, "t.csv", b"request_id,timestamp,model,input_tokens,output_tokens\n"
                                    b"r1,2026-11-16T09:00:00Z,m/a,1,1\nr2,\xc5x,1\n")
    with pytest.raises(InputError) as err:
        load(path)
    assert str(err.value) == f"{path} line 3: not UTF-8 text (byte 89). Re-export as UTF-8."
    assert capfd.readouterr().err == ""


def test_metadata_depth_limit_at_its_edge(tmp_path):
    """Depth 2 passes and 3 is rejected under max_metadata_depth=2, whether or not brackets inside strings make
    the text look deeper than it is."""
    from simulator.io.limits import Limits

    texts = ['{"a": {"b": 1}}', '{"a": {"b": {"c": 1}}}', '{"a": "[[{{", "b": {"c": 1}}',
             '{"a": "[[{{", "b": {"c": [1]}}']
    frame = pd.DataFrame({"request_id": list("pqrs"), "timestamp": ["2026-11-02T10:00:00Z"] * 4, "model": ["m/a"] * 4,
                          "input_tokens": [1] * 4, "output_tokens": [1] * 4, "metadata": texts})
    frame.to_parquet(tmp_path / "t.parquet")
    t = load(tmp_path / "t.parquet", limits=Limits(max_metadata_depth=2))
    reason = "metadata is nested more than 2 levels deep (limit max_metadata_depth)"
    assert reasons(t) == [(2, "q", reason), (4, "s", reason)]
    assert t.rows_read == 4 and len(t.frame) == 2


def test_metadata_canonical_text_per_distinct_value(tmp_path):
    # Canonical text (written out by hand): keys sorted, ", " and ": " separators, non-ASCII escaped, attribution
    # keys moved to their columns (an object holding only attribution keys keeps "{}"); an empty object has no
    # text. Rows sharing a value share its text.
    meta = ['{"z": "\u00e9", "team": "t1", "a": [2, 1]}', '{"b": 1.5, "a": null}', '{"team": "t2"}', "{}",
            '{"z": "\u00e9", "team": "t1", "a": [2, 1]}']
    rows = [f'r{i},2026-11-02T10:00:0{i}Z,m/a,1,1,0.1,"{m.replace(chr(34), chr(34) * 2)}"\n' for i, m in enumerate(meta)]
    t = load(write(tmp_path, "t.csv", HEADER + "".join(rows)))
    assert t.rows_replayed == 5
    assert values(t.frame["metadata"]) == ['{"a": [2, 1], "z": "\\u00e9"}', '{"a": null, "b": 1.5}', "{}", None,
                                           '{"a": [2, 1], "z": "\\u00e9"}']
    assert values(t.frame["team"]) == ["t1", None, "t2", None, "t1"]


# -- columns a file lacks, and typed integer columns ----------------------------------------------------------
def test_columns_a_file_lacks_hold_no_memory_per_row_and_read_as_their_defaults(tmp_path, monkeypatch):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from simulator.io import traffic as T

    monkeypatch.setattr(T, "VALIDATE_ROWS", 2)  # several validated parts, joined
    ts = pd.to_datetime(["2026-11-02T10:00:03Z", "2026-11-02T10:00:01Z", "2026-11-02T10:00:02Z",
                         "2026-11-02T10:00:00Z", "2026-11-02T10:00:04Z"], utc=True)
    lean = pa.table({"request_id": ["a", "b", "c", "d", "e"], "timestamp": pa.array(ts),
                     "model": ["openai/gpt-4o"] * 5, "input_tokens": pa.array([10, 20, -1, 40, 50], pa.int64()),
                     "output_tokens": pa.array([1, 2, 3, 4, 5], pa.int32())})
    path = tmp_path / "lean.parquet"
    pq.write_table(lean, path, row_group_size=2)  # rows out of time order, one bad row (c: input_tokens -1)
    frame = load(path).frame
    assert frame["request_id"].tolist() == ["d", "b", "a", "e"]
    assert frame["input_tokens"].tolist() == [40, 20, 10, 50]
    assert frame["output_tokens"].tolist() == [4, 2, 1, 5]
    for name in ("cache_read_tokens", "cache_write_tokens", "cache_write_1h_tokens", "prefix_tokens", "block_tokens"):
        assert frame[name].dtype == np.int64 and frame[name].tolist() == [0] * 4
        assert frame[name].to_numpy().strides == (0,)  # one value, not one per row
    assert frame["status_code"].tolist() == [200] * 4
    assert frame["cost_usd"].dtype == np.float64 and frame["cost_usd"].isna().all()
    assert frame["prefix_blocks"].tolist() == [None] * 4

    # a second file that has the column: its values, the lean file's default, in time order
    rich = pa.table({"request_id": ["f"], "timestamp": pa.array(pd.to_datetime(["2026-11-02T10:00:02.5Z"], utc=True)),
                     "model": ["openai/gpt-4o"], "input_tokens": [100], "output_tokens": [7],
                     "cache_read_tokens": [60], "cost_usd": [0.25], "status_code": [429]})
    pq.write_table(rich, tmp_path / "rich.parquet")
    both = load([path, tmp_path / "rich.parquet"])
    assert both.frame["request_id"].tolist() == ["d", "b", "f", "a", "e"]
    assert both.frame["cache_read_tokens"].tolist() == [0, 0, 60, 0, 0]
    assert values(both.frame["cost_usd"]) == [None, None, 0.25, None, None]
    assert both.frame["status_code"].tolist() == [200, 200, 429, 200, 200]
    assert reasons(both) == [(3, "c", "input_tokens must be >= 0")]


def test_typed_integer_columns_out_of_range_keep_their_reasons(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.table({"request_id": ["a", "b", "c"], "timestamp": ["2026-11-02T10:00:00Z"] * 3,
                      "model": ["openai/gpt-4o"] * 3, "input_tokens": pa.array([5, 2_000_000_000, 7], pa.int64()),
                      "output_tokens": pa.array([1, None, 3], pa.int64()),
                      "status_code": pa.array([200, 200, 700], pa.int64())})
    path = tmp_path / "t.parquet"
    pq.write_table(table, path)
    traffic = load(path)
    assert reasons(traffic) == [(2, "b", "input_tokens is implausibly large (above 1,000,000,000 tokens, limit max_tokens)"),
                                (3, "c", "status_code must be an HTTP status between 100 and 599")]
    assert traffic.frame["input_tokens"].tolist() == [5]


def test_duplicate_ids_in_a_large_table_are_found_across_hash_slices(tmp_path, monkeypatch):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from simulator.io import traffic as traffic_module

    monkeypatch.setattr(traffic_module, "_KEY_ROWS", 10_000)
    n = 250_000  # 25 key slices of 10,000 rows (every size is keyed since the load-path round; the slices matter)
    ids = [f"r{i:06d}" for i in range(n)]
    ids[200_123] = ids[5]  # later copies of earlier ids, each in another slice than its first
    ids[249_999] = ids[100_000]
    ts = pd.Timestamp("2026-11-02T10:00:00Z") + pd.to_timedelta(np.arange(n), unit="ms")
    table = pa.table({"request_id": ids, "timestamp": pa.array(ts), "model": ["openai/gpt-4o"] * n,
                      "input_tokens": np.full(n, 10), "output_tokens": np.full(n, 1)})
    pq.write_table(table, tmp_path / "big.parquet")
    traffic = load(tmp_path / "big.parquet")
    assert reasons(traffic) == [(200_124, "r000005", "duplicate request_id (an earlier row has the same id)"),
                                (250_000, "r100000", "duplicate request_id (an earlier row has the same id)")]
    assert len(traffic.frame) == n - 2


def test_id_keys_are_equal_exactly_for_equal_ids_whatever_the_length_and_slice(monkeypatch):
    import pyarrow as pa

    from simulator.io import traffic as traffic_module
    from simulator.io.traffic import id_keys

    monkeypatch.setattr(traffic_module, "_KEY_ROWS", 7)  # slices end inside runs of equal ids
    rng = np.random.default_rng(3)
    # ids of 0-30 bytes that differ only in their last byte, after byte 8 or 16, by a trailing NUL, in multibyte text
    base = ["", "a", "a\x00", "abcdefgh", "abcdefgh\x00", "abcdefghi", "abcdefghj", "é" * 9, "é" * 8 + "e",
            "x" * 16, "x" * 17, "x" * 15 + "y", "req-000001", "req-000002", "req-0000010"]
    base += ["".join(rng.choice(list("ab"), size=int(k))) for k in rng.integers(0, 31, 300)]
    ids = [base[i] for i in rng.integers(0, len(base), 2_000)]
    keys = id_keys(pa.array(ids, pa.string()))
    by_id: dict[str, set[int]] = {}
    for text, key in zip(ids, keys.tolist()):
        by_id.setdefault(text, set()).add(key)
    assert all(len(k) == 1 for k in by_id.values())  # equal ids, equal keys (also across slices)
    assert len({next(iter(k)) for k in by_id.values()}) == len(by_id)  # and these distinct ids, distinct keys
    sliced = pa.array(ids, pa.large_string()).slice(11, 100)
    assert id_keys(sliced).tolist() == keys[11:111].tolist()  # an Arrow slice's offset is honoured


# -- the load path's shortcuts agree with what they stand in for ---------------------------------------------
_JSON_SCALARS = (st.none() | st.booleans() | st.integers(min_value=-(10**30), max_value=10**30)
                 | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=8))
_JSON = st.recursive(_JSON_SCALARS, lambda inner: st.lists(inner, max_size=4)
                     | st.dictionaries(st.text(max_size=4), inner, max_size=4), max_leaves=12)


def _outcome(fn, text):
    try:
        value = fn(text)
    except (json.JSONDecodeError, RecursionError) as exc:
        return type(exc).__name__
    return repr(value), type(value).__name__


@given(_JSON, st.sampled_from([(", ", ": "), (",", ":"), (" ,\n", " :\t")]))
@settings(max_examples=400, deadline=None)
def test_json_loads_is_the_json_modules_on_json_it_wrote(value, separators):
    """orjson reads what it can and ``json`` the rest: every value (big integers, NaN, Infinity included) and its
    type is the ``json`` module's own reading (the expectation)."""
    from simulator.io.columns import json_loads

    text = json.dumps(value, separators=separators)
    assert _outcome(json_loads, text) == _outcome(json.loads, text)


@pytest.mark.parametrize("text", [
    "12345678901234567890", "-9223372036854775809", '{"a": 18446744073709551616}', "1e400", "-1e400", "NaN",
    '"\\ud800"', '"\udc80"', '{"a":1,"a":2}', "[" * 1100 + "]" * 1100, "[" * 100_000 + "]" * 100_000, "",
    "{'a': 1}", '{"a":1,}', "\ufeff{}", " \r\n{}\t", '"\\u0000"', "-0", "5e-324", "1.7976931348623157e308",
    "0.1e1", "1E+2", '{"a": [1, {"b": null}]}', "tru", "nul"])
def test_json_loads_is_the_json_modules_at_the_edges(text):
    from simulator.io.columns import json_loads

    assert _outcome(json_loads, text) == _outcome(json.loads, text)


def test_stacked_dictionary_chunks_decode_to_the_chunks_values():
    """Chunks with their own dictionaries (and nulls) stacked into one dictionary array: each row decodes to the
    value it had in its chunk (expected from pyarrow's own decoding of each chunk)."""
    import pyarrow as pa

    from simulator.io.columns import _stack_dictionaries

    chunks = [pa.array(v).dictionary_encode() for v in (["a", "b", None, "a"], ["b", "c"], [None, "z", "a"])]
    stacked = _stack_dictionaries(chunks)
    expected = [v for c in chunks for v in c.dictionary.take(c.indices).to_pylist()]
    assert stacked.dictionary.take(stacked.indices).to_pylist() == expected
    assert stacked.indices.type == pa.int32()


def test_check_traffic_counts_rejects_span_and_labels_by_hand(tmp_path):
    """``validate``'s view of the traffic, written out by hand: a duplicate (the earlier copy kept), a bad row, the
    first and last kept time, and each label column's values present among kept rows (a missing value and the
    labels of rejected rows left out)."""
    from simulator.io.traffic import check_traffic

    header = "request_id,timestamp,model,requested_model,input_tokens,output_tokens,team,workflow_tag,metadata\n"
    path = write(tmp_path, "t.csv", header + (
        'a,2026-11-02T10:00:05Z,p/m1,,1,1,red,,"{""project"": ""pr""}"\n'
        "b,2026-11-02T10:00:01.5Z,p/m2,v/any,1,1,,wf,\n"
        "a,2026-11-02T10:00:09Z,p/m3,,1,1,blue,,\n"         # duplicate of line 2 (later): its labels are not kept
        "c,2026-11-02T10:00:07Z,p/m4,,-1,1,green,wf2,\n"    # rejected: its labels are not kept
    ))
    check = check_traffic([path], now=NOW)
    assert check.counts() == {"rows_read": 4, "rows_replayed": 2, "rows_rejected": 2}
    assert [(int(r.row), r.reason) for r in check.rejects.itertuples()] == [
        (4, "duplicate request_id (an earlier row has the same id)"), (5, "input_tokens must be >= 0")]
    assert (check.start_ns, check.end_ns) == (pd.Timestamp("2026-11-02T10:00:01.5Z").value,
                                              pd.Timestamp("2026-11-02T10:00:05Z").value)
    assert check.values == {"model": ["p/m1", "p/m2"], "requested_model": ["p/m1", "v/any"], "team": ["red"],
                            "workflow_tag": ["wf"], "project": ["pr"]}


@pytest.mark.parametrize("name", ["t.csv", "t.jsonl", "t.parquet"])
def test_check_traffic_is_what_load_traffic_keeps_and_rejects(tmp_path, name):
    """The check and the run read the same file to the same counts, rejects (rows, ids, reasons, order), time span
    and label values (the run's table is the expectation)."""
    from simulator.io.traffic import check_traffic

    rng = np.random.default_rng(5)
    n = 3000
    frame = pd.DataFrame({
        "request_id": [f"r{i % 2900}" for i in range(n)],  # 100 duplicated ids
        "timestamp": (pd.Timestamp("2026-11-02T00:00:00Z")
                      + pd.to_timedelta(rng.integers(0, 86_400_000, n), unit="ms")).astype(str),
        "model": rng.choice(["p/a", "p/b", "p/c", ""], n),
        "input_tokens": rng.integers(-3, 1000, n).astype(str),  # some negative: rejected
        "output_tokens": rng.integers(0, 100, n).astype(str),
        "team": rng.choice(["t1", "t2", ""], n), "workflow_tag": rng.choice(["w1", "w2", "w3"], n),
        "metadata": rng.choice(['{"project": "x"}', '{"k": 1}', "not json", ""], n)})
    path = tmp_path / name
    if name.endswith(".csv"):
        frame.to_csv(path, index=False)
    elif name.endswith(".jsonl"):
        frame.to_json(path, orient="records", lines=True)
    else:
        frame.to_parquet(path)
    loaded, check = load(path), check_traffic([path], now=NOW)
    assert check.counts() == loaded.counts() and loaded.rows_rejected > 100
    pd.testing.assert_frame_equal(check.rejects, loaded.rejects)
    ts = loaded.frame["timestamp"]
    assert (check.start_ns, check.end_ns) == (ts.iloc[0].value, ts.iloc[-1].value)
    for key in ("model", "requested_model", "workflow_tag", "team", "project"):
        assert check.values[key] == sorted(set(loaded.frame[key].dropna().astype(str)))


def test_check_traffic_keeps_the_copy_the_run_keeps_when_content_decides(tmp_path):
    """Copies of an id at the same time are ranked by their content, metadata text included: the check keeps (and
    rejects) the same copies as the run, so it sees the same models (the run's table is the expectation)."""
    from simulator.io.traffic import check_traffic

    header = "request_id,timestamp,model,input_tokens,output_tokens,metadata\n"
    lines = []
    for i in range(40):  # 40 ids, each twice at one time, the copies differing in model and metadata only
        for model, meta in ((f"p/a{i}", f'{{"k": "{i}-x"}}'), (f"p/b{i}", f'{{"k": "{i}-y", "z": {i}}}')):
            lines.append(f'd{i},2026-11-02T10:00:{i:02d}Z,{model},1,1,"{meta.replace(chr(34), chr(34) * 2)}"\n')
    path = write(tmp_path, "t.csv", header + "".join(lines))
    loaded, check = load(path), check_traffic([path], now=NOW)
    assert check.counts() == loaded.counts() == {"rows_read": 80, "rows_replayed": 40, "rows_rejected": 40}
    pd.testing.assert_frame_equal(check.rejects, loaded.rejects)
    assert check.values["model"] == sorted(set(loaded.frame["model"].astype(str)))


def test_longer_than_marks_text_over_the_cap_by_hand():
    """Plain, dictionary (a label over the cap, a null row: counted as label 0, as the per-row lengths always did),
    chunked (each chunk its own dictionary) and non-text columns; 4 bytes allowed."""
    import pyarrow as pa

    from simulator.io import columns as C

    plain = pa.array(["abcd", "abcde", None, "é€"], pa.large_string())  # "é€" is 5 bytes
    assert C.longer_than(C.Col(plain), 4).tolist() == [False, True, False, True]
    dictionary = pa.DictionaryArray.from_arrays(pa.array([1, 0, None, 1], pa.int32()), pa.array(["long-label", "ok"]))
    assert C.longer_than(C.Col(dictionary), 4).tolist() == [False, True, True, False]
    short = pa.DictionaryArray.from_arrays(pa.array([0, None], pa.int32()), pa.array(["ok"]))
    assert C.longer_than(C.Col(short), 4).tolist() == [False, False]
    chunked = pa.chunked_array([short, dictionary])
    assert C.longer_than(C.Col(chunked), 4).tolist() == [False, False, False, True, True, False]
    assert C.longer_than(C.Col(pa.array([123456789, 1])), 4).tolist() == [False, False]


def test_a_capped_stream_ends_for_pyarrow_instead_of_raising():
    # pyarrow reads a CSV ahead on its own threads: a failure raised there can leave a read pending at exit (the
    # process aborts). For the reader the stream ends instead, keeping the failure for the caller to raise.
    from simulator.io.readers import CappedStream

    plain = CappedStream(io.BytesIO(b"x" * 100), cap=60)
    assert plain.read(50) == b"x" * 50
    with pytest.raises(Exception):
        plain.read(50)
    for_arrow = CappedStream(io.BytesIO(b"x" * 100), cap=60)
    for_arrow.eof_on_error = True
    assert for_arrow.read(50) == b"x" * 50
    assert for_arrow.read(50) == b"" and for_arrow.error is not None
    assert for_arrow.read(50) == b"" and (for_arrow.reads, for_arrow.reading) == (3, 0)
    whole = gzip.compress(b"a,b\n1,2\n" * 1000)
    damaged = CappedStream(gzip.GzipFile(fileobj=io.BytesIO(whole[: len(whole) // 2])), cap=10**6)
    damaged.eof_on_error = True
    while damaged.read(64):
        pass
    assert isinstance(damaged.error, EOFError)


def test_a_gzip_csv_past_the_byte_limit_is_one_error(tmp_path, monkeypatch):
    path = tmp_path / "t.csv.gz"
    path.write_bytes(gzip.compress(b"request_id,timestamp,model\n" + b"r,2026-01-01T00:00:00Z,m\n" * 100_000))
    monkeypatch.setenv("TFYSIM_MAX_FILE_BYTES", "100000")
    with pytest.raises(InputError, match=r"t\.csv\.gz: more than 100000 bytes after decompression"):
        load(path)
