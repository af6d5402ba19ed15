"""Evaluation results: per sequence and overall, as JSON, CSV and a table a person can read.

Overall numbers are computed the way DAVIS reports them: every statistic is the mean over sequences
of the per-sequence statistic (so a long sequence weighs no more than a short one), and
``J&F-Mean`` is the mean of ``J-Mean`` and ``F-Mean``. Values are kept at full precision in JSON and
CSV; only the table rounds (to 3 decimals, as the DAVIS leaderboards).
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .metrics import DEFAULT_BOUND_TH, Statistics

__all__ = ["SequenceResult", "EvaluationResult", "COLUMNS"]

#: Column names of the CSV and the table, as in the official DAVIS result files.
COLUMNS = ("J&F-Mean", "J-Mean", "J-Recall", "J-Decay", "F-Mean", "F-Recall", "F-Decay")


def _stat_from_dict(d: dict[str, Any]) -> Statistics:
    return Statistics(mean=float(d["mean"]), recall=float(d["recall"]), decay=float(d["decay"]))


@dataclass
class SequenceResult:
    """J and F of one sequence: statistics plus the per-frame values they come from.

    ``frames`` names the evaluated frames (the first and last of the sequence are normally excluded,
    so ``frames[0]`` is the sequence's second frame).
    """

    name: str
    J: Statistics
    F: Statistics
    j_per_frame: list[float]
    f_per_frame: list[float]
    frames: list[str] = field(default_factory=list)

    @property
    def n_frames(self) -> int:
        """Number of evaluated frames."""
        return len(self.j_per_frame)

    @property
    def jf_mean(self) -> float:
        return (self.J.mean + self.F.mean) / 2

    def row(self) -> dict[str, float]:
        """The DAVIS columns of this sequence (see :data:`COLUMNS`)."""
        return _row(self.jf_mean, self.J, self.F)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "n_frames": self.n_frames,
            "JF_mean": self.jf_mean,
            "J": {**self.J.to_dict(), "per_frame": list(self.j_per_frame)},
            "F": {**self.F.to_dict(), "per_frame": list(self.f_per_frame)},
            "frames": list(self.frames),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SequenceResult:
        return cls(
            name=d["name"],
            J=_stat_from_dict(d["J"]),
            F=_stat_from_dict(d["F"]),
            j_per_frame=[float(v) for v in d["J"].get("per_frame", [])],
            f_per_frame=[float(v) for v in d["F"].get("per_frame", [])],
            frames=list(d.get("frames", [])),
        )


def _row(jf: float, j: Statistics, f: Statistics) -> dict[str, float]:
    return dict(zip(COLUMNS, (jf, j.mean, j.recall, j.decay, f.mean, f.recall, f.decay), strict=True))


def _mean(values: list[float]) -> float:
    return math.fsum(values) / len(values) if values else math.nan


@dataclass
class EvaluationResult:
    """Results of a set of sequences; ``J``, ``F`` and ``jf_mean`` are the overall (DAVIS) numbers."""

    sequences: list[SequenceResult]
    bound_th: float = DEFAULT_BOUND_TH
    davis_root: str | None = None
    predictions: str | None = None

    def __post_init__(self) -> None:
        if not self.sequences:
            raise ValueError("an evaluation needs at least one sequence")

    def _overall(self, measure: str) -> Statistics:
        stats = [getattr(s, measure) for s in self.sequences]
        return Statistics(
            mean=_mean([s.mean for s in stats]),
            recall=_mean([s.recall for s in stats]),
            decay=_mean([s.decay for s in stats]),
        )

    @property
    def J(self) -> Statistics:
        return self._overall("J")

    @property
    def F(self) -> Statistics:
        return self._overall("F")

    @property
    def jf_mean(self) -> float:
        return (self.J.mean + self.F.mean) / 2

    @property
    def n_frames(self) -> int:
        return sum(s.n_frames for s in self.sequences)

    def __getitem__(self, name: str) -> SequenceResult:
        for s in self.sequences:
            if s.name == name:
                return s
        raise KeyError(name)

    def row(self) -> dict[str, float]:
        """The overall DAVIS columns (see :data:`COLUMNS`)."""
        return _row(self.jf_mean, self.J, self.F)

    # --- serialisation -------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready data; ``sequences`` is keyed by name, in evaluation order."""
        return {
            "benchmark": "DAVIS (J, F; first and last frames excluded)",
            "bound_th": self.bound_th,
            "davis_root": self.davis_root,
            "predictions": self.predictions,
            "overall": {
                "n_sequences": len(self.sequences),
                "n_frames": self.n_frames,
                "JF_mean": self.jf_mean,
                "J": self.J.to_dict(),
                "F": self.F.to_dict(),
            },
            "sequences": {s.name: s.to_dict() for s in self.sequences},
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> EvaluationResult:
        """Read back what :meth:`to_dict` (or a JSON file written by :meth:`write_json`) holds."""
        return cls(
            sequences=[SequenceResult.from_dict(s) for s in d["sequences"].values()],
            bound_th=float(d.get("bound_th", DEFAULT_BOUND_TH)),
            davis_root=d.get("davis_root"),
            predictions=d.get("predictions"),
        )

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent, allow_nan=False)

    def write_json(self, path: str | os.PathLike) -> Path:
        path = Path(path)
        path.write_text(self.to_json() + "\n", encoding="utf-8")
        return path

    def to_csv(self) -> str:
        """One row per sequence (``scope`` = ``sequence``), then the ``overall`` row (frames = total)."""
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(["scope", "sequence", "frames", *COLUMNS])
        for s in self.sequences:
            writer.writerow(["sequence", s.name, s.n_frames, *(repr(v) for v in s.row().values())])
        writer.writerow(["overall", "", self.n_frames, *(repr(v) for v in self.row().values())])
        return buf.getvalue()

    def write_csv(self, path: str | os.PathLike) -> Path:
        path = Path(path)
        path.write_text(self.to_csv(), encoding="utf-8", newline="")
        return path

    def format_table(self, per_sequence: bool = True) -> str:
        """A fixed-width table: one line per sequence, then the overall line."""
        name_w = max([8, *(len(s.name) for s in self.sequences)])
        col_w = [max(8, len(c)) for c in COLUMNS]
        header = f"{'Sequence':<{name_w}}  {'Frames':>6}  " + "  ".join(
            f"{c:>{w}}" for c, w in zip(COLUMNS, col_w, strict=True))

        def line(name: str, frames: int, row: dict[str, float]) -> str:
            cells = "  ".join(f"{v:>{w}.3f}" for v, w in zip(row.values(), col_w, strict=True))
            return f"{name:<{name_w}}  {frames:>6}  {cells}"

        lines = [header, "-" * len(header)]
        if per_sequence:
            lines += [line(s.name, s.n_frames, s.row()) for s in self.sequences]
            lines.append("-" * len(header))
        lines.append(line("Overall", self.n_frames, self.row()))
        n = len(self.sequences)
        lines.append(f"(means over {n} sequence{'s' if n != 1 else ''}; first and last frames excluded; "
                     f"boundary tolerance {self.bound_th:g})")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.format_table()
