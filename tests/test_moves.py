"""The moves table built on integer codes equals a group-by over the string keys (the direct definition)."""

import numpy as np
import pandas as pd

from simulator.summary.moves import KEYS, SUMS, add_moves, group_sums, moves_frame
from simulator.summary.privacy import LITERAL_UNTAGGED, UNTAGGED


def _by_strings(wf, src, dst, method, moved, columns):
    """The table from its definition: moved rows grouped by the four labels, sums in row order."""
    labels = np.array([UNTAGGED if w is None else (LITERAL_UNTAGGED if w == UNTAGGED else w) for w in wf],
                      dtype=object)
    frame = pd.DataFrame({"workflow_tag": labels, "from_model": src, "to_model": dst,
                          "translation": [str(m) for m in method], "requests": 1.0, **columns})[moved]
    return frame.groupby(KEYS, as_index=False, sort=True)[SUMS].sum()


def test_moves_frame_equals_the_string_group_by():
    rng = np.random.default_rng(7)
    n = 5000
    wf = rng.choice(np.array(["b-flow", "a-flow", None, UNTAGGED, "zeta"], dtype=object), n)
    src = rng.choice(np.array(["m/opus", "m/sonnet", "m/haiku"], dtype=object), n)
    dst = rng.choice(np.array(["m/haiku", "m/sonnet"], dtype=object), n)
    method = rng.choice(np.array(["exact", "calibrated", "identity", "calibrated-default"], dtype=object), n)
    moved = rng.random(n) < 0.7
    ints = {c: rng.integers(0, 10_000, n).astype(np.float64) for c in
            ("input_tokens_recorded", "output_tokens_recorded", "cache_tokens_recorded", "input_tokens",
             "output_tokens")}
    recorded, cost = rng.random(n) * 0.3, rng.random(n) * 0.1
    low, high = 1 - rng.random(n) * 0.2, 1 + rng.random(n) * 0.2
    got = moves_frame(wf, src, dst, method, moved, **ints, recorded_cost_usd=recorded, cost_usd=cost,
                      cost_low=low, cost_high=high)
    want = _by_strings(wf, src, dst, method, moved, {**ints, "recorded_cost_usd": recorded, "cost_usd": cost,
                                                    "cost_low_usd": cost * low, "cost_high_usd": cost * high})
    assert len(want) > 40  # many groups, a missing and a literal UNTAGGED among them
    assert set(want["workflow_tag"]) >= {UNTAGGED, LITERAL_UNTAGGED}
    pd.testing.assert_frame_equal(got, want, check_exact=True)
    # chunks add up to the whole (sums of sums, so equal within rounding)
    half = np.arange(n) < n // 2
    parts = [moves_frame(wf, src, dst, method, moved & sel, **ints, recorded_cost_usd=recorded, cost_usd=cost,
                         cost_low=low, cost_high=high) for sel in (half, ~half)]
    pd.testing.assert_frame_equal(add_moves(parts), want, rtol=1e-12)


def test_moves_frame_without_moved_rows_is_empty():
    n = 3
    z = np.zeros(n)
    got = moves_frame(np.array(["a"] * n, dtype=object), np.array(["x"] * n, dtype=object),
                      np.array(["y"] * n, dtype=object), np.array([""] * n, dtype=object), np.zeros(n, bool),
                      input_tokens_recorded=z, output_tokens_recorded=z, cache_tokens_recorded=z, input_tokens=z,
                      output_tokens=z, recorded_cost_usd=z, cost_usd=z, cost_low=z, cost_high=z)
    assert got.empty and list(got.columns) == KEYS + SUMS


