"""One exception hierarchy; the CLI turns these into ``Error: ...`` lines in one place."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class TfysimError(Exception):
    """Base class: a user-facing problem with input, scenario or usage (exit code 2)."""

    exit_code = 2


class InputError(TfysimError):
    """A traffic, eval or other data file cannot be read or has the wrong shape."""


class ScenarioError(TfysimError):
    """A scenario file is invalid."""


class PricingError(TfysimError):
    """A model cannot be priced, or a price override is invalid."""

    def __init__(self, message: str, detail: str | None = None) -> None:
        super().__init__(message)
        self.detail = detail or message  # the problem without the fix (several are listed in one message)


class TokenizerError(TfysimError):
    """A tokenizer cannot be resolved or loaded offline."""


class StrictModeError(TfysimError):
    """Rows were rejected and ``--strict`` was given."""


class GateFailed(TfysimError):
    """At least one gate failed (exit code 1)."""

    exit_code = 1


def did_you_mean(given: str, choices: Iterable[str]) -> str:
    """`` Did you mean 'x'?`` for the closest choice, or an empty string."""
    close = difflib.get_close_matches(str(given), sorted(set(choices)), n=1, cutoff=0.6)
    return f" Did you mean '{close[0]}'?" if close else ""
