"""Vectorised ``when`` matching (subjects AND models AND metadata) over the traffic table."""

from __future__ import annotations

import json
from functools import cached_property

import numpy as np
import pandas as pd

from simulator.io.adapters import ATTRIBUTION_KEYS
from simulator.pricing.model_ids import split_model_id


class RequestView:
    """Column access for matching, with metadata keys computed once and shared across candidates.

    Category columns (as :func:`simulator.io.traffic.load_traffic` gives them) are used through their integer codes;
    metadata JSON is parsed once per distinct text."""

    def __init__(self, frame: pd.DataFrame) -> None:
        self.frame = frame
        self.n = len(frame)
        self._keys: dict[str, np.ndarray] = {}
        self._codes: dict[str, tuple[np.ndarray, np.ndarray]] = {}

    @cached_property
    def _metadata_objs(self) -> list[dict]:
        return [json.loads(m) if isinstance(m, str) else {} for m in self.frame["metadata"]]

    def key(self, name: str) -> np.ndarray:
        """Values of a metadata key per row (attribution columns first), as an object array (None if absent)."""
        if name not in self._keys:
            codes, labels = self.codes(name)
            out = np.full(self.n, None, dtype=object)
            have = codes >= 0
            out[have] = labels[codes[have]]
            self._keys[name] = out
        return self._keys[name]

    def codes(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """(codes, labels) of a key: integer work instead of string comparisons per row; -1 = absent."""
        if name not in self._codes:
            if name in ATTRIBUTION_KEYS or name in ("model", "requested_model"):
                self._codes[name] = _column_codes(self.frame[name])
            else:
                self._codes[name] = self._metadata_codes(name)
        return self._codes[name]

    def _metadata_codes(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        meta = self.frame["metadata"]
        if isinstance(meta.dtype, pd.CategoricalDtype):
            per_category = np.full(len(meta.cat.categories) + 1, None, dtype=object)  # last slot: no metadata
            for j, text in enumerate(meta.cat.categories):
                value = json.loads(text).get(name)
                per_category[j] = None if value is None else str(value)
            values = per_category[meta.cat.codes.to_numpy()]
        else:
            values = np.array([None if (v := o.get(name)) is None else str(v) for o in self._metadata_objs],
                              dtype=object)
        return _factorize(values)

    def equals(self, name: str, value: str) -> np.ndarray:
        codes, labels = self.codes(name)
        hit = np.flatnonzero(labels == value)
        return codes == hit[0] if len(hit) else np.zeros(self.n, dtype=bool)

    def isin(self, name: str, values: list[str], bare: bool = False) -> np.ndarray:
        """Rows whose key is one of ``values``; with ``bare`` the model part after ``/`` is compared."""
        codes, labels = self.codes(name)
        names = np.array([split_model_id(str(v))[1] for v in labels], dtype=object) if bare else labels
        # per label, then per row by its code (code -1, absent, reads the last slot: False)
        wanted = np.append(pd.Index(names).isin(values) if len(names) else np.zeros(0, bool), False)
        return wanted[codes]

    def applies_per_name(self, spec: str) -> str:
        if spec == "user":
            return "user_id"
        return spec.split(".", 1)[1] if spec.startswith("metadata.") else spec

    def applies_per(self, spec: str) -> np.ndarray:
        """Key values for ``budget_applies_per`` / ``rate_limit_applies_per`` entries."""
        if spec == "user":
            return self.key("user_id")
        if spec == "model":
            return self.key("model")
        if spec.startswith("metadata."):
            return self.key(spec.split(".", 1)[1])
        return self.key(spec)



def _factorize(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    codes, labels = pd.factorize(values, sort=True, use_na_sentinel=True)
    return codes.astype(np.int64), np.asarray(labels, dtype=object)


def _column_codes(column: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Codes of a category column as they are; other columns are factorised."""
    if isinstance(column.dtype, pd.CategoricalDtype):
        return column.cat.codes.to_numpy().astype(np.int64), np.asarray(column.cat.categories, dtype=object)
    values = column.to_numpy(dtype=object)
    return _factorize(np.where(pd.isna(values), None, values))


def match(view: RequestView, when) -> np.ndarray:
    """Boolean mask of rows a ``When`` block matches (an empty block matches all rows)."""
    mask = np.ones(view.n, dtype=bool)
    if when.models and "*" not in when.models:
        full = [m for m in when.models if "/" in m]
        bare = [m for m in when.models if "/" not in m]
        m = np.zeros(view.n, dtype=bool)
        if full:
            m |= view.isin("model", full) | view.isin("requested_model", full)
        if bare:
            m |= view.isin("model", bare, bare=True) | view.isin("requested_model", bare, bare=True)
            m |= view.isin("requested_model", bare)
        mask &= m
    for key, value in when.metadata.items():
        mask &= view.equals(key, value)
    if when.subjects and "*" not in when.subjects:
        m = np.zeros(view.n, dtype=bool)
        for subject in when.subjects:
            kind, _, name = subject.partition(":")
            column = {"user": "user_id", "team": "team", "virtualaccount": "virtualaccount"}.get(kind)
            if column:
                m |= view.equals(column, name)
        mask &= m
    return np.asarray(mask, dtype=bool)
