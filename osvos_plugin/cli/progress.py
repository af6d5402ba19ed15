"""Progress output for the command-line tools: a bar on a terminal, JSON lines for hosts, or nothing."""

from __future__ import annotations

import os
import sys
from typing import TextIO

from osvos_contract.protocol import RENDER_STAGES, Progress, stage


class ProgressPrinter:
    """Callable progress sink. ``json`` prints the contract's progress record, one per update on stdout,
    for host adapters (``osvos_contract.protocol.Progress.to_json``). ``openjd`` prints Open Job
    Description's ``openjd_progress: <percent>`` and ``openjd_status: <text>`` lines, which a render farm shows
    on the task; ``auto`` picks it inside an OpenJD session, else a bar on a terminal (stderr), else silence.
    """

    def __init__(self, mode: str = "auto", stream: TextIO | None = None, stages: tuple[str, ...] = ()) -> None:
        """``stages``: the render stages this run goes through, when it skips some (a farm task that only
        fine-tunes, or only infers), so ``openjd_progress`` still runs from 0 to 100."""
        self.stages = stages
        self.stream = stream or sys.stderr
        if mode == "auto":
            in_openjd = bool(os.environ.get("OPENJD_SESSION_WORKING_DIR"))
            mode = "openjd" if in_openjd else "bar" if self.stream.isatty() else "none"
        self.mode = mode
        self._bars: dict = {}
        self._last: tuple = ()

    def __call__(self, p: Progress) -> None:
        if self.mode == "json":
            print(p.to_json(), file=sys.stdout, flush=True)
        elif self.mode == "openjd":
            percent = round(100 * self._overall(p), 1)
            if (p.stage, percent) == self._last:  # a scheduler needs no line per fine-tuning step
                return
            self._last = (p.stage, percent)
            print(f"openjd_progress: {percent:g}", file=sys.stdout)
            print(f"openjd_status: {p.message()}", file=sys.stdout, flush=True)
        elif self.mode == "bar":
            from tqdm import tqdm

            bar = self._bars.get(p.stage)
            if bar is None:
                s = stage(p.stage)
                bar = self._bars[p.stage] = tqdm(total=p.total, desc=s.label.lower(), unit=s.unit, file=self.stream)
            bar.update(p.done - bar.n)
            if p.loss is not None:
                bar.set_postfix(loss=f"{p.loss:.4f}", refresh=False)

    def _overall(self, p: Progress) -> float:
        if not self.stages or p.stage not in self.stages:
            return p.overall
        shares = {s.name: s.share for s in RENDER_STAGES if s.name in self.stages}
        before = sum(share for name, share in shares.items() if name in self.stages[: self.stages.index(p.stage)])
        return (before + shares.get(p.stage, 0) * min(1.0, p.fraction)) / (sum(shares.values()) or 1.0)

    def close(self) -> None:
        for bar in self._bars.values():
            bar.close()
        self._bars.clear()