def test_moves_from_outcome_takes_the_workflow_as_categories_or_as_rows():
    """A categorical workflow column (codes + labels) gives the same table as its values row by row."""
    from types import SimpleNamespace

    from simulator.summary.moves import moves_from_outcome

    rng = np.random.default_rng(11)
    n = 3000
    vocab = ["m/a", "m/b", "m/c"]
    model = rng.integers(0, 3, n)
    p = SimpleNamespace(vocab=vocab, n=n, model=model, inp=rng.integers(0, 99, n), out=rng.integers(0, 99, n),
                        cr=rng.integers(0, 9, n), cw=rng.integers(0, 9, n))
    served = np.where(rng.random(n) < 0.5, 2, model)
    o = SimpleNamespace(name="c", model=served, changed=served != model, blocked=rng.random(n) < 0.1,
                        translation=rng.choice(np.array(["exact", "identity"], dtype=object), n),
                        input_tokens=rng.integers(0, 99, n), output_tokens=rng.integers(0, 99, n),
                        cost_usd=rng.random(n))
    categories = np.array(["wf-b", UNTAGGED, "wf-a", "unused"], dtype=object)  # labels: UNTAGGED = missing
    codes = rng.integers(0, 3, n)
    base = rng.random(n)
    rows_version = moves_from_outcome(p, o, base, workflow=categories[codes])
    cat_version = moves_from_outcome(p, o, base, workflow=pd.Categorical.from_codes(codes, categories=categories))
    pd.testing.assert_frame_equal(cat_version, rows_version, check_exact=True)
    assert rows_version["requests"].sum() == (o.changed & ~o.blocked).sum()


def test_a_missing_workflow_is_untagged_in_the_moves_table_from_every_engine_path():
    """Four moved requests: two without a workflow tag, one tagged literally "UNTAGGED", one "wf". The table has
    UNTAGGED (2 requests), the literal label (1) and wf (1), whether the workflow labels come from the driver
    (attribution, as values or categories) or are read from the chunk's frame."""
    from types import SimpleNamespace

    from simulator.summary.accumulate import attribution, attribution_keys
    from simulator.summary.moves import moves_from_outcome

    n = 4
    frame = pd.DataFrame({"workflow_tag": [None, np.nan, UNTAGGED, "wf"]})
    p = SimpleNamespace(vocab=["m/a", "m/b"], n=n, model=np.zeros(n, np.int64), inp=np.ones(n), out=np.ones(n),
                        cr=np.zeros(n), cw=np.zeros(n), frame=frame)
    o = SimpleNamespace(name="c", model=np.ones(n, np.int64), changed=np.ones(n, bool), blocked=np.zeros(n, bool),
                        translation=np.array(["identity"] * n, dtype=object), input_tokens=np.ones(n),
                        output_tokens=np.ones(n), cost_usd=np.ones(n))
    want = {UNTAGGED: 2.0, LITERAL_UNTAGGED: 1.0, "wf": 1.0}
    categorical = frame.astype({"workflow_tag": "category"})
    for workflow in (None, attribution(frame, "workflow_tag"), attribution_keys(categorical, "workflow_tag")):
        got = moves_from_outcome(p, o, np.ones(n), workflow=workflow)
        assert dict(zip(got["workflow_tag"], got["requests"])) == want


