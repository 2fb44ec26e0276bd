"""Vectorised ``when`` matching (subjects AND models AND metadata) over the traffic table."""

from __future__ import annotations

import json
from functools import cached_property

import numpy as np
import pandas as pd

from simulator.adapters import ATTRIBUTION_KEYS
from simulator.models import split_model_id


class RequestView:
    """Column access for matching, with parsed metadata keys computed once and shared across candidates."""

    def __init__(self, frame: pd.DataFrame) -> None:
        self.frame = frame
        self.n = len(frame)
        self._keys: dict[str, np.ndarray] = {}

    @cached_property
    def _metadata_objs(self) -> list[dict]:
        return [json.loads(m) if isinstance(m, str) else {} for m in self.frame["metadata"]]

    def key(self, name: str) -> np.ndarray:
        """Values of a metadata key per row (attribution columns first), as an object array (None if absent)."""
        if name not in self._keys:
            if name in ATTRIBUTION_KEYS:
                self._keys[name] = self.frame[name].to_numpy(dtype=object)
            elif name in ("model", "requested_model"):
                self._keys[name] = self.frame[name].to_numpy(dtype=object)
            else:
                vals = [o.get(name) for o in self._metadata_objs]
                self._keys[name] = np.array([None if v is None else str(v) for v in vals], dtype=object)
        return self._keys[name]

    def applies_per(self, spec: str) -> np.ndarray:
        """Key values for ``budget_applies_per`` / ``rate_limit_applies_per`` entries."""
        if spec == "user":
            return self.key("user_id")
        if spec == "model":
            return self.key("model")
        if spec.startswith("metadata."):
            return self.key(spec.split(".", 1)[1])
        return self.key(spec)

    @cached_property
    def model_names(self) -> tuple[np.ndarray, np.ndarray]:
        served = self.frame["model"].to_numpy(dtype=object)
        requested = self.frame["requested_model"].to_numpy(dtype=object)
        return (np.array([split_model_id(m)[1] for m in served], dtype=object),
                np.array([split_model_id(m)[1] for m in requested], dtype=object))


def _isin(values: np.ndarray, wanted: list[str]) -> np.ndarray:
    return pd.Index(values).isin(wanted) if len(values) else np.zeros(0, dtype=bool)


def match(view: RequestView, when) -> np.ndarray:
    """Boolean mask of rows a ``When`` block matches (an empty block matches all rows)."""
    mask = np.ones(view.n, dtype=bool)
    if when.models and "*" not in when.models:
        full = [m for m in when.models if "/" in m]
        bare = [m for m in when.models if "/" not in m]
        m = np.zeros(view.n, dtype=bool)
        if full:
            m |= _isin(view.key("model"), full) | _isin(view.key("requested_model"), full)
        if bare:
            served, requested = view.model_names
            m |= _isin(served, bare) | _isin(requested, bare) | _isin(view.key("requested_model"), bare)
        mask &= m
    for key, value in when.metadata.items():
        mask &= view.key(key) == value
    if when.subjects and "*" not in when.subjects:
        m = np.zeros(view.n, dtype=bool)
        for subject in when.subjects:
            kind, _, name = subject.partition(":")
            column = {"user": "user_id", "team": "team", "virtualaccount": "virtualaccount"}.get(kind)
            if column:
                m |= view.key(column) == name
        mask &= m
    return np.asarray(mask, dtype=bool)
