"""Frames to check: per-frame statistics of the mattes a render wrote, and the frames probably wrong.

Everything is computed from the mattes themselves (the network's probability is not kept), at a reduced
size where that is enough: the matte's area (fraction of the frame over 0.5), a confidence for soft mattes
(how far the alpha is from 0.5 where there is any: ``None`` for a hard matte), the number of blobs and the
gap between the largest blob and the second (relative to the frame's diagonal).

Rules then name the frames to check, one reason each: the matte is empty between frames that hold the
object (hidden or lost), empty from some frame on (gone or lost), appears where the frames around it are
empty, its area jumps against the median of its neighbours, a second blob lies far from the object, or
the confidence is low. ``Review.sentence`` groups them into ranges for the render's summary line, and
``write_review`` stores the whole report as JSON beside the mattes (``<name>.osvos-review.json``).
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import cv2
import numpy as np

from osvos_contract.review import REVIEW_SUFFIX, review_path

from .files import atomic_write

__all__ = ["REVIEW_SUFFIX", "FrameStats", "Review", "frame_ranges", "frame_runs", "matte_stats", "previous_stats",
           "review", "review_path", "write_review"]

STATS_SIZE = 256  # blobs are counted on the matte shrunk to at most this many pixels a side
MIN_AREA = 1e-4  # a matte with less of the frame than this is empty
MIN_BLOB = 0.01  # blobs under this fraction of the largest are specks, not counted
JUMP_FACTOR = 2.0  # area against the median of the neighbours' (either way) above this: a jump
BLIP = 2  # a matte this many frames long or shorter between empty ones appears from nowhere
NEIGHBOURS = 2  # frames on each side whose median area a frame's is compared with
FAR_BLOB = 0.15  # a second blob further than this fraction of the diagonal from the largest
LOW_CONFIDENCE = 0.4
MAX_RANGES = 8  # per reason in the sentence; the JSON has them all

#: reason -> what the summary says about it, in the order the summary names them
REASONS = {
    "hidden": "the matte is empty, the object may be hidden or lost",
    "gone": "the matte is empty from here on, the object may have left the frame or be lost",
    "appears": "the matte appears where the frames around it are empty",
    "area_jump": "the matte's area jumps",
    "far_blob": "a second blob far from the object",
    "low_confidence": "the matte is unsure",
}

RESCALED = "segmented again smaller, the object larger than fine-tuning showed it (Rescale Grown Objects)"


def frame_ranges(ranges: list[tuple[int, int]], most: int = MAX_RANGES) -> str:
    """``1040-1052, 1077`` (at most ``most`` ranges, then how many more)."""
    shown = ", ".join(str(a) if a == b else f"{a}-{b}" for a, b in ranges[:most])
    return shown + (f" and {len(ranges) - most} more" if len(ranges) > most else "")


@dataclass(frozen=True)
class FrameStats:
    frame: int
    area: float  # fraction of the frame where the matte is over 0.5
    confidence: float | None  # mean |2a - 1| where the matte is over 0.01; None for a hard matte
    blobs: int  # blobs of at least MIN_BLOB of the largest
    second_blob_distance: float | None  # gap from the largest blob to the second, / the diagonal
    fingerprint: str = ""  # the matte's (``outputs.Fingerprint``): a resume reuses these figures when it matches
    rescaled_to: int | None = None  # the long side (px) it was segmented again at: the object outgrew its training

    @property
    def present(self) -> bool:
        return self.area >= MIN_AREA


@dataclass
class Review:
    frames: list[FrameStats]
    flagged: dict[str, list[tuple[int, int]]] = field(default_factory=dict)  # reason -> (first, last) ranges
    note: str = ""  # what the report covers, when not every frame of the range

    @property
    def rescaled(self) -> list[tuple[int, int]]:
        """The frames segmented again smaller (Rescale Grown Objects), as (first, last) ranges."""
        return frame_runs([s.frame for s in self.frames], [k for k, s in enumerate(self.frames) if s.rescaled_to])

    @property
    def sentence(self) -> str:
        """``check frames 1040-1052: ...; 1077: ...``, or "" when nothing is flagged."""
        if not self.flagged:
            return ""
        parts = []
        for reason, text in REASONS.items():
            ranges = self.flagged.get(reason)
            if not ranges:
                continue
            parts.append(f"{frame_ranges(ranges)}: {text}")
        one = len(self.flagged) == 1 and len(r := next(iter(self.flagged.values()))) == 1 and r[0][0] == r[0][1]
        return f"check frame{'' if one else 's'} " + "; ".join(parts)

    def as_json(self) -> dict:
        return {
            "version": 1,
            "covers": self.note or "every frame of the range",
            "summary": self.sentence,
            "flagged": [{"reason": reason, "text": REASONS[reason], "ranges": [list(r) for r in ranges]}
                        for reason, ranges in self.flagged.items()],
            "rescaled": {"text": RESCALED, "ranges": [list(r) for r in self.rescaled]},
            "frames": [asdict(s) for s in self.frames],
        }


def matte_stats(frame: int, matte: np.ndarray) -> FrameStats:
    """The statistics of one matte (float (H, W) in [0, 1])."""
    matte = np.asarray(matte, np.float32)
    if matte.ndim == 3:
        matte = matte[..., -1]
    h, w = matte.shape
    inside = matte > 0.5
    area = float(np.count_nonzero(inside)) / float(h * w)
    soft = (matte > 0.0) & (matte < 1.0)
    confidence = None
    if soft.any():
        some = matte > 0.01
        confidence = round(float(np.abs(2.0 * matte[some] - 1.0).mean()), 4) if some.any() else 1.0
    scale = min(1.0, STATS_SIZE / max(h, w))
    small = inside.astype(np.uint8)
    if scale < 1.0:
        size = (max(1, round(w * scale)), max(1, round(h * scale)))
        small = (cv2.resize(matte, size, interpolation=cv2.INTER_AREA) > 0.5).astype(np.uint8)
    blobs, distance = _blobs(small)
    return FrameStats(int(frame), round(area, 6), confidence, blobs, distance)


def objects_stats(frame: int, mattes: np.ndarray) -> FrameStats:
    """Statistics of several objects' mattes (K, H, W): the area of all of them, their blobs added up, the
    farthest second blob of any one object (two objects apart are not a stray blob), the least sure one."""
    each = [matte_stats(frame, m) for m in mattes]
    union = matte_stats(frame, np.max(mattes, axis=0))
    distances = [s.second_blob_distance for s in each if s.second_blob_distance is not None]
    confidences = [s.confidence for s in each if s.confidence is not None]
    return replace(union, blobs=sum(s.blobs for s in each), second_blob_distance=max(distances) if distances else None,
                   confidence=min(confidences) if confidences else None)


def _blobs(binary: np.ndarray) -> tuple[int, float | None]:
    n, labels, stats, _ = cv2.connectedComponentsWithStats(binary, connectivity=8)
    if n <= 1:
        return 0, None
    sizes = stats[1:, cv2.CC_STAT_AREA]
    order = np.argsort(-sizes, kind="stable")
    counted = int(np.count_nonzero(sizes >= max(1.0, MIN_BLOB * sizes[order[0]])))
    if counted < 2:
        return counted, None
    largest, second = order[0] + 1, order[1] + 1
    # the distance of every pixel to the largest blob; the second blob's nearest pixel is its gap
    gap = cv2.distanceTransform((labels != largest).astype(np.uint8), cv2.DIST_L2, 5)
    h, w = binary.shape
    return counted, round(float(gap[labels == second].min()) / float(np.hypot(h, w)), 4)


def review(stats: Iterable[FrameStats], note: str = "") -> Review:
    """The frames to check among ``stats`` (taken in frame order; neighbours are the frames listed)."""
    frames = sorted(stats, key=lambda s: s.frame)
    flags: dict[str, list[int]] = {reason: [] for reason in REASONS}  # positions in ``frames``
    present = [s.present for s in frames]
    n = len(frames)
    i = previous = 0
    while i < n:  # runs of empty and non-empty mattes
        j = i
        while j < n and present[j] == present[i]:
            j += 1
        before, after = i > 0, j < n  # a run of the other kind on that side
        if not present[i] and before:
            flags["hidden" if after else "gone"].extend(range(i, j))
        elif present[i] and before:
            if after and j - i <= BLIP:  # a matte for a frame or two between empty ones
                flags["appears"].extend(range(i, j))
            elif previous == 0:  # empty from the first frame: the matte appears here
                flags["appears"].append(i)
        previous, i = i, j
    areas = np.array([s.area for s in frames])
    for k, s in enumerate(frames):
        if not s.present:
            continue
        lo = max(0, min(k - NEIGHBOURS, n - 1 - 2 * NEIGHBOURS))  # at the ends, the nearest frames on one side
        near = np.concatenate((areas[lo:k], areas[k + 1:lo + 2 * NEIGHBOURS + 1]))
        near = near[near >= MIN_AREA]  # an empty neighbour is the rules above's
        median = float(np.median(near)) if near.size else 0.0
        if median >= MIN_AREA and max(s.area / median, median / s.area) > JUMP_FACTOR:
            flags["area_jump"].append(k)
        if s.second_blob_distance is not None and s.second_blob_distance > FAR_BLOB:
            flags["far_blob"].append(k)
        if s.confidence is not None and s.confidence < LOW_CONFIDENCE:
            flags["low_confidence"].append(k)
    flagged = {reason: frame_runs([s.frame for s in frames], sorted(set(ks))) for reason, ks in flags.items() if ks}
    return Review(frames, flagged, note)


def frame_runs(frames: list[int], positions: list[int]) -> list[tuple[int, int]]:
    """(first frame, last frame) of each run of consecutive positions in ``frames`` (frame numbers in order)."""
    runs: list[tuple[int, int]] = []
    for k in positions:
        if runs and runs[-1][1] == k - 1:
            runs[-1] = (runs[-1][0], k)
        else:
            runs.append((k, k))
    return [(frames[a], frames[b]) for a, b in runs]


def previous_stats(pattern: str | os.PathLike) -> dict[int, FrameStats]:
    """The per-frame figures of the last report beside the mattes of ``pattern`` (empty when there is none or
    it cannot be read): a resume takes a kept matte's figures from here rather than decoding it again."""
    try:
        data = json.loads(review_path(pattern).read_text(encoding="utf-8"))
        return {int(f["frame"]): FrameStats(**f) for f in data["frames"]}
    except (OSError, ValueError, KeyError, TypeError):
        return {}


@contextlib.contextmanager
def review_lock(pattern: str | os.PathLike) -> Iterator[None]:
    """Wait for, then hold, the report's lock (``.<report>.lock``): chunks of one shot finishing together
    each add their frames to the report instead of writing over each other's. The lock file is removed by
    its holder (a waiter then finds it gone and takes a new one). Without ``fcntl``, or where the folder
    cannot hold the lock, nothing is locked."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not on POSIX
        yield
        return
    report = review_path(pattern)
    lock = report.parent / f".{report.name}.lock"
    try:
        report.parent.mkdir(parents=True, exist_ok=True)
        while True:
            fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o666)
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                if os.path.samestat(os.stat(lock), os.fstat(fd)):
                    break
            except FileNotFoundError:
                pass
            os.close(fd)
    except OSError:
        yield
        return
    try:
        yield
    finally:
        with contextlib.suppress(OSError):
            lock.unlink()
        os.close(fd)


def write_review(report: Review, pattern: str | os.PathLike) -> Path:
    """Write the report beside the mattes of ``pattern``, atomically; returns its path."""
    text = json.dumps(report.as_json(), indent=1) + "\n"
    return atomic_write(review_path(pattern), lambda tmp: tmp.write_text(text, encoding="utf-8"))
