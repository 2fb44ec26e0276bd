"""Token translation for the routing replay: every model switch goes through the tokenizer registry.

Re-tokenise when prompt text is present and both tokenizers are public, else apply calibrated ratios (fitted once
per run from the traffic itself, or the shipped dated defaults). A pair with no tokenizer on one side keeps the
recorded counts, labelled ``identity-unknown`` and named in the policy's assumptions, never a silent fallback.
"""

from __future__ import annotations

from functools import cached_property

import numpy as np
import pandas as pd

from simulator.errors import TokenizerError
from simulator.tokens import Registry, calibrate_from_traffic, translate_tokens


class Translator:
    """Callable used by :func:`simulator.replay.simulate` for moved rows; one per run."""

    def __init__(self, scenario, prepared) -> None:
        self.registry = Registry()
        for entry in scenario.tokenizers:
            self.registry.register_file(entry.name, scenario.path(entry.path), entry.models)
        self.p = prepared
        self.prompts = prepared.traffic.frame["prompt"].to_numpy(dtype=object)
        self.unknown: dict[tuple[str, str], str] = {}

    @cached_property
    def calibration(self):
        return calibrate_from_traffic(self.p.traffic.frame, registry=self.registry)

    def __call__(self, p, o, rows: np.ndarray, cand) -> None:
        vocab = np.array(p.vocab, dtype=object)
        pairs = pd.DataFrame({"f": p.model[rows], "t": o.model[rows]})
        for (f, t), group in pairs.groupby(["f", "t"], sort=True):
            idx = rows[group.index.to_numpy()]
            src, dst = str(vocab[f]), str(vocab[t])
            try:
                new_in, new_out, method = translate_tokens(
                    src, dst, o.input_tokens[idx], o.output_tokens[idx], prompts=self.prompts[idx],
                    calibration=self.calibration, registry=self.registry)
            except TokenizerError as exc:
                self.unknown[(src, dst)] = str(exc)
                o.translation[idx] = "identity-unknown"
                continue
            o.input_tokens[idx] = new_in
            o.output_tokens[idx] = new_out
            o.translation[idx] = method
        for (src, dst), message in sorted(self.unknown.items()):
            note = f"token counts {src} -> {dst} kept as recorded: {message}"
            if note not in o.assumptions:
                o.assumptions.append(note)
