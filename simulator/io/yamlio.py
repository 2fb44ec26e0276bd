"""Safe YAML reading: one-line errors with the file and line, a cap on anchors/aliases ("billion laughs") and on
the file's size (a scenario, price override or gateway config is kilobytes; a multi-gigabyte file is a mistake that
would otherwise be read whole into memory)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from simulator.errors import TfysimError

MAX_ALIASES = 100
#: bytes of one YAML file (scenario, price overrides, service tiers, a gateway config)
MAX_YAML_BYTES = 16 * 1024**2


class _CappedLoader(yaml.SafeLoader):
    """SafeLoader that refuses documents with more than MAX_ALIASES alias references."""

    def __init__(self, stream: Any) -> None:
        super().__init__(stream)
        self._aliases = 0

    def compose_node(self, parent: Any, index: Any) -> Any:  # noqa: D102 - PyYAML hook
        if self.check_event(yaml.AliasEvent):
            self._aliases += 1
            if self._aliases > MAX_ALIASES:
                mark = self.peek_event().start_mark
                raise yaml.YAMLError(f"more than {MAX_ALIASES} YAML aliases (line {mark.line + 1}); refusing to expand")
        return super().compose_node(parent, index)


def read_yaml(path: str | Path, error: type[TfysimError]) -> Any:
    """Parse one YAML document from ``path``; problems raise ``error`` with a one-line message."""
    path = Path(path)
    try:
        with path.open("rb") as handle:
            raw = handle.read(MAX_YAML_BYTES + 1)
        if len(raw) > MAX_YAML_BYTES:
            raise error(f"{path}: larger than {MAX_YAML_BYTES // 1024**2} MiB; a YAML file here is a scenario or "
                        "config, not data.")
        text = raw.decode("utf-8")
    except FileNotFoundError:
        raise error(f"{path}: file not found.") from None
    except IsADirectoryError:
        raise error(f"{path}: is a directory, expected a YAML file.") from None
    except UnicodeDecodeError as exc:
        raise error(f"{path}: not UTF-8 text (byte {exc.start}).") from None
    except OSError as exc:
        raise error(f"{path}: cannot read ({exc.strerror}).") from None
    return parse_yaml(text, str(path), error)


def parse_yaml(text: str, where: str, error: type[TfysimError]) -> Any:
    """Parse YAML text; ``where`` names the source in messages."""
    try:
        return yaml.load(text, Loader=_CappedLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        line = f" line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise error(f"{where}:{line} invalid YAML: {exc.problem}.") from None
    except yaml.YAMLError as exc:
        raise error(f"{where}: invalid YAML: {exc}.") from None
    except (ValueError, OverflowError) as exc:
        # A scalar the resolver recognises but cannot build, e.g. the date 2026-13-01.
        raise error(f"{where}: invalid YAML value ({exc}). Quote it if it is meant as text.") from None
    except RecursionError:
        raise error(f"{where}: invalid YAML: nested too deeply; flatten the document.") from None
