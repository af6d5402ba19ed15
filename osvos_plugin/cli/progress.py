"""Progress output for the command-line tools: a bar on a terminal, JSON lines for hosts, or nothing."""

from __future__ import annotations

import sys
from typing import TextIO

from osvos_contract.protocol import Progress, stage


class ProgressPrinter:
    """Callable progress sink. ``json`` prints the contract's progress record, one per update on stdout,
    for host adapters and farms (``osvos_contract.protocol.Progress.to_json``). ``auto`` is a bar on a
    terminal (stderr) and silence otherwise.
    """

    def __init__(self, mode: str = "auto", stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stderr
        if mode == "auto":
            mode = "bar" if self.stream.isatty() else "none"
        self.mode = mode
        self._bars: dict = {}

    def __call__(self, p: Progress) -> None:
        if self.mode == "json":
            print(p.to_json(), file=sys.stdout, flush=True)
        elif self.mode == "bar":
            from tqdm import tqdm

            bar = self._bars.get(p.stage)
            if bar is None:
                s = stage(p.stage)
                bar = self._bars[p.stage] = tqdm(total=p.total, desc=s.label.lower(), unit=s.unit, file=self.stream)
            bar.update(p.done - bar.n)
            if p.loss is not None:
                bar.set_postfix(loss=f"{p.loss:.4f}", refresh=False)

    def close(self) -> None:
        for bar in self._bars.values():
            bar.close()
        self._bars.clear()
