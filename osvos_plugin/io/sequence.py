"""Frame patterns and frame ranges: which files make up a shot.

Patterns (``plate.####.exr``, ``plate.%04d.exr``, ``plate.@.exr``, ``plate.$F4.exr``) follow the rules of
``osvos_contract.patterns``, which the hosts share. Besides those:

* ``plate.1001.exr``  a plain file (its number is its frame), or ``plate.exr`` (frame 1)
* ``/shots/plate/``   a directory holding exactly one numbered image sequence (e.g. DAVIS ``00000.jpg``)

Ranges are parsed by ``fileseq``: ``1001-1100``, ``1-100x2``, ``1001,1005-1010``, ``1-100:3``...
"""

from __future__ import annotations

import functools
import itertools
import logging
import os
import re
from collections.abc import Iterable, Iterator
from pathlib import Path

import fileseq
import numpy as np

from osvos_contract.patterns import Token, scan_frames, split_token

from .errors import PlateError, file_kind

log = logging.getLogger(__name__)

__all__ = [
    "parse_frame_range",
    "format_frame_path",
    "resolve_sequence",
    "frame_runs",
    "format_runs",
    "unique_frames",
    "IMAGE_EXTENSIONS",
]

_TRAILING_NUMBER_RE = re.compile(r"^(?P<prefix>.*?)(?P<digits>\d+)$")

#: File extensions treated as images when a directory is given (lower case, with the dot).
IMAGE_EXTENSIONS = frozenset(
    {
        ".exr",
        ".sxr",
        ".mxr",
        ".dpx",
        ".cin",
        ".png",
        ".jpg",
        ".jpeg",
        ".jpe",
        ".tif",
        ".tiff",
        ".tga",
        ".sgi",
        ".rgb",
        ".bmp",
        ".hdr",
        ".webp",
        ".psd",
    }
)

_RANGE_HELP = "use e.g. 1001-1100, 1-100x2 or 1001,1005-1010"

#: About the longest list of frame ranges quoted in one message; a longer one is cut and says how many
#: ranges were left out, so a badly fragmented shot still gets a short message.
RANGE_TEXT_LIMIT = 120
_FILESEQ_FRAMES = 100_000  # up to this many frames, fileseq finds stepped runs (1-99x2); beyond, plain runs


_OPENJD_STEP = re.compile(r"(-?\d+--?\d+):(\d+)")


def parse_frame_range(spec: str) -> list[int]:
    """Frame numbers of a range string, in the order given, without duplicates.

    Parsed with ``fileseq.FrameSet`` so every syntax artists type in Nuke/Deadline works; sub-frames
    are refused because plates are whole frames. fileseq's own error text (a regular expression) means
    nothing to an artist, so a range that does not parse gets one line with examples instead.

    ``1001-1100:2`` is a step of 2, as Open Job Description writes it (a farm chunk's frames); in fileseq
    the colon would reorder the whole range instead, which no farm task means.
    """
    text = _OPENJD_STEP.sub(r"\1x\2", re.sub(r"\s+", "", str(spec)))
    if not text:
        raise PlateError(f"empty frame range: {_RANGE_HELP}.")
    try:
        frame_set = fileseq.FrameSet(text)
    except fileseq.MaxSizeException as exc:
        raise PlateError(
            f"frame range {spec!r} holds more than {fileseq.constants.MAX_FRAME_SIZE} frames; give the shot's "
            f"range, e.g. 1001-1100."
        ) from exc
    except ValueError as exc:  # fileseq.ParseException is a ValueError
        raise PlateError(f"frame range {spec!r} is not understood; {_RANGE_HELP}.") from exc
    if not len(frame_set):
        raise PlateError(f"frame range {spec!r} holds no frames; {_RANGE_HELP}.")
    frames: list[int] = []
    seen: set[int] = set()
    for value in frame_set:
        if int(value) != value:
            raise PlateError(
                f"frame range {spec!r} contains the sub-frame {value}; plates have whole frames only."
            )
        number = int(value)
        if number not in seen:
            seen.add(number)
            frames.append(number)
    return frames


