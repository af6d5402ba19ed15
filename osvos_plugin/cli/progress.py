"""Progress output for the command-line tools: a bar on a terminal, JSON lines for hosts, or nothing."""

from __future__ import annotations

import json
import sys
from typing import TextIO

from ..training import Progress


class ProgressPrinter:
    """Callable progress sink. ``json`` prints one object per update on stdout, for host adapters:
    ``{"stage": "finetune", "done": 10, "total": 400, "fraction": 0.025, "loss": 0.31, "eta_s": 120.0}``.
    ``auto`` is a bar on a terminal (stderr) and silence otherwise.
    """

    def __init__(self, mode: str = "auto", stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stderr
        if mode == "auto":
            mode = "bar" if self.stream.isatty() else "none"
        self.mode = mode
        self._bars: dict = {}

    def __call__(self, p: Progress) -> None:
        if self.mode == "json":
            rec = {"stage": p.stage, "done": p.done, "total": p.total, "fraction": round(p.fraction, 4),
                   "loss": None if p.loss is None else round(p.loss, 5),
                   "eta_s": None if p.eta_s is None else round(p.eta_s, 1)}
            print(json.dumps(rec), file=sys.stdout, flush=True)
        elif self.mode == "bar":
            from tqdm import tqdm

            bar = self._bars.get(p.stage)
            if bar is None:
                labels = {"check": "checking plates", "finetune": "fine-tuning", "selftrain": "self-training",
                          "infer": "inferring", "train": "training"}
                unit = "frame" if p.stage in ("check", "infer") else "it"
                bar = self._bars[p.stage] = tqdm(total=p.total, desc=labels.get(p.stage, p.stage), unit=unit,
                                                 file=self.stream)
            bar.update(p.done - bar.n)
            if p.loss is not None:
                bar.set_postfix(loss=f"{p.loss:.4f}", refresh=False)

    def close(self) -> None:
        for bar in self._bars.values():
            bar.close()
        self._bars.clear()
