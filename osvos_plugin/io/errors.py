"""Errors of the plate I/O layer.

Every error is meant to be shown to an artist or a render-farm wrangler as is: it names the file
(and frame) concerned, says what is wrong and what to do about it. ``PlateError`` can carry the list
of every bad frame of a sequence, so a shot with several problems fails once, before fine-tuning,
with all of them listed.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..errors import Cancelled, InputError, OutputError

__all__ = ["PlateError", "MaskError", "OutputError", "FrameProblem", "CheckStopped"]


class CheckStopped(Cancelled):
    """The up-front plate check was asked to stop (a host's cancel); nothing was written."""


@dataclass(frozen=True)
class FrameProblem:
    """One thing wrong with one frame of a plate sequence."""

    frame: int | None
    path: Path
    problem: str  # what is wrong
    fix: str  # what to do about it

    def describe(self) -> str:
        where = f"frame {self.frame} ({self.path})" if self.frame is not None else str(self.path)
        return f"{where}: {self.problem}; {self.fix}."


class PlateError(InputError):
    """A plate (source image or sequence) is missing, unreadable or unusable."""

    def __init__(self, message: str, problems: list[FrameProblem] | None = None) -> None:
        super().__init__(message)
        self.problems: list[FrameProblem] = list(problems or [])


class MaskError(InputError):
    """The painted mask cannot be used for fine-tuning (wrong size, empty, full, NaN, unreadable)."""
