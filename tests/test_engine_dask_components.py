"""State components for the Dask engine's shuffle (:mod:`simulator.engines.components`), on hand-made rows.

Expectations are worked out by hand in each test: which rows share state, which partition each component goes to.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from simulator.engines.components import Components, Rows, anchors, row_keys, state_keys, targets
from simulator.routing.scenario import Candidate


def test_anchors_links_and_targets_by_hand():
    # row 0 touches keys a and c, rows 1-3 one key each (b, a, d), row 4 none. Components: {a, c} with rows 0 and 2,
    # {b} with row 1, {d} with row 3. Largest first to the emptier partition: {a, c} -> 0, {b} -> 1, {d} -> 1 (1 row
    # against 2); row 4 stays on its own partition (1).
    rows, codes = np.array([0, 1, 2, 0, 3]), np.array([0, 1, 0, 2, 3])
    names = np.array(["a", "b", "c", "d"], dtype=object)
    held, anchor, links, counts, _ = anchors(rows, codes, names)
    assert held.tolist() == [0, 1, 2, 3] and anchor.tolist() == [0, 1, 0, 3]
    assert links.to_dict("records") == [{"anchor": "a", "key": "c"}]
    assert counts.to_dict() == {"a": 2, "b": 1, "d": 1}
    part = Components().assign([links], [counts], 2)
    assert part == {"a": 0, "b": 1, "d": 1}
    got = targets(5, held, anchor, names, part, 1, 2)
    assert got.tolist() == [0, 1, 0, 1, 1] and got.dtype == np.uint8


def test_row_keys_per_team_budget_and_user_limit():
    frame = pd.DataFrame({"team": ["x", "y", "x", None], "user_id": ["u1", "u1", "u2", "u3"]})
    cand = Candidate.model_validate({
        "name": "c",
        "rate_limits": [{"id": "u", "limit_to": 1, "unit": "requests_per_minute", "rate_limit_applies_per": ["user"]}],
        "budgets": [{"id": "t", "limit_to": 1.0, "unit": "cost_per_day", "budget_applies_per": ["team"]}]})
    rows, codes, names = row_keys(Rows(frame), cand)
    pairs = sorted((int(r), names[c].split("\x1f")[0]) for r, c in zip(rows, codes))
    # every row has one rate-limit key and one budget key
    assert pairs == sorted([(r, "r0") for r in range(4)] + [(r, "b0") for r in range(4)])
    by_row = {}
    for r, c in zip(rows, codes):
        by_row.setdefault(int(r), set()).add(names[c])
    assert by_row[0] & by_row[1]  # same user u1
    assert by_row[0] & by_row[2]  # same team x
    assert not by_row[3] & (by_row[0] | by_row[1] | by_row[2])  # user u3, no team
    assert len(set(names)) == len(names)


def test_state_keys_ignore_limits_and_rules_but_not_keys():
    def cand(**fields):
        return Candidate.model_validate({"name": "c", **fields})

    team = {"id": "t", "unit": "cost_per_day", "budget_applies_per": ["team"]}
    a = cand(budgets=[{**team, "limit_to": 1.0}])
    b = cand(budgets=[{**team, "limit_to": 5.0}],
             rules=[{"id": "d", "type": "weight-based-routing", "load_balance_targets": [{"target": "x/y"}]}])
    c = cand(budgets=[{**team, "limit_to": 1.0, "budget_applies_per": ["user"]}])
    d = cand(budgets=[{**team, "limit_to": 1.0, "when": {"metadata": {"team": "x"}}}])
    assert state_keys(a) == state_keys(b)
    assert len({state_keys(a), state_keys(c), state_keys(d)}) == 3


def test_row_keys_of_a_kill_candidate_hold_a_session_together_across_workflows():
    # Session s1 has a request in workflow a (row 0) and one in b (row 2); s2 is in b only (row 1); row 3 is in c
    # without a session. The kill lever's state is per session (and its baseline per workflow of the session's first
    # request), so rows 0, 1 and 2 are one component ({a, b} linked through s1) and row 3 another ({c}).
    frame = pd.DataFrame({"workflow_tag": ["a", "b", "b", "c"], "session_id": ["s1", "s2", "s1", None]})
    cand = Candidate.model_validate({"name": "k", "kill_runaway_sessions": True})
    held, anchor, links, counts, names = anchors(*row_keys(Rows(frame), cand))
    part = Components().assign([links], [counts], 2)
    got = targets(4, held, anchor, names, part, 0, 2)
    assert got[0] == got[1] == got[2] != got[3]


def test_components_join_links_from_several_partitions_and_break_ties_by_name():
    # partition 1: a (2 rows) linked to b (no rows of its own), x (3 rows); partition 2: c (1 row) linked to b, y
    # (3 rows). Components {a, b, c} (3 rows, smallest name a), {x} (3), {y} (3): all of 3 rows, so by name:
    # a -> 0, x -> 1, y -> 0 (loads 3 and 3: the first); c goes with a.
    links = [pd.DataFrame({"anchor": ["a"], "key": ["b"]}), pd.DataFrame({"anchor": ["c"], "key": ["b"]})]
    counts = [pd.Series({"a": 2, "x": 3}), pd.Series({"c": 1, "y": 3})]
    assert Components().assign(links, counts, 2) == {"a": 0, "c": 0, "x": 1, "y": 0}
    assert Components().assign([pd.DataFrame(columns=["anchor", "key"])], [pd.Series(dtype=np.int64)], 2) == {}
