"""Eval model ids against gateway ids, the way prices match (no statistics imported: ``tfysim validate`` uses it)."""

from __future__ import annotations

from simulator.pricing.model_ids import model_match_key, split_model_id


def match_eval_model(gateway_id: str, eval_models, mapping: dict | None = None) -> str | None:
    """The eval model name for a gateway id, or None.

    Order: explicit ``mapping``; exact name; the model part after ``provider_account/``; then a unique match on
    :func:`simulator.pricing.model_ids.model_match_key` (the way prices are matched: provider prefixes and release-date
    suffixes dropped, so ``claude-haiku-4-5-20251001`` is ``anthropic-main/claude-haiku-4-5``). Exact-then-looser
    matching trades recall for the risk of a wrong match, so the loosest step needs uniqueness.
    """
    eval_models = list(eval_models)
    if mapping and gateway_id in mapping:
        return mapping[gateway_id] if mapping[gateway_id] in eval_models else None
    if gateway_id in eval_models:
        return gateway_id
    name = split_model_id(gateway_id)[1]
    if name in eval_models:
        return name
    key = model_match_key(gateway_id)
    hits = [m for m in eval_models if model_match_key(m) == key]
    return hits[0] if len(hits) == 1 else None


def eval_mismatch(gateway_id: str, eval_models) -> str:
    """Why a gateway id has no eval model, naming both ids: the closest eval model, or the ones available."""
    import difflib

    eval_models = sorted(map(str, eval_models))
    key = model_match_key(gateway_id)
    keys = {model_match_key(m): m for m in eval_models}
    same = [m for m in eval_models if model_match_key(m) == key]
    if len(same) > 1:
        return (f"gateway model '{gateway_id}' matches several eval models ({', '.join(same)}); "
                "name one in the eval file")
    close = difflib.get_close_matches(key, list(keys), n=1, cutoff=0.6)
    if close:
        return (f"gateway model '{gateway_id}' matches no eval model; the closest is '{keys[close[0]]}' "
                f"(a different model: compare '{key}' with '{close[0]}')")
    shown = ", ".join(f"'{m}'" for m in eval_models[:6]) + (" ..." if len(eval_models) > 6 else "")
    return f"gateway model '{gateway_id}' matches no eval model (eval models: {shown})"
