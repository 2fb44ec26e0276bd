"""Pseudonymous ids for outputs: a person's id never appears in a report, only a stable salted hash of it.

The hash is stable (the same id gives the same label in every run, so week-over-week reports line up) and salted,
so a label cannot be matched against a list of hashed e-mail addresses without the salt. Set ``TFYSIM_ID_SALT`` to a
private value to make labels unguessable outside your team; the default salt only prevents naive lookups.

What appears in clear is an allowlist (:data:`CLEAR_KEYS` plus the metadata keys a scenario declares in
``non_personal_metadata``); the value of every other ``*_applies_per`` key (``user``, ``virtualaccount``, any other
``metadata.<key>``) is hashed. Subjects of kind ``user`` in a rule's ``when`` are hashed in every output but the
TrueFoundry config, which needs them to match.
"""

from __future__ import annotations

import hashlib
import math
import os
from collections.abc import Iterable
from typing import Any

import numpy as np
import pandas as pd

DEFAULT_SALT = "tfysim-id-v1"
#: ``*_applies_per`` keys whose values are shown in clear: attribution and model ids, never a person (the gateway
#: config spells attribution as ``metadata.<key>``: X-TFY-METADATA carries it).
CLEAR_KEYS = frozenset({"team", "project", "workflow_tag", "model",
                        "metadata.team", "metadata.project", "metadata.workflow_tag"})
#: Missing attribution (no team, project, workflow tag or metadata key) in every output.
UNTAGGED = "UNTAGGED"
#: A value literally spelled ``UNTAGGED``: shown apart from missing attribution, never merged with it.
LITERAL_UNTAGGED = '"UNTAGGED" (literal value)'


def hash_id(value: str, salt: str | None = None) -> str:
    """``"u-" + 12 hex digits`` of SHA-256 over salt and value. Example: ``hash_id("alice@example.com")``."""
    salt = salt if salt is not None else os.environ.get("TFYSIM_ID_SALT", DEFAULT_SALT)
    digest = hashlib.sha256(f"{salt}\x1f{value}".encode("utf-8")).hexdigest()
    return "u-" + digest[:12]


def is_missing(value: Any) -> bool:
    """None, NaN or ``pd.NA``: an absent key or attribution (never shown as "None" or "nan")."""
    return value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value))


def attribution_label(value: Any) -> str:
    """How an attribution value reads in outputs: missing -> ``UNTAGGED``, a literal ``UNTAGGED`` ->
    :data:`LITERAL_UNTAGGED`, anything else its text. Example: ``attribution_label(None)`` -> ``"UNTAGGED"``."""
    if is_missing(value):
        return UNTAGGED
    text = str(value)
    return LITERAL_UNTAGGED if text == UNTAGGED else text


def attribution_labels(values) -> np.ndarray:
    """:func:`attribution_label` over an array (object dtype), for group keys: a literal ``UNTAGGED`` and a missing
    value are two groups."""
    out = np.array(values, dtype=object)
    missing = pd.isna(out)
    out[missing] = UNTAGGED
    literal = np.zeros(len(out), dtype=bool)
    literal[~missing] = out[~missing] == UNTAGGED
    out[literal] = LITERAL_UNTAGGED
    return out


def in_clear(spec: str, non_personal: Iterable[str] = ()) -> bool:
    """Whether values of the ``*_applies_per`` key ``spec`` may appear in clear (the allowlist)."""
    return spec in CLEAR_KEYS or (spec.startswith("metadata.") and spec[len("metadata."):] in set(non_personal))


def output_label(spec: str, value: Any, non_personal: Iterable[str] = ()) -> str:
    """How a key value of ``spec`` appears in an output: ``UNTAGGED`` when missing, in clear when ``spec`` is on
    the allowlist, else :func:`hash_id` of it. Example: ``output_label("metadata.userId", "a@b.c")`` -> ``"u-..."``."""
    if is_missing(value):
        return UNTAGGED
    return attribution_label(value) if in_clear(spec, non_personal) else hash_id(str(value))


def subject_label(subject: str) -> str:
    """A rule subject as outputs other than the TrueFoundry config show it: ``user:<id>`` -> ``user:u-...``."""
    kind, sep, name = str(subject).partition(":")
    return f"{kind}:{hash_id(name)}" if sep and kind == "user" else str(subject)


def budget_rows(rows: list[dict[str, Any]], candidate, non_personal: Iterable[str] = ()) -> list[dict[str, Any]]:
    """Budget report rows (``key`` as the replay saw it: the raw value, ``None`` when missing) with ``key`` as
    outputs show it; a rule without ``budget_applies_per`` keeps ``key: null``."""
    specs = {b.id: (b.budget_applies_per[0] if b.budget_applies_per else None) for b in candidate.budgets}
    out = []
    for row in rows:
        spec = specs.get(row["id"])
        out.append({**row, "key": None if spec is None else output_label(spec, row["key"], non_personal)})
    return out
