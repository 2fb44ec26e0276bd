"""Adoption: active users per team x tool x UTC day, counts only, small cells suppressed.

The tool is the request's ``metadata.<tool_key>`` (``tool`` by default, the X-TFY-METADATA tool name) or, when
absent, the served model's provider. A cell with fewer than ``min_users`` active users is suppressed (its count is
null), and so is a team x tool whose users over the whole window are fewer: small counts could single people out.
Users are counted by a hash of their id, which never leaves this module. The action the article describes is the
gap between tools within a team: mean daily active users of each tool as a share of the team.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pandas as pd

from simulator.control.loops import stable_keys
from simulator.control.settings import Adoption
from simulator.io.columns import json_loads
from simulator.pricing.model_ids import guess_provider

_DAY_NS = 86_400 * 10**9
UNTAGGED = "UNTAGGED"
GAP_ACTION_PP = 10.0  # smaller gaps between tools are not worth a sprint


def tools(metadata: np.ndarray | pd.Series, model: np.ndarray, key: str) -> tuple[np.ndarray, np.ndarray]:
    """(tool, source) per request: ``metadata[key]`` (source ``metadata``) or the model's provider (source
    ``provider``; ``"unknown"`` when neither is known). Each distinct metadata text is parsed once and each distinct
    model looked up once; ``metadata`` may be a categorical Series (the loaded table's column: its codes are used)."""
    needle = json.dumps(key, ensure_ascii=False)
    meta_codes, meta_uniques = _distinct(metadata)
    values = [_metadata_value(m, key, needle) if isinstance(m, str) else None for m in meta_uniques]
    # Code -1 (a missing metadata value) picks the trailing entries: no value, so the provider.
    found = np.array([v not in (None, "") for v in values] + [False])[meta_codes]
    out = np.array([str(v) for v in values] + [""], dtype=object)[meta_codes]
    source = np.where(found, "metadata", "provider").astype(object)
    use = np.flatnonzero(~found)
    if len(use):
        names = np.asarray(model, dtype=object)[use]
        model_codes, model_uniques = pd.factorize(pd.Series(names, dtype=object, copy=False))
        providers = np.array([guess_provider(str(m)) or "unknown" for m in model_uniques] + [""], dtype=object)
        out[use] = providers[model_codes]
        missing = model_codes < 0  # a missing model: its own text, as the row-by-row lookup gave
        if missing.any():
            out[use[missing]] = [guess_provider(str(m)) or "unknown" for m in names[missing]]
    return out, source


def _distinct(metadata: np.ndarray | pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """(code per row, -1 for none; distinct values): a categorical's codes renumbered over the categories the rows
    use (a chunk's column may carry every category of the file), else text factorized (other values hold no key
    and may not hash: none)."""
    if isinstance(metadata, pd.Series) and isinstance(metadata.dtype, pd.CategoricalDtype):
        codes = metadata.cat.codes.to_numpy()
        used = np.unique(codes[codes >= 0])
        renumber = np.full(len(metadata.cat.categories) + 1, -1, dtype=np.int64)  # code -1 reads the last entry
        renumber[used] = np.arange(len(used))
        return renumber[codes], metadata.cat.categories.to_numpy(dtype=object)[used]
    text = [m if isinstance(m, str) else None for m in metadata]
    return pd.factorize(pd.Series(text, dtype=object))


def _metadata_value(meta: str, key: str, needle: str) -> Any:
    """``key`` of the JSON object ``meta`` (None if absent, or if ``meta`` is not a JSON object). Text that holds
    neither ``needle`` (the key as a JSON string) nor any escape cannot hold the key, so it is not parsed."""
    if needle not in meta and "\\" not in meta:
        return None
    try:
        obj = json_loads(meta)  # json.loads's value, by orjson where that is the same
    except json.JSONDecodeError:
        return None
    return obj.get(key) if isinstance(obj, dict) else None


class AdoptionCounter:
    """Distinct (team, tool, day, user) seen, accumulated over chunks."""

    def __init__(self, settings: Adoption) -> None:
        self.settings = settings
        self.seen = pd.DataFrame({"team": pd.Series([], dtype=object), "tool": pd.Series([], dtype=object),
                                  "source": pd.Series([], dtype=object), "day": np.zeros(0, np.int64),
                                  "user": np.zeros(0, np.int64)})
        self.rows_without_user = 0

    def add(self, ts: np.ndarray, team: np.ndarray, user_id: np.ndarray, metadata: np.ndarray | pd.Series,
            model: np.ndarray) -> None:
        """One chunk's rows (``metadata``: text per row, or the table's categorical column as is)."""
        user = stable_keys(user_id)
        has = user != 0
        self.rows_without_user += int((~has).sum())
        if not has.any():
            return
        team = pd.Series(team[has], dtype=object).fillna(UNTAGGED).to_numpy(dtype=object)
        metadata = metadata.iloc[has] if isinstance(metadata, pd.Series) else metadata[has]
        tool, source = tools(metadata, model[has], self.settings.tool_key)
        frame = pd.DataFrame({"team": team, "tool": tool, "source": source, "day": np.asarray(ts)[has] // _DAY_NS,
                              "user": user[has]})
        self.seen = pd.concat([self.seen, frame], ignore_index=True).drop_duplicates(ignore_index=True)

    def merge(self, other: AdoptionCounter) -> AdoptionCounter:
        """Fold in the counts of another partition of the traffic (any rows: distinct sets merge by union)."""
        self.seen = pd.concat([self.seen, other.seen], ignore_index=True).drop_duplicates(ignore_index=True)
        self.rows_without_user += other.rows_without_user
        return self

    def summary(self) -> dict[str, Any]:
        k = self.settings.min_users
        seen = self.seen
        days = sorted(int(d) for d in seen["day"].unique())
        day_names = [pd.Timestamp(d * _DAY_NS, tz="UTC").date().isoformat() for d in days]
        team_users = seen.groupby("team")["user"].nunique()
        cells = []
        daily = seen.groupby(["team", "tool", "day"])["user"].nunique()
        reach = seen.groupby(["team", "source", "tool"])["user"].nunique()
        by_team_tool = []
        for (team, source, tool), users in reach.sort_index().items():
            size = self.settings.team_sizes.get(team, int(team_users[team]))
            suppressed = users < k
            per_day = [int(daily.get((team, tool, d), 0)) for d in days]
            for name, n in zip(day_names, per_day):
                cells.append({"team": team, "tool": tool, "day": name,
                              "active_users": None if suppressed or n < k else n,
                              "suppressed": bool(suppressed or n < k)})
            mean = float(np.mean(per_day)) if per_day else 0.0
            by_team_tool.append({
                "team": team, "tool": tool, "source": source, "team_size": size,
                "users_in_window": None if suppressed else int(users),
                "mean_daily_active_users": None if suppressed else round(mean, 2),
                "mean_daily_adoption_pct": None if suppressed or not size else round(100 * mean / size, 1),
                "suppressed": bool(suppressed)})
        gaps = []
        for team in sorted({r["team"] for r in by_team_tool}):
            for source in ("metadata", "provider"):  # tools compare with tools, providers with providers
                shown = [r for r in by_team_tool if r["team"] == team and r["source"] == source
                         and not r["suppressed"] and r["mean_daily_adoption_pct"] is not None]
                shown.sort(key=lambda r: (-r["mean_daily_adoption_pct"], r["tool"]))
                for r in shown[1:]:
                    gaps.append({"team": team, "source": source, "tool": r["tool"], "behind": shown[0]["tool"],
                                 "gap_pp": round(shown[0]["mean_daily_adoption_pct"] - r["mean_daily_adoption_pct"],
                                                 1), "tool_pct": r["mean_daily_adoption_pct"],
                                 "behind_pct": shown[0]["mean_daily_adoption_pct"]})
        actions = []
        for g in sorted(gaps, key=lambda g: (-g["gap_pp"], g["team"], g["tool"]))[:3]:
            if g["gap_pp"] < GAP_ACTION_PP:
                break
            what = "adoption" if g["source"] == "metadata" else "use (by provider)"
            actions.append(f"Team `{g['team']}`: `{g['tool']}` {what} is {g['gap_pp']:.1f} percentage points below "
                           f"`{g['behind']}` ({g['tool_pct']:.1f}% vs {g['behind_pct']:.1f}% of the team on an "
                           "average day). Tooling friction or use-case fit? A question worth a sprint.")
        return {"unit": "active users per team x tool x UTC day (counts only)",
                "tool_source": f"metadata.{self.settings.tool_key}, else the model's provider",
                "min_users": k, "days": day_names, "cells": cells, "by_team_tool": by_team_tool, "gaps": gaps,
                "actions": actions, "rows_without_user": self.rows_without_user,
                "team_size_source": ("scenario adoption.team_sizes where given, else the team's distinct active "
                                     "users in the window")}

