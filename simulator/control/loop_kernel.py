"""Compiled kernels of the loop detector (:mod:`simulator.control.loops`); imported only when a chunk is stepped.

:func:`step_buckets` runs one chunk's window buckets in order: the flush of the buckets that closed (their
sessions' totals join the workflow baselines), the thresholds the bucket needs, then the rows. Baseline quantiles
come from one Fenwick tree over every value that can be in a baseline during the chunk (the samples carried in and
the totals of every (session, bucket) pair of the chunk, found by a dry pass), ranked by (workflow, value): an
insert, a removal and an order statistic cost O(log n), and the quantile is the same arithmetic on the same two
order statistics as ``np.quantile`` of the sorted window.
"""

from __future__ import annotations

import math

import numpy as np

from simulator.jit import njit


@njit(cache=True, nogil=True)
def detect_rows(lo, hi, ts, slot, rate, thr_of_wf, wf_of_slot, fp, failed, limited, weight, tokens, cost, kill,
                for_ns, window_ns, ident_n, storm_n, pending, first_excess, detected_at, rule_of, onset, ident_fp,
                ident_run, ident_start, fail_run, fail_times, after_cost, after_requests, total_cost, requests,
                limit_hits, retry_tokens, open_w, open_tokens, open_mark, bucket, open_buf, open_count, fired,
                killed):  # pragma: no cover - compiled
    """The sequential part over rows lo..hi-1 (one window bucket); per-slot state is updated in place, and so are
    the open bucket totals (executed weight and tokens) of the sessions active in this bucket."""
    for i in range(lo, hi):
        s = slot[i]
        if s < 0:
            continue
        thr = thr_of_wf[wf_of_slot[s]] if rate[i] > 0 else np.inf
        total_cost[s] += cost[i]
        requests[s] += 1
        if limited[i]:
            limit_hits[s] += 1
        if fail_run[s] > 0 and not failed[i]:
            retry_tokens[s] += tokens[i]
        if detected_at[s] >= 0:
            after_cost[s] += cost[i]
            after_requests[s] += 1
            killed[i] = kill
        else:
            rule = 0
            if rate[i] > thr:
                if first_excess[s] < 0:
                    first_excess[s] = ts[i]
                if pending[s] < 0:
                    pending[s] = ts[i]
                if ts[i] - pending[s] >= for_ns:
                    rule = 1
            else:
                pending[s] = -1
            start = -1
            if rule == 0 and ident_n > 0 and ident_run[s] >= ident_n:
                rule = 2
                start = ident_start[s]
            if rule == 0 and storm_n > 0 and fail_run[s] >= storm_n:
                oldest = fail_times[s, fail_run[s] % storm_n]
                newest = fail_times[s, (fail_run[s] - 1) % storm_n]
                if newest - oldest <= window_ns:
                    rule = 3
                    start = oldest
            if rule > 0:
                detected_at[s] = ts[i]
                rule_of[s] = rule
                first = first_excess[s]
                onset[s] = first if (first >= 0 and (start < 0 or first < start)) else start
                after_cost[s] += cost[i]
                after_requests[s] += 1
                fired[i] = rule
                killed[i] = kill
        if open_mark[s] != bucket:
            open_mark[s] = bucket
            open_buf[open_count[0]] = s
            open_count[0] += 1
        if killed[i]:
            continue  # a killed request never runs: it adds no evidence nor spend
        open_w[s] += weight[i]
        open_tokens[s] += tokens[i]
        if failed[i]:
            fail_times[s, fail_run[s] % storm_n if storm_n > 0 else 0] = ts[i]
            fail_run[s] += 1
        else:
            fail_run[s] = 0
            if fp[i] != 0:
                if fp[i] == ident_fp[s]:
                    ident_run[s] += 1
                else:
                    ident_fp[s] = fp[i]
                    ident_run[s] = 1
                    ident_start[s] = ts[i]


@njit(cache=True, nogil=True)
def candidates(bounds, bvals, cur_bucket, slot, weight, wf_of_slot, open_w, open_mark, open_buf, open_count):
    """Dry pass: the total of every (session, bucket) pair flushed during the chunk, in flush order, as if no row
    were killed (a session with killed rows is flagged, and flagged sessions never join a baseline)."""
    n_slots = open_w.shape[0]
    m = open_count
    # element loops, not ``buf[:m] = open_buf[:m]`` and ``.copy()``: the same values, and a fifth of the compile time
    buf = np.empty(n_slots, np.int64)
    for k in range(m):
        buf[k] = open_buf[k]
    acc = np.empty(n_slots, np.float64)
    mark = np.empty(n_slots, np.int64)
    for k in range(n_slots):
        acc[k] = open_w[k]
        mark[k] = open_mark[k]
    cand_w = np.empty(m + slot.shape[0], np.float64)
    cand_wf = np.empty(m + slot.shape[0], np.int64)
    c = 0
    b_cur = cur_bucket
    for j in range(bvals.shape[0]):
        b = bvals[j]
        if b != b_cur:
            for k in range(m):
                s = buf[k]
                cand_w[c] = acc[s]
                cand_wf[c] = wf_of_slot[s]
                c += 1
                acc[s] = 0.0
            m = 0
            b_cur = b
        for i in range(bounds[j], bounds[j + 1]):
            s = slot[i]
            if s < 0:
                continue
            if mark[s] != b:
                mark[s] = b
                buf[m] = s
                m += 1
            acc[s] += weight[i]
    return cand_w[:c], cand_wf[:c]


