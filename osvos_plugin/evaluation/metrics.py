"""The DAVIS measures: region similarity J, boundary F-measure F, and their per-sequence statistics.

Written to give the same numbers as the official DAVIS evaluation (the MATLAB package of DAVIS-2016,
``davis-2016`` and ``davis-2017`` Python code):

* **J** (``jaccard``): |pred & gt| / |pred | gt|, and 1.0 when both masks are empty.
* **F** (``f_boundary``): boundaries from :func:`seg2bmap` (one pixel wide, the image border is never
  a boundary), each dilated by a disk of radius ``ceil(bound_th * image diagonal)`` pixels
  (``bound_th >= 1`` is a radius in pixels), precision = predicted boundary pixels that lie within
  the disk of a true boundary pixel, recall the other way round, F their harmonic mean. Empty
  boundaries follow the official table: both empty -> P = R = 1; only the prediction empty ->
  P = 1, R = 0; only the truth empty -> P = 0, R = 1; and F = 0 whenever P + R = 0.
* **Statistics** (``statistics``): mean; recall = fraction of frames with a value strictly above
  0.5; decay = mean of the first quarter minus mean of the last quarter, the four bins being
  ``round(linspace(1, n, 5))`` (1-based, both ends inclusive, so neighbouring bins share a frame;
  rounding half up, as MATLAB's ``round`` and Python's ``+1e-10`` trick). One deliberate difference:
  the official Python code casts the bin indices to ``uint8``, which wraps for sequences of more
  than 255 evaluated frames; here they are plain integers (identical results below that length,
  and the same as the MATLAB code at any length).

Masks: booleans or integers count every non-zero pixel as foreground (the official ``astype(bool)``);
float masks are taken as mattes and thresholded at 0.5, so a probability map cannot silently count
every faint pixel as object.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from functools import lru_cache

import cv2
import numpy as np

__all__ = [
    "DEFAULT_BOUND_TH",
    "BoundaryScore",
    "Statistics",
    "as_binary",
    "boundary_tolerance",
    "decay",
    "disk",
    "f_boundary",
    "f_measure",
    "jaccard",
    "recall",
    "seg2bmap",
    "statistics",
]

#: Boundary tolerance of the DAVIS benchmark: 0.8% of the image diagonal.
DEFAULT_BOUND_TH = 0.008
#: A frame counts as "recalled" when its J (or F) is strictly above this.
RECALL_THRESHOLD = 0.5
#: Number of temporal bins of the decay.
DECAY_BINS = 4


def as_binary(mask: np.ndarray) -> np.ndarray:
    """A 2-D boolean mask: non-zero for bool/integer input, ``>= 0.5`` for float mattes (NaN: background)."""
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise ValueError(f"expected a 2-D mask, got shape {mask.shape}")
    if mask.dtype == np.bool_:
        return mask
    if np.issubdtype(mask.dtype, np.floating):
        return mask >= 0.5
    return mask != 0


def _check_pair(gt: np.ndarray, pred: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    gt, pred = as_binary(gt), as_binary(pred)
    if gt.shape != pred.shape:
        raise ValueError(f"ground truth {gt.shape[1]}x{gt.shape[0]} and prediction "
                         f"{pred.shape[1]}x{pred.shape[0]} differ in size")
    return gt, pred


def jaccard(gt: np.ndarray, pred: np.ndarray) -> float:
    """Region similarity J (intersection over union); two empty masks agree perfectly (1.0)."""
    gt, pred = _check_pair(gt, pred)
    union = int(np.count_nonzero(gt | pred))
    if union == 0:
        return 1.0
    return int(np.count_nonzero(gt & pred)) / union


def seg2bmap(seg: np.ndarray) -> np.ndarray:
    """One-pixel-wide boundary map of a binary mask, as the official ``seg2bmap`` draws it.

    A pixel is on the boundary when it differs from its right, lower or lower-right neighbour, a
    neighbour outside the image never counting. The boundary therefore sits half a pixel towards the
    origin from the true edge (the row/column just above/left of an object and the object's own
    last row/column), and an object touching the image border has no boundary along that border.
    (The official function can also resample the map to another size; the benchmark never uses that.)
    """
    seg = as_binary(seg)
    b = np.zeros_like(seg)
    b[:, :-1] |= seg[:, :-1] != seg[:, 1:]  # right neighbour
    b[:-1, :] |= seg[:-1, :] != seg[1:, :]  # lower neighbour
    b[:-1, :-1] |= seg[:-1, :-1] != seg[1:, 1:]  # lower-right neighbour
    return b


def boundary_tolerance(shape: tuple[int, ...], bound_th: float = DEFAULT_BOUND_TH) -> int:
    """Disk radius in pixels: ``bound_th`` itself if >= 1, else ``ceil(bound_th * diagonal)``.

    854x480 (DAVIS 480p) gives ceil(7.84) = 8.
    """
    if bound_th >= 1:
        return int(round(bound_th))
    if bound_th <= 0:
        raise ValueError(f"bound_th must be positive, got {bound_th}")
    return int(math.ceil(bound_th * math.hypot(shape[0], shape[1])))


@lru_cache(maxsize=16)
def disk(radius: int) -> np.ndarray:
    """The official disk structuring element, ``x**2 + y**2 <= r**2`` on integer offsets, as uint8.

    Built by hand because OpenCV's ``MORPH_ELLIPSE`` is a different digital disk, which changes F
    (BENCHMARKS.md, "Scoring").
    """
    r = int(radius)
    y, x = np.mgrid[-r : r + 1, -r : r + 1]
    k = ((x * x + y * y) <= r * r).astype(np.uint8)
    k.flags.writeable = False
    return k


@dataclass(frozen=True)
class BoundaryScore:
    """Boundary F-measure of one frame with the precision and recall it comes from."""

    f: float
    precision: float
    recall: float


def f_boundary(gt: np.ndarray, pred: np.ndarray, bound_th: float = DEFAULT_BOUND_TH) -> BoundaryScore:
    """Boundary precision, recall and F-measure of ``pred`` against ``gt`` (see the module docstring)."""
    gt, pred = _check_pair(gt, pred)
    radius = boundary_tolerance(gt.shape, bound_th)
    gt_b, pred_b = seg2bmap(gt), seg2bmap(pred)
    n_gt, n_pred = int(np.count_nonzero(gt_b)), int(np.count_nonzero(pred_b))

    if n_pred == 0 and n_gt == 0:
        precision, recall_ = 1.0, 1.0
    elif n_pred == 0:
        precision, recall_ = 1.0, 0.0
    elif n_gt == 0:
        precision, recall_ = 0.0, 1.0
    else:
        # Only boundary pixels are ever tested, so dilating inside their bounding box grown by the
        # radius gives the same matches as dilating the whole frame, and is faster for small objects
        # (cv2.dilate ignores pixels beyond the crop: its default border is -inf).
        rows = np.flatnonzero(np.any(gt_b | pred_b, axis=1))
        cols = np.flatnonzero(np.any(gt_b | pred_b, axis=0))
        y0, y1 = max(rows[0] - radius, 0), rows[-1] + radius + 1
        x0, x1 = max(cols[0] - radius, 0), cols[-1] + radius + 1
        gt_c = gt_b[y0:y1, x0:x1].view(np.uint8)
        pred_c = pred_b[y0:y1, x0:x1].view(np.uint8)
        kernel = disk(radius)
        gt_dil = cv2.dilate(gt_c, kernel)
        pred_dil = cv2.dilate(pred_c, kernel)
        precision = int(np.count_nonzero(pred_c & gt_dil)) / n_pred
        recall_ = int(np.count_nonzero(gt_c & pred_dil)) / n_gt

    f = 0.0 if precision + recall_ == 0 else 2 * precision * recall_ / (precision + recall_)
    return BoundaryScore(f=f, precision=precision, recall=recall_)


def f_measure(gt: np.ndarray, pred: np.ndarray, bound_th: float = DEFAULT_BOUND_TH) -> float:
    """Boundary F-measure of one frame (the F of DAVIS)."""
    return f_boundary(gt, pred, bound_th).f


def _values(values: Sequence[float] | np.ndarray) -> np.ndarray:
    x = np.asarray(values, dtype=np.float64).ravel()
    if x.size == 0:
        raise ValueError("no per-frame values: a sequence needs at least one evaluated frame")
    return x


def recall(values: Sequence[float] | np.ndarray, threshold: float = RECALL_THRESHOLD) -> float:
    """Fraction of frames scoring strictly above ``threshold`` (NaN frames are left out)."""
    x = _values(values)
    x = x[~np.isnan(x)]
    return float(np.mean(x > threshold)) if x.size else math.nan


def decay(values: Sequence[float] | np.ndarray, n_bins: int = DECAY_BINS) -> float:
    """Quality lost over time: mean of the first temporal bin minus mean of the last.

    Bin edges are ``round(linspace(1, n, n_bins + 1))`` rounded half up, 1-based and inclusive at
    both ends, exactly as the official code (so 3 frames give bins [1,2] [2] [2,3] [3]).
    """
    x = _values(values)
    edges = np.floor(np.linspace(1, x.size, n_bins + 1) + 0.5).astype(np.int64) - 1  # 0-based
    first = x[edges[0] : edges[1] + 1]
    last = x[edges[-2] : edges[-1] + 1]
    return float(np.nanmean(first) - np.nanmean(last))


@dataclass(frozen=True)
class Statistics:
    """Mean, recall and decay of one measure over the evaluated frames of a sequence."""

    mean: float
    recall: float
    decay: float

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


def statistics(values: Sequence[float] | np.ndarray) -> Statistics:
    """The three DAVIS statistics of per-frame values (NaN frames are ignored, as ``nanmean`` does)."""
    x = _values(values)
    return Statistics(mean=float(np.nanmean(x)), recall=recall(x), decay=decay(x))
