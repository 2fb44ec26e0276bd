"""Token translation for the routing replay: every model switch goes through the tokenizer registry.

Re-tokenise when prompt text is present and both tokenizers are public, else apply calibrated ratios (fitted once
per run from the traffic itself, or the shipped dated defaults). A pair with no tokenizer on one side keeps the
recorded counts, labelled ``identity-unknown`` and named in the policy's assumptions, never a silent fallback.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from simulator.errors import TokenizerError
from simulator.tokens import Registry, translate_tokens


class Translator:
    """Callable used by :func:`simulator.core.replay_chunk` for moved rows; one per run.

    ``calibration`` is fitted once per run from the whole traffic (:func:`simulator.tokens.calibrate_from_rows` over
    the chunks' :func:`simulator.tokens.calibration_rows`); set it before the first chunk is replayed.
    """

    def __init__(self, scenario=None, eval_samples: pd.DataFrame | None = None, calibration=None) -> None:
        self.eval_samples = eval_samples
        self._ratios: dict[tuple[str, str], float | None] = {}
        self.registry = Registry()
        for entry in getattr(scenario, "tokenizers", None) or []:
            self.registry.register_file(entry.name, scenario.path(entry.path), entry.models)
        self.calibration = calibration
        self.unknown: dict[tuple[str, str], str] = {}

    def output_ratio(self, src: str, dst: str) -> float | None:
        """Median paired output_tokens(dst) / output_tokens(src) from eval samples, None without evidence."""
        if (src, dst) not in self._ratios:
            ratio = None
            if self.eval_samples is not None and "output_tokens" in self.eval_samples.columns:
                from simulator.evals.impact import match_eval_model
                from simulator.evals.stats import output_length_ratio

                models = sorted(self.eval_samples["model"].unique())
                a, b = match_eval_model(src, models), match_eval_model(dst, models)
                if a and b:
                    got = output_length_ratio(self.eval_samples, a, b, n_boot=200)
                    ratio = got["median_ratio"] if got["n"] >= 20 and np.isfinite(got["median_ratio"]) else None
            self._ratios[(src, dst)] = ratio
        return self._ratios[(src, dst)]

    def _scale_outputs(self, o, idx: np.ndarray, src: str, dst: str) -> None:
        ratio = self.output_ratio(src, dst)
        if ratio is not None:
            o.output_tokens[idx] = np.rint(o.output_tokens[idx] * ratio).astype(np.int64)
            o.extras.setdefault("output_length_ratios", {})[f"{src} -> {dst}"] = round(float(ratio), 4)

    def __call__(self, p, o, rows: np.ndarray, cand) -> None:
        vocab = np.array(p.vocab, dtype=object)
        pairs = pd.DataFrame({"f": p.model[rows], "t": o.model[rows]})
        unknown_here = []
        for (f, t), group in pairs.groupby(["f", "t"], sort=True):
            idx = rows[group.index.to_numpy()]
            src, dst = str(vocab[f]), str(vocab[t])
            try:
                new_in, new_out, method = translate_tokens(
                    src, dst, o.input_tokens[idx], o.output_tokens[idx], prompts=p.prompts[idx],
                    calibration=self.calibration, registry=self.registry)
            except TokenizerError as exc:
                self.unknown[(src, dst)] = str(exc)
                unknown_here.append((src, dst))
                o.translation[idx] = "identity-unknown"
                continue
            o.input_tokens[idx] = new_in
            o.output_tokens[idx] = new_out
            o.translation[idx] = method
            if getattr(cand, "output_tokens", "recorded") == "eval-ratio":
                self._scale_outputs(o, idx, src, dst)
        if getattr(cand, "output_tokens", "recorded") == "eval-ratio":
            note = ("output length under another model: recorded output tokens scaled by the median paired "
                    "output-length ratio from eval samples, where the pair has them")
            if note not in o.assumptions:
                o.assumptions.append(note)
        for src, dst in unknown_here:  # only the pairs this candidate moved rows between
            note = f"token counts {src} -> {dst} kept as recorded: {self.unknown[(src, dst)]}"
            if note not in o.assumptions:
                o.assumptions.append(note)
