"""What ``osvos-render`` says to whoever runs it: exit codes, progress stages and the progress record.

The engine writes the record (``--progress json``: one JSON object per line on stdout) and exits with
one of these codes; a host adapter or a farm parses the same record and reads the same codes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass


class ExitCode:
    """The documented exit statuses of every osvos command."""

    OK = 0
    INTERNAL = 1
    USAGE = 2
    INPUT = 3
    MODEL = 4
    OUTPUT = 5
    INTERRUPTED = 130


# code -> (short form for --help, meaning for an artist)
EXIT_CODES = {
    ExitCode.OK: ("done", "done"),
    ExitCode.INTERNAL: ("internal error", "internal error"),
    ExitCode.USAGE: ("usage", "usage error"),
    ExitCode.INPUT: ("bad input", "bad input (plates, mask or parameters)"),
    ExitCode.MODEL: ("model file", "model file error"),
    ExitCode.OUTPUT: ("output not written", "the mattes could not be written"),
    ExitCode.INTERRUPTED: ("interrupted (run again to resume)",
                           "interrupted (run again to resume; frames already written are kept)"),
}
EXIT_MEANINGS = {code: meaning for code, (_, meaning) in EXIT_CODES.items()}


def exit_codes_help(codes: tuple[int, ...] | None = None) -> str:
    """``Exit codes: 0 done, 1 internal error, ...``: the epilog of a command's --help."""
    chosen = EXIT_CODES if codes is None else {c: EXIT_CODES[c] for c in codes}
    return "Exit codes: " + ", ".join(f"{code} {short}" for code, (short, _) in chosen.items()) + "."


@dataclass(frozen=True)
class Stage:
    """One stage of a run: its progress-record name, the label a host shows, its unit, and the share of a
    render's progress bar it takes (guesses that only shape the bar)."""

    name: str
    label: str
    unit: str  # "frame" or "it"
    share: float = 0.0


# A render's stages in order; a stage that does not run (self-training off) is skipped over.
RENDER_STAGES = (
    Stage("check", "Checking plates", "frame", 0.05),
    Stage("finetune", "Fine-tuning", "it", 0.4),
    Stage("selftrain", "Self-training", "it", 0.1),
    Stage("infer", "Inferring", "frame", 0.45),
)
STAGES = {s.name: s for s in (*RENDER_STAGES, Stage("train", "Training", "it"))}


def stage(name: str) -> Stage:
    """The stage called ``name``; an unknown one (a newer engine) gets its name as label."""
    return STAGES.get(name) or Stage(name, name.capitalize(), "it")


@dataclass(frozen=True)
class Progress:
    """One progress record: ``{"stage": "finetune", "done": 10, "total": 300, "fraction": 0.0333,
    "loss": 0.31, "eta_s": 120.0}``."""

    stage: str
    done: int
    total: int
    loss: float | None = None
    eta_s: float | None = None

    @classmethod
    def timed(cls, stage: str, done: int, total: int, elapsed_s: float, loss: float | None = None) -> Progress:
        """A record whose ETA is extrapolated from the time the ``done`` steps took."""
        eta = None if done == 0 or total == 0 else elapsed_s / done * (total - done)
        return cls(stage, done, total, loss, eta)

    @property
    def fraction(self) -> float:
        return self.done / self.total if self.total else 1.0

    @property
    def overall(self) -> float:
        """Fraction of the whole render (its stages in order), in [0, 1]."""
        f = min(1.0, max(0.0, self.fraction))
        start = 0.0
        for s in RENDER_STAGES:
            if s.name == self.stage:
                return start + s.share * f
            start += s.share
        return f

    def message(self) -> str:
        """``Fine-tuning 10/300, loss 0.3100, 2 min 00 s left``: one line for a status bar."""
        s = stage(self.stage)
        text = f"{s.label} {self.done}/{self.total}"
        if s.unit == "frame":
            text += " frames"
        if self.loss is not None:
            text += f", loss {self.loss:.4f}"
        if self.eta_s is not None and self.eta_s > 0:
            text += f", {duration(self.eta_s)} left"
        return text

    def to_json(self) -> str:
        """The record as one line of ``--progress json``."""
        return json.dumps({
            "stage": self.stage, "done": self.done, "total": self.total, "fraction": round(self.fraction, 4),
            "loss": None if self.loss is None else round(self.loss, 5),
            "eta_s": None if self.eta_s is None else round(self.eta_s, 1),
        })


def parse_progress(line: str) -> Progress | None:
    """A :class:`Progress` from one stdout line, or None for anything else (log lines, partial lines)."""
    line = line.strip()
    if not line.startswith("{"):
        return None
    try:
        rec = json.loads(line)
        if not isinstance(rec, dict) or "stage" not in rec:
            return None
        loss, eta = rec.get("loss"), rec.get("eta_s")
        return Progress(str(rec["stage"]), int(rec.get("done") or 0), int(rec.get("total") or 0),
                        None if loss is None else float(loss), None if eta is None else float(eta))
    except (ValueError, TypeError):
        return None


def duration(seconds: float) -> str:
    """``42 s``, ``2 min 05 s``, ``1 h 03 min``."""
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"
