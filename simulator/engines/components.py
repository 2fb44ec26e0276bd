"""Which requests share replay state, so a cluster can replay independent groups of them in parallel.

Two requests of a candidate share state when they fall in the same rate-limit slot (rule x key), the same budget slot
(a request matching several budget rules links all their slots), may share a cached prefix (same first prefix
block), or belong to one workflow when runaway sessions are killed (loop baselines are per workflow). Connected groups of such keys are *components*: replaying each component on its own, in time order, gives
the same result as replaying the whole table in one pass. A global rule (no ``*_applies_per``) makes one component of
everything it matches.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from simulator.routing.matching import match
from simulator.state.slots import key_texts


def row_keys(p, cand) -> tuple[np.ndarray, np.ndarray]:
    """(row, key) pairs of one chunk: every state key each row of the chunk touches under ``cand``."""
    rows_out: list[np.ndarray] = []
    keys_out: list[np.ndarray] = []

    def emit(prefix: str, rows: np.ndarray, applies_per: list[str]) -> None:
        if len(rows) == 0:
            return
        code, texts = key_texts(p.view, applies_per, rows)
        named = np.array([f"{prefix}\x1f{t}" for t in texts], dtype=object)
        rows_out.append(rows)
        keys_out.append(named[code])

    taken = np.zeros(p.n, dtype=bool)
    for r_i, rule in enumerate(cand.rate_limits):
        rows = np.flatnonzero(match(p.view, rule.when) & ~taken)
        taken[rows] = True
        emit(f"r{r_i}", rows, rule.rate_limit_applies_per)
    for b_i, b in enumerate(cand.budgets):
        emit(f"b{b_i}", np.flatnonzero(match(p.view, b.when)), b.budget_applies_per)
    if cand.kill_runaway_sessions:  # loop baselines are per workflow: a workflow's sessions share state
        workflow = p.frame["workflow_tag"].to_numpy(dtype=object)
        rows_out.append(np.arange(p.n))
        keys_out.append(np.array([f"k\x1f{'UNTAGGED' if pd.isna(w) else w}" for w in workflow], dtype=object))
    if cand.prompt_caching:
        from simulator.state.caching.prefixes import build_prefix_blocks

        blocks = build_prefix_blocks(p.frame)
        has = np.flatnonzero(np.diff(blocks.offsets) > 0)
        if len(has):
            rows_out.append(has)
            keys_out.append(np.array([f"c\x1f{int(x)}" for x in blocks.ids[blocks.offsets[has]]], dtype=object))
    if not rows_out:
        return np.zeros(0, np.int64), np.zeros(0, dtype=object)
    return np.concatenate(rows_out), np.concatenate(keys_out)


def edges(rows: np.ndarray, keys: np.ndarray) -> tuple[pd.DataFrame, pd.Series]:
    """Distinct (anchor key, other key) links of a chunk and rows per anchor key (a row's anchor: its first key)."""
    frame = pd.DataFrame({"row": rows, "key": keys})
    anchor = frame.groupby("row", sort=False)["key"].first()
    frame["anchor"] = frame["row"].map(anchor)
    links = frame.loc[frame["key"] != frame["anchor"], ["anchor", "key"]].drop_duplicates()
    return links.reset_index(drop=True), anchor.value_counts()


class Components:
    """Union-find over state keys; then each component goes to one of ``n_parts`` partitions, largest first, to the
    partition with the fewest rows so far."""

    def __init__(self) -> None:
        self.parent: dict[str, str] = {}

    def find(self, key: str) -> str:
        root = key
        while self.parent.get(root, root) != root:
            root = self.parent[root]
        while key != root:  # path compression
            self.parent[key], key = root, self.parent.get(key, key)
        return root

    def union(self, a: str, b: str) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)  # deterministic roots

    def assign(self, links: list[pd.DataFrame], counts: list[pd.Series], n_parts: int) -> dict[str, int]:
        """Partition of every anchor key."""
        sizes: dict[str, int] = {}
        for c in counts:
            for key, n in c.items():
                self.parent.setdefault(key, key)
                sizes[key] = sizes.get(key, 0) + int(n)
        for frame in links:
            for a, b in zip(frame["anchor"], frame["key"]):
                self.union(a, b)
        per_root: dict[str, int] = {}
        for key, n in sizes.items():
            root = self.find(key)
            per_root[root] = per_root.get(root, 0) + n
        load = [0] * n_parts
        part_of_root: dict[str, int] = {}
        for root, n in sorted(per_root.items(), key=lambda kv: (-kv[1], kv[0])):
            target = min(range(n_parts), key=lambda i: (load[i], i))
            part_of_root[root] = target
            load[target] += n
        return {key: part_of_root[self.find(key)] for key in sizes}


def targets(p, cand, anchor_part: dict[str, int], own: int) -> np.ndarray:
    """Partition of every row of a chunk: its component's, or ``own`` for rows that touch no state."""
    out = np.full(p.n, own, dtype=np.int64)
    rows, keys = row_keys(p, cand)
    if len(rows):
        frame = pd.DataFrame({"row": rows, "key": keys})
        anchor = frame.groupby("row", sort=False)["key"].first()
        out[anchor.index.to_numpy()] = anchor.map(anchor_part).to_numpy(dtype=np.int64)
    return out