@functools.lru_cache(maxsize=256)
def _token(pattern: str) -> Token | None:
    """The pattern split at its frame token, once per pattern: a long range formats one path per frame."""
    return split_token(pattern)


def format_frame_path(pattern: str | os.PathLike, frame: int) -> Path:
    """The file of ``frame`` for a pattern such as ``out.####.exr`` (as ``osvos_contract.patterns.format_frame``).

    A pattern without a token is returned unchanged (a single-file source or output); callers that
    write several frames detect that by the repeated path.
    """
    token = _token(os.fspath(pattern))
    if token is None:
        return Path(pattern)
    return token.directory / token.name(int(frame))


def unique_frames(frames: Iterable[int] | np.ndarray) -> np.ndarray:
    """Frame numbers sorted, duplicates dropped (sorting first: frames usually come in order, which
    ``np.unique``'s hashing does not profit from)."""
    values = np.sort(frames if isinstance(frames, np.ndarray) else np.fromiter(frames, dtype=np.int64))
    if values.size > 1:
        values = values[np.concatenate(([True], values[1:] != values[:-1]))]
    return values


def frame_runs(frames: Iterable[int] | np.ndarray) -> list[tuple[int, int]]:
    """(first, last) of every run of consecutive frame numbers, in order, duplicates dropped."""
    values = unique_frames(frames)
    if not values.size:
        return []
    breaks = np.flatnonzero(np.diff(values) != 1)
    starts = np.concatenate((values[:1], values[breaks + 1]))
    ends = np.concatenate((values[breaks], values[-1:]))
    return list(zip(starts.tolist(), ends.tolist(), strict=True))


def format_runs(runs: list[tuple[int, int]], limit: int = RANGE_TEXT_LIMIT) -> str:
    """Runs of frames (see ``frame_runs``) as a range string such as ``1-10,12,20-98x2``.

    Messages name missing frames this way rather than one line per frame. A string longer than about
    ``limit`` characters is cut after a whole range and ends with how many ranges were left out.
    """
    count = sum(last - first + 1 for first, last in runs)
    pieces: Iterator[str]
    if count <= _FILESEQ_FRAMES:
        frames = [f for first, last in runs for f in range(first, last + 1)]
        parts = fileseq.framesToFrameRange(frames, sort=False).split(",") if frames else []
        total, pieces = len(parts), iter(parts)
    else:
        total = len(runs)
        pieces = (f"{first}-{last}" if last != first else f"{first}" for first, last in runs)
    kept: list[str] = []
    length = 0
    for piece in pieces:
        if kept and length + 1 + len(piece) > limit:
            return ",".join(kept) + f",... ({total - len(kept)} more ranges)"
        kept.append(piece)
        length += len(piece) + (1 if len(kept) > 1 else 0)
    return ",".join(kept)


def _directory_pattern(directory: Path) -> str:
    """The one numbered image sequence in ``directory`` as a ``#`` pattern."""
    groups: dict[tuple[str, str], list[str]] = {}
    unnumbered: list[str] = []
    for entry in sorted(os.listdir(directory)):
        if entry.startswith("."):
            continue
        stem, ext = os.path.splitext(entry)
        if ext.lower() not in IMAGE_EXTENSIONS or not (directory / entry).is_file():
            continue
        m = _TRAILING_NUMBER_RE.match(stem)
        if m is None:
            unnumbered.append(entry)
            continue
        groups.setdefault((m.group("prefix"), ext), []).append(m.group("digits"))
    if not groups:
        if len(unnumbered) == 1:
            return str(directory / unnumbered[0])
        raise PlateError(
            f"directory {directory} holds no numbered image sequence (looked for files like name.1001.exr "
            f"with extensions {', '.join(sorted(IMAGE_EXTENSIONS))}); give a pattern such as plate.####.exr."
        )
    if len(groups) > 1:
        names = ", ".join(
            f"{prefix}{'#' * len(d[0])}{ext} ({len(d)} files)" for (prefix, ext), d in groups.items()
        )
        raise PlateError(
            f"directory {directory} holds several image sequences ({names}); give the one to use as a "
            f"pattern such as {directory / 'plate.####.exr'}."
        )
    (prefix, ext), digit_strings = next(iter(groups.items()))
    lengths = {len(d) for d in digit_strings}
    padding = lengths.pop() if len(lengths) == 1 else 1
    return str(directory / f"{prefix}{'#' * padding}{ext}")


