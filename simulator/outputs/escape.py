"""One escaping function per output format for text that comes from traffic or the scenario.

Names of candidates, scenarios, rules, models and metadata values are user data: written into a YAML comment they
must not end the comment line (a newline would turn the rest into YAML that ``tfy apply`` reads).
"""

from __future__ import annotations

import re

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\ufeff]")


def yaml_comment(text: object, max_chars: int = 500) -> str:
    """``text`` as the body of a one-line YAML comment: control characters, newlines and line separators become
    a space (``\\n`` inside a name cannot start a new YAML line), and it is cut at ``max_chars``.

    Example: ``"# " + yaml_comment("a\\nrules: []")`` -> ``"# a rules: []"``.
    """
    out = _CONTROL.sub(" ", str(text))
    return out if len(out) <= max_chars else out[: max_chars - 3] + "..."
