"""Which requests share replay state, so a cluster can replay independent groups of them in parallel.

Two requests of a candidate share state when they fall in the same rate-limit slot (rule x key), the same budget slot
(a request matching several budget rules links all their slots), may share a cached prefix (same first prefix
block), or belong to one session or one workflow when runaway sessions are killed (a session's counters span its
workflows; loop baselines are per workflow). Connected groups of such keys are *components*: replaying each
component on its own, in time order, gives the same result as replaying the whole table in one pass. A global rule
(no ``*_applies_per``) makes one component of everything it matches.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

from simulator.routing.matching import RequestView, match
from simulator.state.slots import key_texts


class Rows:
    """The rows of a frame as :func:`row_keys` reads them (a :class:`~simulator.core.Chunk` also serves; this needs
    no prices or model codes)."""

    def __init__(self, frame: pd.DataFrame) -> None:
        self.frame, self.view, self.n = frame, RequestView(frame), len(frame)


class _Keys:
    """(row, key code) pairs and key names being gathered for one chunk (what :func:`row_keys` returns)."""

    def __init__(self) -> None:
        self.rows: list[np.ndarray] = []
        self.codes: list[np.ndarray] = []
        self.names: list[str] = []

    def emit(self, rows: np.ndarray, code: np.ndarray, named: list[str]) -> None:
        self.rows.append(rows)
        self.codes.append(np.asarray(code, dtype=np.int64) + len(self.names))
        self.names.extend(named)

    def workflows_and_sessions(self, p) -> None:
        """Every row to its workflow's key, every row with a session id to its session's key (named alike by
        :func:`row_keys` and :func:`panel_keys`, so :func:`merged_keys` joins them)."""
        code, workflows = pd.factorize(p.frame["workflow_tag"].astype(object).fillna("UNTAGGED").to_numpy())
        self.emit(np.arange(p.n), code, [f"k\x1f{w}" for w in workflows])
        code, sessions = pd.factorize(p.frame["session_id"].astype(object).to_numpy())  # missing: -1, no key
        has = np.flatnonzero(code >= 0)
        self.emit(has, code[has], [f"s\x1f{x}" for x in sessions])

    def result(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if not self.rows:
            return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, dtype=object)
        return np.concatenate(self.rows), np.concatenate(self.codes), np.array(self.names, dtype=object)


def row_keys(p, cand) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(row, key code) pairs of one chunk (``p``: :class:`Rows` or a Chunk) and the key names (``names[code]``, each
    name once): every state key each row touches under ``cand``. Rows carry integer codes; names are made once per
    distinct key."""
    keys = _Keys()

    def emit_slots(prefix: str, rows: np.ndarray, applies_per: list[str]) -> None:
        if len(rows):
            code, texts = key_texts(p.view, applies_per, rows)
            keys.emit(rows, code, [f"{prefix}\x1f{t}" for t in texts])

    taken = np.zeros(p.n, dtype=bool)
    for r_i, rule in enumerate(cand.rate_limits):
        rows = np.flatnonzero(match(p.view, rule.when) & ~taken)
        taken[rows] = True
        emit_slots(f"r{r_i}", rows, rule.rate_limit_applies_per)
    for b_i, b in enumerate(cand.budgets):
        emit_slots(f"b{b_i}", np.flatnonzero(match(p.view, b.when)), b.budget_applies_per)
    if cand.kill_runaway_sessions and p.n:
        # loop baselines are per workflow (of a session's first request): a workflow's sessions share state; and a
        # session's counters span its requests of every workflow, so its rows are linked by the session too
        keys.workflows_and_sessions(p)
    if cand.prompt_caching:
        from simulator.state.caching.prefixes import build_prefix_blocks

        blocks = build_prefix_blocks(p.frame)
        has = np.flatnonzero(np.diff(blocks.offsets) > 0)
        if len(has):
            code, first = pd.factorize(blocks.ids[blocks.offsets[has]])
            keys.emit(has, code, [f"c\x1f{int(x)}" for x in first])
    return keys.result()


def panel_keys(p, scenario) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`row_keys` of the control-room panels (``simulator.control.room``): the rows of one session, of one
    workflow (loop baselines, outcomes per workflow), of one project (budget alerts) and all rows without a project
    (the untagged-spend window) replay together. Adoption counts distinct sets and needs none."""
    from simulator.control.room import wanted

    keys = _Keys()
    if not p.n or not wanted(scenario):
        return keys.result()
    alerts = scenario.alerts
    if (scenario.loop_detection is not None or scenario.outcomes is not None
            or (alerts is not None and alerts.runaway_agent.enabled)):
        keys.workflows_and_sessions(p)
    if alerts is not None and (alerts.budget_near_ceiling.enabled or alerts.untagged_spend_spike.enabled):
        code, projects = pd.factorize(p.frame["project"].astype(object).to_numpy())  # missing: -1
        keep = (code >= 0) if alerts.budget_near_ceiling.enabled else np.zeros(p.n, dtype=bool)
        if alerts.untagged_spend_spike.enabled:
            keep |= code < 0
        rows = np.flatnonzero(keep)
        keys.emit(rows, np.where(code[rows] >= 0, code[rows], len(projects)),
                  [f"p\x1f{x}" for x in projects] + ["untagged"])
    return keys.result()


def merged_keys(*keys: tuple[np.ndarray, np.ndarray, np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Several :func:`row_keys` results of one chunk as one (a key named alike in two is one key)."""
    keys = [k for k in keys if len(k[0])]
    if not keys:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, dtype=object)
    code, names = pd.factorize(np.concatenate([k[2] for k in keys]).astype(object))
    offsets = np.cumsum([0] + [len(k[2]) for k in keys])
    return (np.concatenate([k[0] for k in keys]),
            np.concatenate([code[o + k[1]] for o, k in zip(offsets, keys)]).astype(np.int64),
            np.asarray(names, dtype=object))