@njit(cache=True, nogil=True)
def _bit_add(tree, pos, delta):  # pragma: no cover - compiled
    i = pos + 1
    while i < tree.shape[0]:
        tree[i] += delta
        i += i & (-i)


@njit(cache=True, nogil=True)
def _bit_prefix(tree, pos):  # pragma: no cover - compiled
    """Count of inserted positions < pos."""
    total = 0
    i = pos
    while i > 0:
        total += tree[i]
        i -= i & (-i)
    return total


@njit(cache=True, nogil=True)
def _bit_find(tree, target, log):  # pragma: no cover - compiled
    """Smallest position p with (count of inserted positions <= p) >= target (target >= 1)."""
    pos = 0
    step = log
    while step > 0:
        nxt = pos + step
        if nxt < tree.shape[0] and tree[nxt] < target:
            pos = nxt
            target -= tree[nxt]
        step >>= 1
    return pos  # 0-based position (tree index pos + 1)


@njit(cache=True, nogil=True)
def step_buckets(bounds, bvals, need_j, need_wf, n_wf, cur_bucket, smp_end, smp_wf, smp_w, smp_order, cand_w, cand_wf,
                 cand_order, ts, slot, rate,
                 wf_of_slot, fp, failed, limited, weight, tokens, cost, kill, for_ns, window_ns, baseline_ns, ident_n,
                 storm_n, multiplier, quantile, min_samples, pending, first_excess, detected_at, rule_of, onset,
                 ident_fp, ident_run, ident_start, fail_run, fail_times, after_cost, after_requests, total_cost,
                 requests, limit_hits, retry_tokens, open_w, open_tokens, open_mark, open_buf, open_count, fired,
                 killed):  # pragma: no cover - compiled
    """One chunk's buckets (``bounds``: row offsets, ``bvals``: bucket numbers); ``(need_j, need_wf)``: the
    workflows whose threshold bucket j needs, sorted by j. ``smp_*``: the carried baseline samples in flush order,
    ``smp_order`` their order by (workflow, value). Returns the samples flushed here (end, workflow, window total,
    tokens), the open bucket, which carried and flushed samples stay (ends inside the open bucket's baseline), the
    order by (workflow, value) of those that stay (carried first, then flushed) and a consistency flag (False if a
    flushed total differs from the dry pass: a bug). ``cand_w``, ``cand_wf``: :func:`candidates` of the chunk,
    ``cand_order`` their order by (workflow, value) (sorted by numpy: numba's stable argsort compiles for seconds)."""
    n_old = smp_w.shape[0]
    n_cand = cand_w.shape[0]
    n_all = n_old + n_cand
    # merge the carried order with the candidates' (linear: the carried samples are not sorted again)
    order = np.empty(n_all, np.int64)
    i = 0
    j = 0
    for k in range(n_all):
        take_old = False
        if i < n_old:
            if j >= n_cand:
                take_old = True
            else:
                a, c = smp_order[i], cand_order[j]
                take_old = smp_wf[a] < cand_wf[c] or (smp_wf[a] == cand_wf[c] and smp_w[a] <= cand_w[c])
        if take_old:
            order[k] = smp_order[i]
            i += 1
        else:
            order[k] = n_old + cand_order[j]
            j += 1
    pos_of = np.empty(n_all, np.int64)
    sorted_values = np.empty(n_all, np.float64)
    wf_start = np.zeros(n_wf + 1, np.int64)
    for k in range(n_all):
        idx = order[k]
        pos_of[idx] = k
        if idx < n_old:
            sorted_values[k] = smp_w[idx]
            wf_start[smp_wf[idx] + 1] += 1
        else:
            sorted_values[k] = cand_w[idx - n_old]
            wf_start[cand_wf[idx - n_old] + 1] += 1
    for w in range(n_wf):
        wf_start[w + 1] += wf_start[w]
    tree = np.zeros(n_all + 1, np.int64)
    log = 1
    while log * 2 <= n_all:
        log *= 2
    count = np.zeros(n_wf, np.int64)
    # the baseline in insertion order (ends never decrease): carried samples, then those flushed here
    q_pos = np.empty(n_all, np.int64)
    q_end = np.empty(n_all, np.int64)
    q_wf = np.empty(n_all, np.int64)
    for k in range(n_old):
        tree[pos_of[k] + 1] = 1
        count[smp_wf[k]] += 1
        q_pos[k] = pos_of[k]
        q_end[k] = smp_end[k]
        q_wf[k] = smp_wf[k]
    for k in range(1, n_all + 1):  # a Fenwick tree over the carried samples, built in linear time
        parent = k + (k & (-k))
        if parent <= n_all:
            tree[parent] += tree[k]
    out_of_cand = np.empty(n_cand, np.int64)
    for c in range(n_cand):
        out_of_cand[c] = -1
    q_len = n_old
    head = 0
    out_end = np.empty(cand_w.shape[0], np.int64)
    out_wf = np.empty(cand_w.shape[0], np.int64)
    out_w = np.empty(cand_w.shape[0], np.float64)
    out_t = np.empty(cand_w.shape[0], np.float64)
    n_out = 0
    cidx = 0
    consistent = True
    thr_of_wf = np.empty(max(n_wf, 1), np.float64)
    for w in range(thr_of_wf.shape[0]):
        thr_of_wf[w] = np.inf
    p = 0
    for j in range(bvals.shape[0]):
        b = bvals[j]
        if b != cur_bucket:
            m = open_count[0]
            if m:
                end = (cur_bucket + 1) * window_ns
                for k in range(m):
                    s = open_buf[k]
                    if detected_at[s] < 0:  # a flagged session must not raise the bar for the next one
                        if open_w[s] != cand_w[cidx]:
                            consistent = False
                        w = wf_of_slot[s]
                        pos = pos_of[n_old + cidx]
                        _bit_add(tree, pos, 1)
                        count[w] += 1
                        q_pos[q_len] = pos
                        q_end[q_len] = end
                        q_wf[q_len] = w
                        q_len += 1
                        out_end[n_out] = end
                        out_wf[n_out] = w
                        out_w[n_out] = open_w[s]
                        out_t[n_out] = open_tokens[s]
                        out_of_cand[cidx] = n_out
                        n_out += 1
                    cidx += 1
                    open_w[s] = 0.0
                    open_tokens[s] = 0.0
                open_count[0] = 0
            cur_bucket = b
        now = b * window_ns
        while p < need_j.shape[0] and need_j[p] == j:
            while head < q_len and q_end[head] <= now - baseline_ns:
                _bit_add(tree, q_pos[head], -1)
                count[q_wf[head]] -= 1
                head += 1
            w = need_wf[p]
            n = count[w]
            if n < min_samples or n == 0:
                thr_of_wf[w] = np.inf
            else:
                below = _bit_prefix(tree, wf_start[w])
                h = (n - 1) * quantile
                lo = int(math.floor(h))
                t = h - lo
                a = sorted_values[_bit_find(tree, below + lo + 1, log)]
                hi_rank = min(lo + 1, n - 1)
                bv = sorted_values[_bit_find(tree, below + hi_rank + 1, log)]
                diff = bv - a
                thr_of_wf[w] = multiplier * (bv - diff * (1 - t) if t >= 0.5 else a + diff * t)
            p += 1
        detect_rows(bounds[j], bounds[j + 1], ts, slot, rate, thr_of_wf, wf_of_slot, fp, failed, limited, weight,
                    tokens, cost, kill, for_ns, window_ns, ident_n, storm_n, pending, first_excess, detected_at,
                    rule_of, onset, ident_fp, ident_run, ident_start, fail_run, fail_times, after_cost,
                    after_requests, total_cost, requests, limit_hits, retry_tokens, open_w, open_tokens, open_mark,
                    b, open_buf, open_count, fired, killed)
    # what stays for the next chunk: samples whose end is inside the open bucket's baseline, in (workflow, value) order
    cutoff = cur_bucket * window_ns - baseline_ns
    new_index = np.empty(n_all, np.int64)
    for k in range(n_all):
        new_index[k] = -1
    kept = 0
    keep_old = np.zeros(n_old, np.bool_)
    for k in range(n_old):
        if smp_end[k] > cutoff:
            keep_old[k] = True
            new_index[k] = kept
            kept += 1
    keep_out = np.zeros(n_out, np.bool_)
    for c in range(n_cand):
        o = out_of_cand[c]
        if o >= 0 and out_end[o] > cutoff:
            keep_out[o] = True
    out_index = np.empty(n_out, np.int64)  # kept - 1 + the running count of keep_out (loops compile faster)
    run = kept - 1
    for o in range(n_out):
        if keep_out[o]:
            run += 1
        out_index[o] = run
    for c in range(n_cand):
        o = out_of_cand[c]
        if o >= 0 and keep_out[o]:
            new_index[n_old + c] = out_index[o]
    next_order = np.empty(run + 1, np.int64)
    m = 0
    for k in range(n_all):
        idx = new_index[order[k]]
        if idx >= 0:
            next_order[m] = idx
            m += 1
    return (out_end[:n_out], out_wf[:n_out], out_w[:n_out], out_t[:n_out], cur_bucket, keep_old, keep_out,
            next_order, consistent)
