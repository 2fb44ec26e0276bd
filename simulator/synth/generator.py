"""Synthetic gateway traffic that looks like one organisation's week, plus matching eval samples.

``generate(days=7, requests=40_000, seed=0)`` returns ``(traffic, evals)``: traffic in the canonical table and eval
samples in long format. ``write_dataset(out_dir, ...)`` also writes ``prefixes.parquet`` (the system-prompt texts)
and does so byte-for-byte reproducibly. The organisation (teams, workflows, model mix, incidents, true accuracies)
is data: ``simulator/data/synth_profile.yaml``; datasets/README.md documents every column.

Token counts: ``prompt`` holds the latest user turn; the workflow's system prompt is identified by ``prefix_hash``
(text in ``prefixes.parquet``) and earlier turns by ``metadata.history_tokens``. For every successful row
``input_tokens == prefix_tokens + reported(prompt) + history_tokens``, where ``reported`` is the exact o200k count
(``simulator.tokens.backends.load_o200k``: tiktoken with bpe-openai's o200k vocabulary) times the served model's tokenizer ratio for the
content class (1.0 for OpenAI; calibrated ratios for Claude, see the profile).
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import importlib.resources
import json
import zlib
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import yaml

from simulator.synth import text as synth_text
from simulator.errors import InputError
from simulator.pricing.model_ids import split_model_id

TRAFFIC_SCHEMA = pa.schema(
    [
        ("request_id", pa.string()),
        ("timestamp", pa.timestamp("ns", tz="UTC")),
        ("model", pa.string()),
        ("requested_model", pa.string()),
        ("input_tokens", pa.int64()),
        ("output_tokens", pa.int64()),
        ("cache_read_tokens", pa.int64()),
        ("cache_write_tokens", pa.int64()),
        ("cache_write_1h_tokens", pa.int64()),
        ("cost_usd", pa.float64()),
        ("latency_ms", pa.float64()),
        ("status_code", pa.int64()),
        ("user_id", pa.string()),
        ("team", pa.string()),
        ("project", pa.string()),
        ("workflow_tag", pa.string()),
        ("session_id", pa.string()),
        ("metadata", pa.string()),
        ("prompt", pa.string()),
        ("prefix_hash", pa.string()),
        ("prefix_tokens", pa.int64()),
    ]
)
EVALS_SCHEMA = pa.schema(
    [
        ("sample_id", pa.string()),
        ("model", pa.string()),
        ("correct", pa.int64()),
        ("workflow_tag", pa.string()),
        ("prompt", pa.string()),
        ("input_tokens", pa.int64()),
        ("output_tokens", pa.int64()),
        ("prefix_hash", pa.string()),
    ]
)
PREFIXES_SCHEMA = pa.schema(
    [("prefix_hash", pa.string()), ("prefix_name", pa.string()), ("o200k_tokens", pa.int64()), ("text", pa.string())]
)
RUNAWAY_SCHEMA = pa.schema([("session_id", pa.string()), ("workflow_tag", pa.string()), ("kind", pa.string()),
                            ("started_at", pa.timestamp("ns", tz="UTC")), ("requests", pa.int64())])
OUTCOMES_SCHEMA = pa.schema([("session_id", pa.string()), ("outcome", pa.string()),
                             ("timestamp", pa.timestamp("ns", tz="UTC"))])
_ROW_GROUP_ROWS = 10_000
_POOL_SIZE = 400  # distinct user turns per (workflow, content class); rows draw from the pool
_DOC_POOL_SIZE = 300


@functools.lru_cache(maxsize=1)
def _o200k():
    from simulator.tokens.backends import load_o200k  # tiktoken + bpe-openai's packaged vocab, sha256-checked

    return load_o200k()


def _count_o200k(texts: list[str]) -> np.ndarray:
    return _o200k().count_batch(texts)


def load_profile(path: str | Path | None = None) -> dict:
    """The organisation profile (packaged ``synth_profile.yaml`` unless a path is given)."""
    if path is None:
        text = importlib.resources.files("simulator").joinpath("data/synth_profile.yaml").read_text(encoding="utf-8")
    else:
        text = Path(path).read_text(encoding="utf-8")
    return yaml.safe_load(text)


def _stable_seed(name: str) -> int:
    # zlib.crc32, not hash(): Python's str hash is salted per process.
    return zlib.crc32(name.encode("utf-8"))


@functools.lru_cache(maxsize=4)
def _system_prompts_cached(profile_json: str) -> tuple[tuple[str, str, str, int, str], ...]:
    profile = json.loads(profile_json)
    out = []
    for name, spec in profile["system_prompts"].items():
        n_lines = 8
        while True:  # add rules until the exact o200k count reaches the target; same name -> same text
            text = synth_text.system_prompt(name, spec["kind"], n_lines, np.random.default_rng(_stable_seed(name)))
            n = int(_count_o200k([text])[0])
            if n >= spec["target_o200k_tokens"]:
                break
            n_lines = max(n_lines + 1, int(n_lines * spec["target_o200k_tokens"] / max(n, 1)))
        klass = "english" if spec["kind"] == "prose" else "code"
        digest = hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]
        out.append((name, digest, klass, n, text))
    return tuple(out)


def system_prompts(profile: dict | None = None) -> pd.DataFrame:
    """The profile's system prompts: prefix_hash, prefix_name, o200k_tokens, text (independent of the seed)."""
    profile = profile or load_profile()
    rows = _system_prompts_cached(json.dumps(profile, sort_keys=True))
    return pd.DataFrame(
        {
            "prefix_hash": [r[1] for r in rows],
            "prefix_name": [r[0] for r in rows],
            "o200k_tokens": np.array([r[3] for r in rows], dtype=np.int64),
            "text": [r[4] for r in rows],
        }
    )