def state_keys(cand) -> str:
    """What :func:`row_keys` reads of a candidate, as text: candidates with equal text have the same components (a
    budget of 300 or 500 per team, or a plan that adds routing rules to a candidate's budget), so one shuffle serves
    them all."""
    return json.dumps({"rate_limits": [[r.when.model_dump(mode="json"), list(r.rate_limit_applies_per)]
                                       for r in cand.rate_limits],
                       "budgets": [[b.when.model_dump(mode="json"), list(b.budget_applies_per)] for b in cand.budgets],
                       "kill": bool(cand.kill_runaway_sessions), "caching": bool(cand.prompt_caching)},
                      sort_keys=True)


def anchors(rows: np.ndarray, codes: np.ndarray, names: np.ndarray
            ) -> tuple[np.ndarray, np.ndarray, pd.DataFrame, pd.Series, np.ndarray]:
    """A chunk's (row, key code) pairs (:func:`row_keys`) reduced: the rows touching state with each one's anchor
    key code (its first key), the distinct (anchor key, other key) links and rows per anchor key (by name: what the
    client joins across partitions), and ``names``."""
    if not len(rows):
        return (np.zeros(0, np.int64), np.zeros(0, np.int64), pd.DataFrame(columns=["anchor", "key"]),
                pd.Series(dtype=np.int64), names)
    held, first = np.unique(rows, return_index=True)
    anchor = codes[first]
    row_anchor = anchor[np.searchsorted(held, rows)]
    other = codes != row_anchor
    pairs = np.unique(row_anchor[other] * len(names) + codes[other])
    links = pd.DataFrame({"anchor": names[pairs // len(names)], "key": names[pairs % len(names)]})
    per_key = np.bincount(anchor, minlength=len(names))
    used = np.flatnonzero(per_key)
    return held, anchor, links, pd.Series(per_key[used], index=names[used]), names


class Components:
    """Connected state keys (scipy's ``connected_components`` over the links); then each component goes to one of
    ``n_parts`` partitions, largest first (ties: the smallest key name first), to the partition with the fewest rows
    so far."""

    def assign(self, links: list[pd.DataFrame], counts: list[pd.Series], n_parts: int) -> dict[str, int]:
        """Partition of every anchor key (``counts``: rows per anchor key; ``links``: (anchor, key) pairs)."""
        from scipy.sparse import coo_matrix
        from scipy.sparse.csgraph import connected_components

        counts = [c for c in counts if len(c)]
        if not counts:
            return {}
        links = [f for f in links if len(f)]
        counted = np.concatenate([np.asarray(c.index, dtype=object) for c in counts])
        ends = [np.concatenate([np.asarray(f[col], dtype=object) for f in links]) if links else np.zeros(0, object)
                for col in ("anchor", "key")]
        codes, names = pd.factorize(np.concatenate([counted, *ends]), sort=True)  # code order is name order
        n_keys, n_counted, n_links = len(names), len(counted), len(ends[0])
        link_a, link_b = codes[n_counted:n_counted + n_links], codes[n_counted + n_links:]
        graph = coo_matrix((np.ones(n_links, np.int8), (link_a, link_b)), shape=(n_keys, n_keys))
        n_comp, label = connected_components(graph, directed=False)
        sizes = np.zeros(n_comp, np.int64)
        np.add.at(sizes, label[codes[:n_counted]], np.concatenate([c.to_numpy(np.int64) for c in counts]))
        root = np.full(n_comp, n_keys, np.int64)  # each component's smallest key name (as a code)
        np.minimum.at(root, label, np.arange(n_keys))
        held = np.unique(label[codes[:n_counted]])
        load = [0] * n_parts
        part = np.zeros(n_comp, np.int64)
        for comp in held[np.lexsort((root[held], -sizes[held]))].tolist():
            target = load.index(min(load))
            part[comp] = target
            load[target] += int(sizes[comp])
        keys = np.unique(codes[:n_counted])
        return dict(zip(names[keys].tolist(), part[label[keys]].tolist()))


def targets(n: int, held: np.ndarray, anchor: np.ndarray, names: np.ndarray, anchor_part: dict[str, int], own: int,
            n_parts: int) -> np.ndarray:
    """Partition of every row of a chunk of ``n`` rows: its component's (``held`` rows with their ``anchor`` key
    codes into ``names``, from :func:`anchors`), or ``own`` for rows that touch no state; in the smallest integer
    type that holds ``n_parts``."""
    dtype = np.min_scalar_type(max(n_parts - 1, 0))
    out = np.full(n, own, dtype=dtype)
    if len(held):
        distinct, inverse = np.unique(anchor, return_inverse=True)
        out[held] = np.array([anchor_part[key] for key in names[distinct]], dtype=dtype)[inverse]
    return out
