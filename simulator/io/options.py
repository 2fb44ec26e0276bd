"""How a scenario asks for an export to be read (adapter, tag convention, cache-hit policy): pandas-free, so the
scenario model (:mod:`simulator.routing.scenario`) and ``tfysim validate``'s schema checks load without pandas."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

#: Tag convention: a tag ``project:x`` sets project x (LiteLLM request_tags and metadata tags, Langfuse tags).
DEFAULT_TAG_PREFIXES = {"project": "project:", "workflow_tag": "workflow:", "team": "team:"}


@dataclasses.dataclass(frozen=True)
class AdapterOptions:
    """How to read one export: adapter name (None = detect), tag convention and the gateway cache-hit policy.

    ``tag_prefixes`` maps an attribution key (project, workflow_tag, team) to the tag prefix that carries it;
    ``gateway_cache_hits`` is ``reject`` (default: answered by the gateway cache without a model call, listed in
    rejects with that reason) or ``replay`` (replayed as if the cache had missed: what the cache saved).
    """

    name: str | None = None
    tag_prefixes: Mapping[str, str] = dataclasses.field(default_factory=lambda: dict(DEFAULT_TAG_PREFIXES))
    gateway_cache_hits: str = "reject"

    @classmethod
    def of(cls, value: AdapterOptions | str | None) -> AdapterOptions:
        return value if isinstance(value, AdapterOptions) else cls(name=value)
