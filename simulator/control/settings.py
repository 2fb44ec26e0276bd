"""Scenario settings of the control-room panels (``loop_detection``, ``alerts``, ``outcomes``, ``adoption``).

Closed pydantic models like the rest of the scenario (unknown keys are errors); every default is the rule from the
control-room article: a session's spend rate over a sliding 5-minute window above 3x the 95th percentile of its
workflow's per-session 5-minute rates over the previous 7 days.
"""

from __future__ import annotations

import re
from typing import Literal, Union

from pydantic import BaseModel, ConfigDict, Field, field_validator

_DURATION = re.compile(r"^(\d+)(s|m|h|d)$")
_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def duration_s(text: str) -> int:
    """``"5m"`` -> 300. Durations are written like Prometheus ones: an integer and one of s, m, h, d."""
    m = _DURATION.match(text)
    if not m:
        raise ValueError(f"must be a duration like 30s, 5m, 1h or 7d; got {text!r}")
    return int(m.group(1)) * _SECONDS[m.group(2)]


class _Closed(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True, defer_build=True)


def _check_duration(value: str) -> str:
    duration_s(value)
    return value


class LoopDetection(_Closed):
    """Runaway-session rules, evaluated at the start of each request over the session's earlier requests."""

    window: str = Field("5m", description="sliding window of the session's rate (and size of baseline buckets)")
    baseline_days: int = Field(7, ge=1, le=90, description="days of earlier traffic the baseline is computed on")
    quantile: float = Field(0.95, gt=0, lt=1, description="quantile of the workflow's per-session window rates")
    multiplier: float = Field(3.0, gt=0, description="a session above multiplier x quantile is runaway")
    for_: str = Field("1m", alias="for", description="how long the excess must last before the alert fires "
                                                     "(Prometheus `for:`); 0s fires at the first excess")
    weight: Literal["cost", "tokens"] = Field(
        "cost", description="cost: tokens weighted by their price (cache reads at their cost); tokens: raw counts")
    min_baseline_samples: int = Field(20, ge=1, description="no rate alert before the workflow has this many "
                                                            "(session, window) samples")
    identical_requests: int = Field(5, ge=0, description="this many identical consecutive requests (same prefix "
                                                         "hash, input tokens and prompt) flag a session; 0 = off")
    retry_storm: int = Field(5, ge=0, description="this many consecutive failed attempts within one window flag "
                                                  "a session; 0 = off")

    @field_validator("window", "for_")
    @classmethod
    def _durations(cls, value: str) -> str:
        return _check_duration(value)

    @property
    def window_s(self) -> int:
        return duration_s(self.window)

    @property
    def for_s(self) -> int:
        return duration_s(self.for_)


class BudgetCeiling(_Closed):
    """A project's budget ceiling, as a gateway-budget-config rule keyed by ``metadata.project`` would set it."""

    project: str = Field(description='project name, or "*" for every project (each against its own ceiling)')
    limit_to: float = Field(gt=0, description="USD per window")
    unit: Literal["cost_per_day", "cost_per_week", "cost_per_month"] = "cost_per_month"


class RunawayAlert(_Closed):
    enabled: bool = True
    severity: str = "critical"
    team: str = "platform"


class BudgetAlert(_Closed):
    enabled: bool = True
    ceilings: list[BudgetCeiling] = Field(default_factory=list)
    threshold_pct: float = Field(90, gt=0, le=100, description="budget_near_ceiling fires above this share")
    soft_threshold_pct: float | None = Field(80, gt=0, le=100, description="the soft alert (budget_soft_alert)")
    severity: str = "warning"
    team: str = "finance-ops"


class UntaggedAlert(_Closed):
    enabled: bool = True
    threshold_usd: float = Field(50, gt=0, description="untagged spend within one window")
    window: str = "1h"
    severity: str = "warning"
    team: str = "platform"

    @field_validator("window")
    @classmethod
    def _duration(cls, value: str) -> str:
        return _check_duration(value)


class Alerts(_Closed):
    """The article's minimum alert rule set, backtested and written as Prometheus alerting rules."""

    runaway_agent: RunawayAlert = Field(default_factory=RunawayAlert)
    budget_near_ceiling: BudgetAlert = Field(default_factory=BudgetAlert)
    untagged_spend_spike: UntaggedAlert = Field(default_factory=UntaggedAlert)
    cost_metric: str = Field("ai_gateway_request_cost_total",
                             description="the gateway's cost counter (older gateways: "
                                         "llm_gateway_request_total_cost_total)")
    metadata_label_prefix: str = Field("llm_gateway_metadata_",
                                       description="label prefix of X-TFY-METADATA keys on gateway metrics")


class GithubOutcomes(_Closed):
    """GitHub ``pull_request`` webhook payloads: a merged pull request is a ``pr_merged`` outcome."""

    paths: Union[str, list[str]]
    session_id_from: Literal["label", "trailer", "branch"] = "trailer"
    label_prefix: str = Field("session:", description="label <prefix><session id>")
    trailer: str = Field("TFY-Session-Id", description="body line '<trailer>: <session id>'")
    branch_pattern: str = Field(r"(?:^|/)session[-/](?P<session>[A-Za-z0-9._:-]+)$",
                                description="regex on the head branch; group 'session' (or the first group)")

    @field_validator("branch_pattern")
    @classmethod
    def _regex(cls, value: str) -> str:
        try:
            compiled = re.compile(value)
        except re.error as exc:
            raise ValueError(f"branch_pattern is not a valid regular expression ({exc})") from None
        if compiled.groups < 1:
            raise ValueError("branch_pattern needs a group capturing the session id, e.g. (?P<session>...)")
        return value


class Outcomes(_Closed):
    files: Union[str, list[str]] = Field(default_factory=list, description="CSV/JSONL/Parquet of session_id, "
                                                                           "outcome, timestamp")
    github: GithubOutcomes | None = None


class Adoption(_Closed):
    tool_key: str = Field("tool", description="metadata key naming the AI tool; the model's provider when absent")
    min_users: int = Field(5, ge=1, description="cells with fewer active users are suppressed")
    team_sizes: dict[str, int] = Field(default_factory=dict, description="team -> head count (default: the "
                                                                         "team's distinct active users)")


def outcome_settings(value: Union[str, list[str], Outcomes, None]) -> Outcomes | None:
    """The ``outcomes:`` key as an :class:`Outcomes` (a path or a list of paths is shorthand for ``files``)."""
    if value is None or isinstance(value, Outcomes):
        return value
    return Outcomes(files=value)