def _frame_paths(token: Token, frames: list[int]) -> list[tuple[int, Path]]:
    """(frame, path) of every frame: the token is split once, not once per frame."""
    directory = token.directory
    return [(f, directory / token.name(f)) for f in frames]


def _warn_gaps(path: Path, found: list[tuple[int, Path]]) -> None:
    """Log a warning naming the frames missing between the first and the last one on disk.

    Without a frame range the shot is whatever is on disk, so a hole (an interrupted copy, a failed
    render task) would otherwise go unnoticed until the mattes are looked at.
    """
    numbers = [f for f, _ in found]
    gaps = [(a + 1, b - 1) for a, b in itertools.pairwise(numbers) if b - a > 1]
    if not gaps:
        return
    missing = sum(last - first + 1 for first, last in gaps)
    log.warning(
        "plate %s: frames %s (%d frames) are missing between %d and %d; only the %d frames on disk are used. "
        "Render or copy the missing frames if the shot needs them.",
        path,
        format_runs(gaps),
        missing,
        numbers[0],
        numbers[-1],
        len(numbers),
    )


def resolve_sequence(
    pattern: str | os.PathLike, frames: str | None = None, *, warn_gaps: bool = True
) -> list[tuple[int, Path]]:
    """The (frame, path) pairs of a plate, in frame order.

    With ``frames`` the paths of exactly those frames are returned, whether they exist or not, so
    that ``validate_plates`` can report every missing one at once. Without it, the frames found on
    disk; a gap between them is logged as a warning (``warn_gaps``), since the artist did not choose it.
    """
    requested = parse_frame_range(frames) if frames not in (None, "") else None
    path = Path(pattern)
    if path.is_dir():
        resolved = _directory_pattern(path)
        log.debug("directory %s resolved to %s", path, resolved)
        return resolve_sequence(resolved, frames, warn_gaps=warn_gaps)

    token = split_token(path)
    if token is not None:
        if requested is not None:
            return _frame_paths(token, requested)
        if not token.directory.is_dir():
            raise PlateError(
                f"directory {token.directory} of the plate pattern does not exist; check the path (and that the "
                f"storage is mounted on this machine)."
            )
        found = scan_frames(path)
        if not found:
            raise PlateError(
                f"no frames found for {path} (looked in {token.directory} for "
                f"{token.before}{'#' * token.padding}{token.after}); check the pattern, its padding "
                f"(#### = 4 digits, # or @ = unpadded) and the extension."
            )
        if warn_gaps:
            _warn_gaps(path, found)
        return found

    # A single file: its trailing number, if any, is its frame.
    m = _TRAILING_NUMBER_RE.match(path.stem)
    if requested is not None and m is not None and requested != [int(m.group("digits"))]:
        # plate.1001.exr with a range: the user means the sequence that file belongs to.
        seq_pattern = path.parent / f"{m.group('prefix')}{'#' * len(m.group('digits'))}{path.suffix}"
        return _frame_paths(split_token(seq_pattern), requested)
    if not path.is_file():
        try:
            kind = file_kind(path.stat().st_mode)
        except OSError:
            kind = None
        if kind is not None:
            raise PlateError(
                f"plate {path} is {kind}, not a regular file; give an image file (EXR, DPX, TIFF, PNG or JPEG) "
                "or a pattern such as plate.####.exr."
            )
        raise PlateError(
            f"plate {path} does not exist; check the path, or use a pattern such as plate.####.exr "
            "for a sequence."
        )
    if m is not None:
        return [(int(m.group("digits")), path)]
    if requested is not None and len(requested) > 1:
        raise PlateError(
            f"plate {path} is a single file without a frame number, but the frame range asks for "
            f"{len(requested)} frames; give a pattern such as plate.####.exr."
        )
    return [(requested[0] if requested else 1, path)]
