"""Errors of the plate I/O layer.

Every error is meant to be shown to an artist or a render-farm wrangler as is: it names the file
(and frame) concerned, says what is wrong and what to do about it. ``PlateError`` can carry the list
of every bad frame of a sequence, so a shot with several problems fails once, before fine-tuning,
with all of them listed.
"""

from __future__ import annotations

import stat
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..errors import Cancelled, InputError, OutputError

__all__ = ["PlateError", "MaskError", "OutputError", "FrameProblem", "CheckStopped", "file_kind"]


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
    """A plate (source image or sequence) is missing, unreadable or unusable.

    ``problems`` holds every bad frame, for programmatic use, even when the message summarises them. It
    may be given as a function that builds the list: a range of two million missing frames then costs
    nothing until someone asks for the list.
    """

    def __init__(
        self, message: str, problems: list[FrameProblem] | Callable[[], list[FrameProblem]] | None = None
    ) -> None:
        super().__init__(message)
        self._problems = problems if callable(problems) else list(problems or [])

    @property
    def problems(self) -> list[FrameProblem]:
        if callable(self._problems):
            self._problems = list(self._problems())
        return self._problems


class MaskError(InputError):
    """The painted mask cannot be used for fine-tuning (wrong size, empty, full, NaN, unreadable)."""


_FILE_KINDS = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
)


def file_kind(mode: int) -> str | None:
    """What a non-regular file is ("a FIFO (named pipe)"...), for messages; None for a regular file.

    Image readers must never open a FIFO or device: opening one blocks or reads forever.
    """
    if stat.S_ISREG(mode):
        return None
    for test, kind in _FILE_KINDS:
        if test(mode):
            return kind
    return "not a regular file"