def _lognormal(rng: np.random.Generator, median: float, sigma: float, size: int) -> np.ndarray:
    return median * np.exp(sigma * rng.standard_normal(size))


def _hour_weights(profile: dict, days: int, start_ns: int, kind: str) -> np.ndarray:
    """Arrival weight of each hour of the window: diurnal shape times a weekend factor."""
    office = np.asarray(profile["office_hours"], dtype=np.float64)
    shape = office if kind == "office" else 0.4 * office + 0.6 * office.mean()
    hours = np.arange(days * 24)
    start = pd.Timestamp(start_ns, tz="UTC")
    abs_hours = hours + start.hour
    weekday = (start.day_of_week + (abs_hours // 24)) % 7
    w = shape[abs_hours % 24] * np.where(weekday >= 5, profile["weekend_factor"], 1.0)
    return w / w.sum()


def _turn_counts(rng: np.random.Generator, spec: list, size: int) -> np.ndarray:
    kind = spec[0]
    if kind == "fixed":
        return np.full(size, int(spec[1]), dtype=np.int64)
    if kind == "uniform":
        return rng.integers(int(spec[1]), int(spec[2]) + 1, size=size)
    if kind == "lognormal":
        return np.maximum(1, np.rint(_lognormal(rng, spec[1], spec[2], size))).astype(np.int64)
    raise InputError(f"synth profile: turns kind must be fixed, uniform or lognormal. Got {kind!r} instead.")


def _pick(rng: np.random.Generator, weights: dict, size: int) -> np.ndarray:
    """Indices into ``list(weights)`` drawn with the given (normalised) weights."""
    p = np.asarray(list(weights.values()), dtype=np.float64)
    return rng.choice(len(p), size=size, p=p / p.sum())


def _exclusive_cumsum_by_group(values: np.ndarray, group_start: np.ndarray) -> np.ndarray:
    """Sum of earlier values within each run of rows (rows grouped contiguously; group_start marks the first row)."""
    c = np.cumsum(values) - values
    base = np.maximum.accumulate(np.where(group_start, c, 0))
    return c - base


def _prev_gap_s(keys: np.ndarray, t_s: np.ndarray, order: np.ndarray) -> np.ndarray:
    """Seconds since the previous row with the same key (inf for the first); ``order`` sorts by (key, time)."""
    gap = np.full(len(t_s), np.inf)
    k, t = keys[order], t_s[order]
    same = np.r_[False, k[1:] == k[:-1]]
    d = np.r_[np.inf, np.diff(t)]
    gap[order] = np.where(same, d, np.inf)
    return gap


def generate(
    days: int = 7,
    requests: int = 40_000,
    seed: int = 0,
    start: str = "2026-11-16T00:00:00Z",
    profile: dict | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Synthetic gateway traffic (canonical table) and eval samples (long format) for one organisation.

    ``days`` x 24 h from ``start`` (UTC), exactly ``requests`` rows, deterministic for ``seed``.
    Example: ``traffic, evals = generate(days=7, requests=40_000, seed=7)``.
    """
    week = generate_week(days, requests, seed, start, profile)
    return week.traffic, week.evals


@dataclasses.dataclass
class SampleWeek:
    """A generated week: traffic, eval samples, the runaway sessions the generator made (truth the replay never
    reads) and the outcomes the sessions produced (``session_id, outcome, timestamp``)."""

    traffic: pd.DataFrame
    evals: pd.DataFrame
    runaway_sessions: pd.DataFrame
    outcomes: pd.DataFrame


def generate_week(
    days: int = 7,
    requests: int = 40_000,
    seed: int = 0,
    start: str = "2026-11-16T00:00:00Z",
    profile: dict | None = None,
) -> SampleWeek:
    """:func:`generate` plus the runaway-session labels and the outcomes, drawn from their own random stream
    (``np.random.default_rng([seed, 18])``) so the traffic and eval samples are what :func:`generate` gives."""
    profile = profile or load_profile()
    traffic, evals, loop_ids = _generate(days, requests, seed, start, profile)
    runaway = runaway_table(traffic, loop_ids)
    outcomes = session_outcomes(traffic, set(loop_ids), profile, np.random.default_rng([seed, 18]))
    return SampleWeek(traffic, evals, runaway, outcomes)


def _generate(days: int, requests: int, seed: int, start: str, profile: dict | None):
    if not isinstance(days, int) or days < 1:  # (checked before any work)
        raise InputError(f"synth: days must be an integer >= 1. Got {days!r} instead.")
    if not isinstance(requests, int) or requests < 1:
        raise InputError(f"synth: requests must be an integer >= 1. Got {requests!r} instead.")
    try:
        start_ts = pd.Timestamp(start)
    except ValueError:
        raise InputError(f"synth: start must be an ISO 8601 time like 2026-11-16T00:00:00Z. Got {start!r} instead.") from None
    start_ts = start_ts.tz_localize("UTC") if start_ts.tzinfo is None else start_ts.tz_convert("UTC")
    start_ns = int(start_ts.value)
    profile = profile or load_profile()
    rng = np.random.default_rng(seed)
    horizon_s = days * 86400.0

    wf_names = list(profile["workflows"])
    wfs = [profile["workflows"][w] for w in wf_names]
    model_names = list(profile["models"])
    model_idx = {m: i for i, m in enumerate(model_names)}
    classes = synth_text.CONTENT_CLASSES

    prefixes = system_prompts(profile)
    pref_by_name = {n: i for i, n in enumerate(prefixes["prefix_name"])}
    pref_class = {r[0]: r[2] for r in _system_prompts_cached(json.dumps(profile, sort_keys=True))}

    # Pools of user turns per (workflow, class), tokenized once.
    docs = synth_text.doc_pool(rng, _DOC_POOL_SIZE)
    pool_text: dict[tuple[int, int], list[str]] = {}
    for wi, (name, spec) in enumerate(zip(wf_names, wfs)):
        for ci, klass in enumerate(classes):
            if spec["content"].get(klass, 0) > 0:
                pool_text[(wi, ci)] = [synth_text.user_turn(name, klass, rng, docs) for _ in range(_POOL_SIZE)]
    flat_text = [t for key in sorted(pool_text) for t in pool_text[key]]
    flat_tokens = _count_o200k(flat_text)
    pool_offset = {key: i * _POOL_SIZE for i, key in enumerate(sorted(pool_text))}

    # ---- sessions: runaway loops first, then ordinary sessions until `requests` rows fall in the window.
    loop_cfg = profile["loops"]
    n_loops = int(round(requests / 10_000 * loop_cfg["per_10k_requests"])) if requests >= 5_000 else 0
    agent_wi = wf_names.index("agent-session")
    loop_turns = rng.integers(loop_cfg["turns"][0], loop_cfg["turns"][1] + 1, size=n_loops)
    loop_turns = np.minimum(loop_turns, max(1, requests // (10 * max(n_loops, 1))))
    office_w = _hour_weights(profile, days, start_ns, "office")
    flat_w = _hour_weights(profile, days, start_ns, "flat")
    loop_start = (rng.choice(days * 24, size=n_loops, p=office_w) + rng.random(n_loops)) * 3600.0

    shares = np.asarray([w["share"] for w in wfs], dtype=np.float64)
    shares /= shares.sum()
    need = requests - int(loop_turns.sum())
    s_wf, s_start, s_n = [], [], []
    got = 0
    while got < need:  # draw batches of ordinary sessions; keep whole batches, cut rows afterwards
        batch = max(256, int((need - got) / 2.5))
        wf = rng.choice(len(wfs), size=batch, p=shares)
        n = np.empty(batch, dtype=np.int64)
        for wi, spec in enumerate(wfs):
            sel = wf == wi
            n[sel] = _turn_counts(rng, spec["turns"], int(sel.sum()))
        flat = np.array([wfs[w]["arrivals"] == "flat" for w in wf])
        hours = np.where(flat, rng.choice(days * 24, size=batch, p=flat_w), rng.choice(days * 24, size=batch, p=office_w))
        st = (hours + rng.random(batch)) * 3600.0
        s_wf.append(wf), s_start.append(st), s_n.append(n)
        got += int(n.sum())
    sess_wf = np.r_[np.full(n_loops, agent_wi), np.concatenate(s_wf)]
    sess_start = np.r_[loop_start, np.concatenate(s_start)]
    sess_n = np.r_[loop_turns, np.concatenate(s_n)]
    sess_loop = np.r_[np.ones(n_loops, bool), np.zeros(len(sess_n) - n_loops, bool)]
    n_sess = len(sess_n)

    # Per-row turn times; rows past the horizon are dropped, then the first `requests` rows (session order) kept.
    row_sess = np.repeat(np.arange(n_sess), sess_n)
    first = np.r_[True, row_sess[1:] != row_sess[:-1]]
    turn = np.arange(len(row_sess)) - np.repeat(np.cumsum(sess_n) - sess_n, sess_n)
    gap_med = np.array([w["gap_s"][0] for w in wfs])[sess_wf[row_sess]]
    gap_sig = np.array([w["gap_s"][1] for w in wfs])[sess_wf[row_sess]]
    is_loop_row = sess_loop[row_sess]
    gap_med = np.where(is_loop_row, loop_cfg["gap_s"][0], gap_med)
    gap_sig = np.where(is_loop_row, loop_cfg["gap_s"][1], gap_sig)
    gaps = np.where(first, 0.0, gap_med * np.exp(gap_sig * rng.standard_normal(len(row_sess))))
    t_s = sess_start[row_sess] + _exclusive_cumsum_by_group(gaps, first) + gaps
    keep = np.flatnonzero(t_s < horizon_s)[:requests]
    if len(keep) < requests:  # only possible with absurd profiles (every session beyond the horizon)
        raise InputError(f"synth: could only place {len(keep)} of {requests} requests in {days} days. Use more days.")
    row_sess, turn, t_s = row_sess[keep], turn[keep], t_s[keep]
    first = np.r_[True, row_sess[1:] != row_sess[:-1]]
    n = len(row_sess)

    # ---- session attributes
    sess_model = np.empty(n_sess, dtype=np.int64)
    sess_class = np.empty(n_sess, dtype=np.int64)
    sess_project = np.empty(n_sess, dtype=object)
    for wi, spec in enumerate(wfs):
        sel = np.flatnonzero(sess_wf == wi)
        mnames = list(spec["models"])
        chosen = np.array([model_idx[m] for m in mnames])[_pick(rng, spec["models"], len(sel))]
        if "switch" in spec:
            sw = spec["switch"]
            late = sess_start[sel] >= sw["at_hours"] * 3600.0
            chosen = np.where(late & (chosen == model_idx[sw["from"]]), model_idx[sw["to"]], chosen)
        sess_model[sel] = chosen
        cw = {k: spec["content"].get(k, 0.0) for k in classes}
        sess_class[sel] = _pick(rng, cw, len(sel))
        projects = list(spec["projects"])
        sess_project[sel] = np.array(projects, dtype=object)[_pick(rng, spec["projects"], len(sel))]
    loops_idx = np.flatnonzero(sess_loop)
    sess_model[loops_idx] = np.where(
        rng.random(n_loops) < 0.5, model_idx["anthropic-main/claude-opus-4-7"], model_idx["anthropic-main/claude-sonnet-4-6"]
    )
    untagged = (rng.random(n_sess) < profile["untagged_session_share"]) & ~sess_loop
    sess_project[untagged] = None

    # Users: per-team blocks of ids, Zipf-like activity inside a team.
    teams = list(profile["users_per_team"])
    team_base, base = {}, 1
    for t in teams:
        team_base[t] = base
        base += profile["users_per_team"][t]
    sess_user = np.empty(n_sess, dtype=np.int64)
    for wi, spec in enumerate(wfs):
        sel = np.flatnonzero(sess_wf == wi)
        k = profile["users_per_team"][spec["team"]]
        w = 1.0 / np.arange(1, k + 1) ** 0.9
        sess_user[sel] = team_base[spec["team"]] + rng.choice(k, size=len(sel), p=w / w.sum())

    # ---- rows
    wf_r = sess_wf[row_sess]
    model_r = sess_model[row_sess]
    class_r = sess_class[row_sess]
    pool_base = np.array([pool_offset.get((w, c), -1) for w, c in zip(wf_r, class_r)]) if n else np.zeros(0, np.int64)
    pool_pick = pool_base + rng.integers(_POOL_SIZE, size=n)
    # Loops resend the same failing tool call: one pool item per loop session.
    loop_item = rng.integers(_POOL_SIZE, size=n_sess)
    pool_pick = np.where(sess_loop[row_sess], pool_base + loop_item[row_sess], pool_pick)
    user_o200k = flat_tokens[pool_pick]

    fam = [profile["models"][m]["tokenizer"] for m in model_names]
    ratio = np.array([[profile["tokenizer_ratios"][f][c] for c in classes] for f in fam])  # model x class
    wf_pref = np.array([pref_by_name[w["system_prompt"]] for w in wfs])
    pref_r = wf_pref[wf_r]
    pref_o200k = prefixes["o200k_tokens"].to_numpy()
    pref_cls = np.array([classes.index(pref_class[name]) for name in prefixes["prefix_name"]])
    prefix_tokens = np.rint(pref_o200k[pref_r] * ratio[model_r, pref_cls[pref_r]]).astype(np.int64)
    user_tokens = np.rint(user_o200k * ratio[model_r, class_r]).astype(np.int64)

    out_med = np.array([w["output_tokens"][0] for w in wfs])[wf_r]
    out_sig = np.array([w["output_tokens"][1] for w in wfs])[wf_r]
    output_tokens = np.maximum(1, np.rint(out_med * np.exp(out_sig * rng.standard_normal(n)))).astype(np.int64)
    for m, (med, sig) in profile["reasoning_tokens"].items():
        sel = model_r == model_idx[m]
        output_tokens[sel] += np.rint(_lognormal(rng, med, sig, int(sel.sum()))).astype(np.int64)

    cap = np.array([w.get("history_cap_tokens", 120_000) for w in wfs])[wf_r]
    history = np.minimum(_exclusive_cumsum_by_group(user_tokens + output_tokens, first), cap)
    input_tokens = prefix_tokens + user_tokens + history

    # ---- status codes: background, incident windows, loops hitting the rate limit
    err = profile["errors"]
    status = np.full(n, 200, dtype=np.int64)
    u = rng.random(n)
    lo = 0.0
    for code, p in err["background"].items():
        status[(u >= lo) & (u < lo + p)] = int(code)
        lo += p
    account_r = np.array([split_model_id(m)[0] for m in model_names], dtype=object)[model_r]
    for inc in err["incidents"]:
        in_win = (account_r == inc["account"]) & (t_s >= inc["start_hours"] * 3600) & (t_s < inc["end_hours"] * 3600)
        hit = in_win & (rng.random(n) < inc["rate"])
        codes = np.array([int(c) for c in inc["codes"]])
        status[hit] = codes[_pick(rng, inc["codes"], int(hit.sum()))]
    loop_rl = sess_loop[row_sess] & (turn >= loop_cfg["rate_limit_after_turn"]) & (rng.random(n) < loop_cfg["rate_limit_share"])
    status[loop_rl] = 429
    ok = status == 200

    # ---- prompt caching as the provider would report it
    cache_read = np.zeros(n, dtype=np.int64)
    cache_write = np.zeros(n, dtype=np.int64)
    cmin = np.array([profile["models"][m]["cache_min_tokens"] for m in model_names])[model_r]
    cc = profile["caching"]
    prefix_key = model_r * 1000 + pref_r
    order = np.lexsort((t_s, ~ok, prefix_key))  # successful rows of each (model, prefix) in time order
    gap_prefix = _prev_gap_s(np.where(ok, prefix_key, -1 - np.arange(n)), t_s, order)
    order_s = np.lexsort((t_s, row_sess))
    gap_sess = _prev_gap_s(np.where(ok, row_sess, -1 - np.arange(n)), t_s, order_s)
    provider_r = np.array([profile["pricing_account_map"][a] for a in account_r], dtype=object)
    # Anthropic, only where the workflow sets cache_control: breakpoint at the end of the prompt, 5 min TTL.
    anth = ok & (provider_r == "anthropic") & np.array([w["cache_control"] for w in wfs])[wf_r] & (input_tokens >= cmin)
    a_read = np.where(gap_sess < cc["anthropic_ttl_s"], prefix_tokens + history,
                      np.where((gap_prefix < cc["anthropic_ttl_s"]) & (prefix_tokens >= cmin), prefix_tokens, 0))
    cache_read[anth] = a_read[anth]
    cache_write[anth] = (input_tokens - a_read)[anth]
    # OpenAI: automatic, 1,024 tokens then 128-token steps, not guaranteed (routing); writes are free and unreported.
    oai = ok & (provider_r == "openai") & (rng.random(n) < cc["openai_hit_rate"])
    shared = np.where(gap_sess < cc["openai_idle_s"], prefix_tokens + history,
                      np.where(gap_prefix < cc["openai_idle_s"], prefix_tokens, 0))
    step = cc["openai_step_tokens"]
    o_read = np.where(shared >= cmin, cmin + (shared - cmin) // step * step, 0)
    cache_read[oai] = np.minimum(o_read, input_tokens)[oai]

    # Failed requests: nothing billed, nothing reported.
    for arr in (input_tokens, output_tokens, cache_read, cache_write):
        arr[~ok] = 0

    # ---- recorded cost (catalog prices, one model deliberately off) and latency
    from simulator.pricing.catalog import Catalog  # the project catalog (genai-prices plus tfysim's dated overrides)

    model_str = np.array(model_names, dtype=object)[model_r]
    ts_ns = start_ns + np.rint(t_s * 1e6).astype(np.int64) * 1000  # microsecond resolution, like most gateway logs
    cost = Catalog.load().cost_usd(model_str, ts_ns, input_tokens, output_tokens, cache_read, cache_write)
    factor = np.array([profile["recorded_cost_factor"].get(m, 1.0) for m in model_names])[model_r]
    cost = cost * factor

    mspec = profile["models"]
    ttft = np.array([mspec[m]["ttft_ms"] for m in model_names], dtype=np.float64)[model_r]
    per_tok = np.array([mspec[m]["ms_per_output_token"] for m in model_names], dtype=np.float64)[model_r]
    uncached = (input_tokens - cache_read) / 1000.0 * profile["ms_per_1k_input_tokens"]
    noise = np.exp(profile["latency_sigma"] * rng.standard_normal(n))
    latency = (ttft + uncached + output_tokens * per_tok) * noise
    err_latency = np.where(status == 429, _lognormal(rng, 120, 0.5, n), _lognormal(rng, 2500, 0.8, n))
    latency = np.round(np.where(ok, latency, err_latency), 1)

    # ---- text columns
    clients = {"support": "zendesk-app", "platform": "ci-bot", "search": "search-web", "data": "airflow", "marketing": "cms-plugin"}
    agent_clients = np.array(["claude-code", "cursor", "internal-agent"], dtype=object)
    sess_client = np.array([clients[wfs[w]["team"]] for w in sess_wf], dtype=object)
    agent_sel = sess_wf == agent_wi
    sess_client[agent_sel] = agent_clients[rng.choice(3, size=int(agent_sel.sum()), p=[0.5, 0.3, 0.2])]
    client_r = sess_client[row_sess]
    region = np.array(["eu-west-1", "us-east-1"], dtype=object)[(rng.random(n_sess) < 0.45).astype(int)][row_sess]
    metadata = [
        f'{{"client":"{c}","content_class":"{classes[k]}","env":"prod","history_tokens":{h},"region":"{r}","turn":{t + 1}}}'
        for c, k, h, r, t in zip(client_r, class_r, history.tolist(), region, turn.tolist())
    ]
    # The X-TFY-METADATA tool name: the coding agent of an agent session (the same as its client). Appended as the
    # last key so every other key and value stays as it was; other workflows call models from apps: no tool.
    agent_row = agent_sel[row_sess]
    metadata = [m[:-1] + f',"tool":"{c}"}}' if a else m for m, c, a in zip(metadata, client_r, agent_row)]
    requested = np.array([w["requested_model"] or "" for w in wfs], dtype=object)[wf_r]
    requested = np.where(requested == "", np.array([split_model_id(m)[1] for m in model_names], dtype=object)[model_r], requested)

    traffic = pd.DataFrame(
        {
            "timestamp": pd.to_datetime(ts_ns, utc=True),
            "model": model_str,
            "requested_model": requested,
            "input_tokens": input_tokens,
            "output_tokens": output_tokens,
            "cache_read_tokens": cache_read,
            "cache_write_tokens": cache_write,
            "cache_write_1h_tokens": np.zeros(n, dtype=np.int64),
            "cost_usd": cost,
            "latency_ms": latency,
            "status_code": status,
            "user_id": np.array([f"u-{i:04d}@example.com" for i in range(base)], dtype=object)[sess_user[row_sess]],
            "team": np.array([w["team"] for w in wfs], dtype=object)[wf_r],
            "project": sess_project[row_sess],
            "workflow_tag": np.array(wf_names, dtype=object)[wf_r],
            "session_id": np.array([f"sess-{seed % 10_000:04d}-{i:06d}" for i in range(n_sess)], dtype=object)[row_sess],
            "metadata": metadata,
            "prompt": np.array(flat_text, dtype=object)[pool_pick],
            "prefix_hash": prefixes["prefix_hash"].to_numpy()[pref_r],
            "prefix_tokens": prefix_tokens,
        }
    )
    order_t = np.lexsort((turn, row_sess, ts_ns))  # time, then session order: no ties left to chance
    traffic = traffic.iloc[order_t].reset_index(drop=True)
    traffic.insert(0, "request_id", [f"req-{i:07d}" for i in range(n)])
    evals = _eval_samples(profile, rng, docs, prefixes, pref_class)
    loop_ids = [f"sess-{seed % 10_000:04d}-{i:06d}" for i in np.flatnonzero(sess_loop)]  # the generator's own labels
    return traffic, evals, loop_ids


def runaway_table(traffic: pd.DataFrame, loop_ids: list[str]) -> pd.DataFrame:
    """The runaway sessions the generator created: id, workflow, first request, requests (rows in the window)."""
    rows = traffic[traffic["session_id"].isin(loop_ids)]
    g = rows.groupby("session_id", sort=True).agg(workflow_tag=("workflow_tag", "first"),
                                                   started_at=("timestamp", "min"), requests=("request_id", "size"))
    out = g.reset_index()
    out["kind"] = "loop"
    return out[["session_id", "workflow_tag", "kind", "started_at", "requests"]]


def session_outcomes(traffic: pd.DataFrame, runaway: set[str], profile: dict, rng: np.random.Generator) -> pd.DataFrame:
    """What sessions produced: per workflow, each outcome kind with the profile's chance per session, some hours
    after the session's last request (lognormal); runaway sessions produce nothing."""
    spec = profile["outcomes"]
    sessions = traffic.groupby("session_id", sort=True).agg(workflow_tag=("workflow_tag", "first"),
                                                             last=("timestamp", "max")).reset_index()
    median_h, sigma = spec["delay_hours"]
    frames = []
    for wf, kinds in spec["per_session"].items():
        sel = sessions[(sessions["workflow_tag"] == wf) & ~sessions["session_id"].isin(runaway)]
        for kind, chance in kinds.items():
            hit = rng.random(len(sel)) < chance
            delay_s = _lognormal(rng, median_h * 3600.0, sigma, len(sel))
            got = sel[hit]
            ts = got["last"].array.asi8 + np.rint(delay_s[hit] * 1e6).astype(np.int64) * 1000
            frames.append(pd.DataFrame({"session_id": got["session_id"].to_numpy(dtype=object), "outcome": kind,
                                        "timestamp": pd.to_datetime(ts, utc=True)}))
    out = pd.concat(frames, ignore_index=True)
    return out.sort_values(["timestamp", "session_id", "outcome"], kind="stable").reset_index(drop=True)


def _eval_samples(profile: dict, rng: np.random.Generator, docs: list[str], prefixes: pd.DataFrame, pref_class: dict) -> pd.DataFrame:
    """Paired eval items: every listed model answers every item; correctness has the profile's true accuracy."""
    classes = synth_text.CONTENT_CLASSES
    frames = []
    for wf, spec in profile["evals"].items():
        wspec = profile["workflows"][wf]
        n = int(spec["items"])
        cls = _pick(rng, {k: wspec["content"].get(k, 0.0) for k in classes}, n)
        texts = [synth_text.user_turn(wf, classes[c], rng, docs) for c in cls]
        o200k = _count_o200k(texts)
        pidx = int(np.flatnonzero(prefixes["prefix_name"].to_numpy() == wspec["system_prompt"])[0])
        p_o200k = int(prefixes["o200k_tokens"].iloc[pidx])
        p_cls = classes.index(pref_class[wspec["system_prompt"]])
        common = rng.random(n)  # latent item difficulty shared by models (agreement)
        out_med, out_sig = wspec["output_tokens"]
        for model, acc in spec["accuracy"].items():
            r = profile["tokenizer_ratios"][profile["models"][model]["tokenizer"]]
            ratios = np.array([r[c] for c in classes])
            use_common = rng.random(n) < spec["agreement"]
            latent = np.where(use_common, common, rng.random(n))
            frames.append(
                pd.DataFrame(
                    {
                        "sample_id": [f"{wf}-{i:05d}" for i in range(n)],
                        "model": model,
                        "correct": (latent < acc).astype(np.int64),
                        "workflow_tag": wf,
                        "prompt": texts,
                        "input_tokens": np.rint(p_o200k * ratios[p_cls]).astype(np.int64)
                        + np.rint(o200k * ratios[cls]).astype(np.int64),
                        "output_tokens": np.maximum(1, np.rint(_lognormal(rng, out_med, out_sig, n))).astype(np.int64),
                        "prefix_hash": prefixes["prefix_hash"].iloc[pidx],
                    }
                )
            )
    return pd.concat(frames, ignore_index=True)


def write_parquet(df: pd.DataFrame, path: str | Path, schema: pa.Schema) -> Path:
    """Write with a fixed schema, no pandas index or pandas metadata, fixed row groups, zstd: same frame -> same bytes."""
    path = Path(path)
    table = pa.Table.from_pandas(df[schema.names], schema=schema, preserve_index=False).replace_schema_metadata(None)
    pq.write_table(table, path, compression="zstd", compression_level=9, row_group_size=_ROW_GROUP_ROWS, use_dictionary=True)
    return path


def write_dataset(
    out_dir: str | Path,
    days: int = 7,
    requests: int = 40_000,
    seed: int = 0,
    start: str = "2026-11-16T00:00:00Z",
) -> dict[str, Path]:
    """Generate and write ``traffic.parquet``, ``evals.parquet``, ``prefixes.parquet``, ``outcomes.parquet`` and
    ``runaway_sessions.parquet`` (the generator's labels) into ``out_dir``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    week = generate_week(days=days, requests=requests, seed=seed, start=start)
    return {
        "traffic": write_parquet(week.traffic, out / "traffic.parquet", TRAFFIC_SCHEMA),
        "evals": write_parquet(week.evals, out / "evals.parquet", EVALS_SCHEMA),
        "prefixes": write_parquet(system_prompts(), out / "prefixes.parquet", PREFIXES_SCHEMA),
        "outcomes": write_parquet(week.outcomes, out / "outcomes.parquet", OUTCOMES_SCHEMA),
        "runaway_sessions": write_parquet(week.runaway_sessions, out / "runaway_sessions.parquet", RUNAWAY_SCHEMA),
    }