def test_moves_table_in_chunks_adds_the_chunk_tables_and_each_equals_the_string_group_by():
    """A running table gets, to the bit, the chunk tables added up (pandas' group sum per chunk, then sums of sums);
    rows sorted by group (pandas' other summation path) and one group alone equal the string group-by too; two
    partitions of disjoint groups merge into the whole; labels given in any order (with duplicates) merge."""
    from simulator.summary.moves import MovesTable

    rng = np.random.default_rng(3)
    n = 6000
    wf = rng.choice(np.array(["b-flow", "a-flow", "c-flow"], dtype=object), n)
    src = rng.choice(np.array(["m/opus", "m/sonnet"], dtype=object), n)
    dst = rng.choice(np.array(["m/haiku", "m/sonnet"], dtype=object), n)
    method = rng.choice(np.array(["exact", "calibrated"], dtype=object), n)
    columns = {c: rng.integers(0, 10_000, n).astype(np.float64) for c in SUMS[1:6]}
    columns.update({c: rng.random(n) * 10.0 ** rng.integers(-6, 3, n) for c in SUMS[6:]})

    def add(table, rows):
        keys = []
        for values in (wf, src, dst, method):
            uniques = sorted(set(values[rows]))
            labels = np.array(uniques * 2, dtype=object)  # each label twice (odd rows use the second): codes merge
            keys.append((pd.Index(uniques).get_indexer(values[rows]) + len(uniques) * (rows % 2), labels))
        table.add(*keys, **{c: v[rows] for c, v in columns.items()})
        return table

    def reference(rows):
        return _by_strings(wf[rows], src[rows], dst[rows], method[rows], np.ones(len(rows), bool),
                           {c: v[rows] for c, v in columns.items()})

    chunks = np.array_split(np.arange(n), [1000, 1001, 4500])
    running = MovesTable()
    for rows in chunks:
        add(running, rows)
        pd.testing.assert_frame_equal(add(MovesTable(), rows).frame(), reference(rows), check_exact=True)
    want = None
    for rows in chunks:  # the chunk tables added one by one, as the accumulators did with frames
        want = add_moves([want, reference(rows)])
    pd.testing.assert_frame_equal(running.frame(), want, check_exact=True)
    pd.testing.assert_frame_equal(running.frame(), reference(np.arange(n)), rtol=1e-12)
    by_group = np.lexsort((method, dst, src, wf))  # rows sorted by their group
    pd.testing.assert_frame_equal(add(MovesTable(), by_group).frame(), reference(by_group), check_exact=True)
    one = np.flatnonzero((wf == "a-flow") & (src == "m/opus") & (dst == "m/haiku") & (method == "exact"))
    pd.testing.assert_frame_equal(add(MovesTable(), one).frame(), reference(one), check_exact=True)
    opus = src == "m/opus"
    merged = add(MovesTable(), np.flatnonzero(opus)).merge(add(MovesTable(), np.flatnonzero(~opus)))
    pd.testing.assert_frame_equal(merged.frame(), add(MovesTable(), np.arange(n)).frame(), check_exact=True)


def test_group_sums_adds_with_compensation_in_row_order_like_pandas():
    # 1e16 + 1 + 1: a plain running sum loses both ones (1e16 + 1 rounds back to 1e16); a compensated sum keeps them
    frame = pd.DataFrame({"k": ["b", "a", "b", "b", "a"], "v": [1e16, 2.0, 1.0, 1.0, np.nan],
                          "w": [1.0, np.inf, 2.0, 3.0, 4.0]})
    groups, sums = group_sums(frame, ["k"], ["v", "w"])
    assert groups == [("a",), ("b",)]
    assert sums[0].tolist() == [2.0, np.inf]  # a missing value is skipped; an infinite one stays infinite
    assert sums[1].tolist() == [1e16 + 2.0, 6.0]
    assert 1e16 + 1.0 + 1.0 != 1e16 + 2.0


def test_group_sums_equals_the_pandas_group_by_and_takes_keys_as_values():
    rng = np.random.default_rng(3)
    n = 400
    frame = pd.DataFrame({"a": rng.choice(["x", "y", "zz"], n), "b": rng.choice(["m/1", "m/2"], n),
                          "v": rng.random(n) * 1e3, "w": rng.standard_normal(n) * 1e-3})
    expected = frame.groupby(["a", "b"], sort=True)[["v", "w"]].sum()
    groups, sums = group_sums(frame, ["a", frame["b"].tolist()], ["v", "w"])
    assert groups == list(expected.index)
    assert sums.tobytes() == expected.to_numpy().tobytes()


def test_group_sums_leaves_other_keys_and_columns_to_pandas():
    frame = pd.DataFrame({"k": ["a", None, "a"], "n": [1, 2, 3]})
    groups, sums = group_sums(frame, ["k"], ["n"])
    assert groups == [("a",)] and sums.tolist() == [[4.0]]  # the row without a key is left out, as group-by does
