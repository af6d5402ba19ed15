"""Frame patterns and frame ranges: which files make up a shot.

Patterns (``plate.####.exr``, ``plate.%04d.exr``, ``plate.@.exr``, ``plate.$F4.exr``) follow the rules of
``osvos_contract.patterns``, which the hosts share. Besides those:

* ``plate.1001.exr``  a plain file (its number is its frame), or ``plate.exr`` (frame 1)
* ``/shots/plate/``   a directory holding exactly one numbered image sequence (e.g. DAVIS ``00000.jpg``)

Ranges are parsed by ``fileseq``: ``1001-1100``, ``1-100x2``, ``1001,1005-1010``, ``1-100:3``...
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path

import fileseq

from osvos_contract.patterns import format_frame, scan_frames, split_token

from .errors import PlateError

log = logging.getLogger(__name__)

__all__ = [
    "parse_frame_range",
    "format_frame_path",
    "resolve_sequence",
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


def parse_frame_range(spec: str) -> list[int]:
    """Frame numbers of a range string, in the order given, without duplicates.

    Parsed with ``fileseq.FrameSet`` so every syntax artists type in Nuke/Deadline works; sub-frames
    are refused because plates are whole frames.
    """
    text = re.sub(r"\s+", "", str(spec))
    if not text:
        raise PlateError(f"empty frame range: {_RANGE_HELP}.")
    try:
        frame_set = fileseq.FrameSet(text)
    except (fileseq.ParseException, ValueError) as exc:
        raise PlateError(f"frame range {spec!r} is not understood ({exc}); {_RANGE_HELP}.") from exc
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


def format_frame_path(pattern: str | os.PathLike, frame: int) -> Path:
    """The file of ``frame`` for a pattern such as ``out.####.exr``.

    A pattern without a token is returned unchanged (a single-file source or output); callers that
    write several frames detect that by the repeated path.
    """
    return Path(format_frame(pattern, frame))


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


def resolve_sequence(pattern: str | os.PathLike, frames: str | None = None) -> list[tuple[int, Path]]:
    """The (frame, path) pairs of a plate, in frame order.

    With ``frames`` the paths of exactly those frames are returned, whether they exist or not, so
    that ``validate_plates`` can report every missing one at once. Without it, the frames found on
    disk.
    """
    requested = parse_frame_range(frames) if frames not in (None, "") else None
    path = Path(pattern)
    if path.is_dir():
        resolved = _directory_pattern(path)
        log.debug("directory %s resolved to %s", path, resolved)
        return resolve_sequence(resolved, frames)

    token = split_token(path)
    if token is not None:
        if requested is not None:
            return [(f, format_frame_path(path, f)) for f in requested]
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
        return found

    # A single file: its trailing number, if any, is its frame.
    m = _TRAILING_NUMBER_RE.match(path.stem)
    if requested is not None and m is not None and requested != [int(m.group("digits"))]:
        # plate.1001.exr with a range: the user means the sequence that file belongs to.
        seq_pattern = path.parent / f"{m.group('prefix')}{'#' * len(m.group('digits'))}{path.suffix}"
        return [(f, format_frame_path(seq_pattern, f)) for f in requested]
    if not path.is_file():
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
