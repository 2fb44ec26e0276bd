"""Stable slot ids for keyed state (a budget or rate-limit rule x its ``*_applies_per`` key), across chunks.

A slot is (rule index, key text). Key text is the JSON list of the key's parts, an absent part ``null`` (so a value
spelled "None" or holding the separator never merges with another key). Ids are
given in first-seen order and never change, so per-slot state arrays grow as chunks bring new keys; reports list
slots by (rule, key text), which is the order a single pass over the whole table would give.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

ABSENT = None  # an absent key part (a request without that metadata key)


def key_texts(view, applies_per: list[str], rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(per-row key code, key text per code) for ``rows``; the text is built once per distinct key, not per row."""
    if not applies_per:
        return np.zeros(len(rows), dtype=np.int64), np.array([""], dtype=object)
    combo = np.zeros(len(rows), dtype=np.int64)
    texts = []
    for spec in applies_per:
        codes, labels = view.codes(view.applies_per_name(spec))
        combo = combo * (len(labels) + 1) + (codes[rows] + 1)
        texts.append([ABSENT] + [None if pd.isna(v) else str(v) for v in labels])
    uniq, inverse = unique_inverse(combo)
    joined = []
    for value in uniq:
        parts = []
        for part in reversed(texts):
            value, digit = divmod(int(value), len(part))
            parts.append(part[digit])
        joined.append(json.dumps(parts[::-1], ensure_ascii=False))
    return inverse, np.array(joined, dtype=object)


def unique_inverse(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``np.unique(values, return_inverse=True)`` of non-negative integers, by counting when their range is small
    (no sort); the inverse as int64."""
    if len(values) and 0 <= values.min() and values.max() < 4 * len(values) + 1024:
        present = np.bincount(values) > 0
        uniq = np.flatnonzero(present)
        return uniq, (np.cumsum(present) - 1)[values]
    uniq, inverse = np.unique(values, return_inverse=True)
    return uniq, inverse.reshape(-1).astype(np.int64)


def first_labels(view, applies_per: list[str], rows: np.ndarray, key_code: np.ndarray, n_keys: int) -> np.ndarray:
    """The first key part's value (or None) of the first row of each key: what a report shows for the slot."""
    if not applies_per:
        return np.array(["*"] * n_keys, dtype=object)
    codes, labels = view.codes(view.applies_per_name(applies_per[0]))
    first_row = np.full(n_keys, -1, dtype=np.int64)
    first_row[key_code[::-1]] = np.arange(len(key_code))[::-1]
    c = codes[rows[first_row]]
    return np.array([labels[x] if x >= 0 else None for x in c], dtype=object)


class Slots:
    """(rule, key text) -> slot id, with per-slot state arrays that grow as new keys appear."""

    def __init__(self, **arrays: tuple[type, float]) -> None:
        self.ids: dict[tuple[int, str], int] = {}
        self.names: list[tuple[int, str, object]] = []  # (rule, key text, label shown in reports)
        self.spec = arrays
        for name, (dtype, fill) in arrays.items():
            setattr(self, name, np.full(0, fill, dtype=dtype))

    def __len__(self) -> int:
        return len(self.names)

    def get(self, rule: int, view, applies_per: list[str], rows: np.ndarray) -> np.ndarray:
        """Slot id per row of ``rows`` for ``rule`` keyed by ``applies_per``; new keys get new slots."""
        key_code, texts = key_texts(view, applies_per, rows)
        labels = first_labels(view, applies_per, rows, key_code, len(texts))
        ids = np.empty(len(texts), dtype=np.int64)
        for u, key in enumerate(texts):
            slot = self.ids.get((rule, key))
            if slot is None:
                slot = self.ids[(rule, key)] = len(self.names)
                self.names.append((rule, key, labels[u]))
            ids[u] = slot
        grow = len(self.names) - len(getattr(self, next(iter(self.spec))))
        if grow > 0:
            for name, (dtype, fill) in self.spec.items():
                setattr(self, name, np.concatenate([getattr(self, name), np.full(grow, fill, dtype=dtype)]))
        return ids[key_code]

    def merge(self, other: Slots, add: tuple[str, ...] = (), earliest: tuple[str, ...] = ()) -> Slots:
        """Fold in another partition's slots: new keys are appended; for a key present in both, the ``add`` arrays
        are summed and the ``earliest`` arrays keep the smallest value >= 0 (state of disjoint partitions)."""
        for slot, (rule, key, label) in enumerate(other.names):
            mine = self.ids.get((rule, key))
            if mine is None:
                mine = self.ids[(rule, key)] = len(self.names)
                self.names.append((rule, key, label))
                for name in self.spec:
                    setattr(self, name, np.append(getattr(self, name), getattr(other, name)[slot]))
                continue
            for name in add:
                getattr(self, name)[mine] += getattr(other, name)[slot]
            for name in earliest:
                a, b = getattr(self, name)[mine], getattr(other, name)[slot]
                getattr(self, name)[mine] = b if a < 0 or (0 <= b < a) else a
        return self

    def order(self) -> list[int]:
        """Slots in report order: rule, then key text."""
        return sorted(range(len(self.names)), key=lambda s: (self.names[s][0], self.names[s][1]))


def factorize_sorted(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(codes, sorted unique labels) of an object array; missing values get -1."""
    codes, labels = pd.factorize(values, sort=True, use_na_sentinel=True)
    return codes.astype(np.int64), np.asarray(labels, dtype=object)
