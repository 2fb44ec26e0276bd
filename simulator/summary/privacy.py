"""Pseudonymous ids for outputs: a person's id never appears in a report, only a stable salted hash of it.

The hash is stable (the same id gives the same label in every run, so week-over-week reports line up) and salted,
so a label cannot be matched against a list of hashed e-mail addresses without the salt. Set ``TFYSIM_ID_SALT`` to a
private value to make labels unguessable outside your team; the default salt only prevents naive lookups.
"""

from __future__ import annotations

import hashlib
import os

DEFAULT_SALT = "tfysim-id-v1"
#: ``budget_applies_per`` / ``rate_limit_applies_per`` keys whose values identify a person.
IDENTITY_KEYS = frozenset({"user", "metadata.user", "metadata.user_id", "metadata.email", "metadata.user_email"})


def hash_id(value: str, salt: str | None = None) -> str:
    """``"u-" + 12 hex digits`` of SHA-256 over salt and value. Example: ``hash_id("alice@example.com")``."""
    salt = salt if salt is not None else os.environ.get("TFYSIM_ID_SALT", DEFAULT_SALT)
    digest = hashlib.sha256(f"{salt}\x1f{value}".encode("utf-8")).hexdigest()
    return "u-" + digest[:12]


def output_label(spec: str, value: str | None) -> str | None:
    """How a slot key of ``spec`` may appear in an output: hashed when it identifies a person."""
    if value is None or spec not in IDENTITY_KEYS:
        return value
    return hash_id(value)
