"""Frame patterns: which file holds which frame, the rules the engine and the hosts share.

The frame token is looked for in the file name, never in the directory; the last one counts:

* ``plate.####.exr``  one ``#`` per digit (Nuke style: ``####`` = 4 digits, ``#`` = unpadded)
* ``plate.@@@@.exr``  the same with ``@``; ``plate.@.exr`` = unpadded
* ``plate.%04d.exr``  printf style; ``%d`` = unpadded
* ``plate.$F4.exr``   Houdini style; ``$F`` = unpadded

A padded token matches exactly that many digits (``####`` matches ``0007`` and ``10001``, the way Nuke
writes them, not ``7``), so a frame found on disk and the path formatted for it always agree. Frame
ranges (``1001-1100x2``) are the engine's business (fileseq), not this module's.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

TOKEN_RE = re.compile(r"#+|@+|%0?(\d*)d|\$F(\d*)")
_DIGITS_RE = re.compile(r"(\d+)(?!.*\d)")


@dataclass(frozen=True)
class Token:
    """A file name split at its frame token."""

    directory: Path
    before: str
    after: str
    padding: int  # digits at least; 1 = unpadded

    def name(self, frame: int) -> str:
        return f"{self.before}{frame_digits(frame, self.padding)}{self.after}"


def _padding(token: re.Match) -> int:
    text = token.group(0)
    if text[0] in "#@":
        return len(text)
    digits = token.group(1) if text.startswith("%") else token.group(2)
    return max(1, int(digits or 1))


def split_token(pattern: str | os.PathLike) -> Token | None:
    """The pattern split at the last frame token of its file name, or None when it has none."""
    path = Path(pattern)
    matches = list(TOKEN_RE.finditer(path.name))
    if not matches:
        return None
    token = matches[-1]
    return Token(path.parent, path.name[: token.start()], path.name[token.end():], _padding(token))


def has_frame_token(pattern: str | os.PathLike) -> bool:
    """Whether the file name holds a frame token (####, @, %04d, $F4)."""
    return split_token(pattern) is not None


def frame_digits(frame: int, padding: int) -> str:
    """``7`` at padding 4 -> ``0007``; a negative frame puts its sign before the padded digits: ``-0007``."""
    sign = "-" if frame < 0 else ""
    return sign + str(abs(frame)).zfill(padding)


def format_frame(pattern: str | os.PathLike, frame: int) -> str:
    """The file of ``frame``: ``out.####.exr`` -> ``out.1001.exr``. A pattern without a token is returned
    unchanged (a single file)."""
    token = split_token(pattern)
    if token is None:
        return str(pattern)
    return str(token.directory / token.name(int(frame)))


def scan_frames(pattern: str | os.PathLike) -> list[tuple[int, Path]]:
    """(frame, path) of the files on disk that the pattern names, with exactly its padding, in frame order.
    OSError when its directory cannot be listed; ValueError when the pattern has no token."""
    token = split_token(pattern)
    if token is None:
        raise ValueError(f"{pattern}: the file name holds no frame token (#### or %04d)")
    regex = re.compile(re.escape(token.before) + r"(-?\d+)" + re.escape(token.after) + r"\Z")
    found = []
    with os.scandir(token.directory) as entries:
        for entry in entries:
            m = regex.match(entry.name)
            if m and frame_digits(int(m.group(1)), token.padding) == m.group(1):
                found.append((int(m.group(1)), token.directory / entry.name))
    found.sort(key=lambda item: item[0])
    return found


def frames_on_disk(pattern: str | os.PathLike) -> list[int]:
    """Frame numbers of the pattern's files that exist, sorted: ``[0]`` for an existing plain file, ``[]``
    when nothing (or no folder) is there."""
    if not has_frame_token(pattern):
        return [0] if Path(pattern).is_file() else []
    try:
        return [f for f, _ in scan_frames(pattern)]
    except OSError:
        return []


def printf_pattern(path: str | os.PathLike) -> str:
    """A pattern with its frame token (``####``, ``@@@@``, ``$F4``) as printf: ``matte.%04d.exr``."""
    token = split_token(path)
    if token is None:
        return str(path)
    printf = f"%0{token.padding}d" if token.padding > 1 else "%d"
    return os.path.join(os.path.dirname(str(path)), token.before + printf + token.after)


@dataclass(frozen=True)
class SequencePattern:
    """An image sequence as osvos-render takes it: ``pattern`` with a printf token, one frame number."""

    pattern: str
    frame: int
    padding: int


def sequence_pattern(path: str | os.PathLike) -> SequencePattern:
    """``/shot/plate.1001.exr`` -> ``/shot/plate.%04d.exr``, frame 1001. The last number in the file name
    is the frame (the rule Blender and Nuke follow too); ValueError if the name holds none."""
    path = Path(path)
    match = _DIGITS_RE.search(path.name)
    if match is None:
        raise ValueError(f"{path}: the file name holds no frame number, so it is not an image sequence")
    digits = match.group(1)
    token = f"%0{len(digits)}d" if len(digits) > 1 else "%d"
    name = path.name[: match.start()] + token + path.name[match.end():]
    return SequencePattern(str(path.with_name(name)), int(digits), len(digits))


def matte_pattern(directory: str | os.PathLike, plate: str | os.PathLike, ext: str = "exr",
                  padding: int = 4) -> str:
    """Where the mattes of ``plate`` go: ``<directory>/<plate stem>_matte.%04d.exr``."""
    name = Path(plate).name
    token, match = split_token(name), _DIGITS_RE.search(name)
    stem = token.before if token else name[: match.start()] if match else Path(name).stem
    stem = stem.rstrip("._-") or "plate"
    token = f"%0{padding}d" if padding > 1 else "%d"
    return str(Path(directory) / f"{stem}_matte.{token}.{ext}")


OBJECT_TOKEN = "{object}"  # in an output's file name: one file per object, named after it


def object_output(path: str | os.PathLike, name: str) -> Path:
    """One object's file where a render of several objects writes a file per object (PNG): ``{object}`` in the
    path replaced by the object's name (``matte.{object}.1001.png`` -> ``matte.hero.1001.png``, or a folder
    ``{object}/``), else the file in a folder named after the object (``out/matte.1001.png`` ->
    ``out/hero/matte.1001.png``)."""
    path = Path(path)
    if OBJECT_TOKEN in str(path):
        return Path(str(path).replace(OBJECT_TOKEN, name))
    return path.parent / name / path.name


def without_object_token(pattern: str | os.PathLike) -> str:
    """``out/matte.{object}.####.png`` (or ``out/{object}/matte.####.png``) -> ``out/matte.####.png``: what a
    render's own files (its report, its kept model, its previews) are named after."""
    if OBJECT_TOKEN not in str(pattern):
        return str(pattern)
    parts = [p for p in Path(pattern).parts if p != OBJECT_TOKEN]
    strip = re.compile(r"[._-]?" + re.escape(OBJECT_TOKEN))
    parts = [strip.sub("", p).lstrip("._-") or "matte" if OBJECT_TOKEN in p else p for p in parts]
    return str(Path(*parts))
