"""Evaluating predicted masks against DAVIS ground truth: reading the folders, scoring sequences.

Layout
    Ground truth: ``ROOT/Annotations/<resolution>/<seq>/<frame>.png`` (``resolution`` = ``480p``);
    frames are listed from these files, sorted by name. Predictions: ``PRED/<seq>/<frame>.png`` or
    ``PRED/<seq>/<frame>.exr`` with the same frame names (``.png`` wins when both exist). As in the
    official benchmark the first and last frame of every sequence are not scored, so their
    predictions need not exist; every other frame's must, and at the ground truth's size.

Binarisation (see also :func:`read_annotation`, :func:`read_prediction`)
    Ground truth: any non-zero pixel is object, as the official code (``annot > 0``; DAVIS-2016
    annotations hold only 0 and 255). Predictions: PNG pixels at or above half of their range
    (``>= 128`` for 8-bit, ``>= 32768`` for 16-bit); a single-channel PNG holding only 0 and 1 is a
    label image and its 1s are object (the official MATLAB reader accepts {0, 1} masks likewise).
    Colour PNGs use the brightest colour channel (alpha ignored), so grey saved as RGB and DAVIS
    palette PNGs (object = index 1 = dark red) both work. EXR mattes: channel ``A`` (else the first
    channel) ``>= 0.5``; NaN is background.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from ..errors import InputError
from .metrics import DEFAULT_BOUND_TH, Statistics, as_binary, f_measure, jaccard, statistics
from .report import EvaluationResult, SequenceResult

log = logging.getLogger(__name__)

__all__ = [
    "DEFAULT_RESOLUTION",
    "PREDICTION_EXTENSIONS",
    "EvaluationInputError",
    "annotation_dir",
    "evaluate_folder",
    "evaluate_frame",
    "evaluate_sequence",
    "find_prediction",
    "list_sequences",
    "read_annotation",
    "read_prediction",
    "read_split",
]

DEFAULT_RESOLUTION = "480p"
#: Prediction file types, in order of preference.
PREDICTION_EXTENSIONS = (".png", ".exr")


class EvaluationInputError(InputError, ValueError):
    """Unusable input: a missing folder or frame, an unreadable file, a size mismatch. Names the file."""

    def __init__(self, message: str, path: str | os.PathLike | None = None) -> None:
        super().__init__(message)
        self.path = Path(path) if path is not None else None


# --- reading ---------------------------------------------------------------------------------------


def _natural_key(name: str) -> list[object]:
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", name)]


def annotation_dir(davis_root: str | os.PathLike, resolution: str = DEFAULT_RESOLUTION) -> Path:
    """``ROOT/Annotations/<resolution>``, checked to exist."""
    root = Path(davis_root)
    ann = root / "Annotations" / resolution
    if not ann.is_dir():
        raise EvaluationInputError(
            f"{ann}: not found; is {root} a DAVIS root (Annotations/{resolution}/<seq>/)?", ann)
    return ann


def list_sequences(davis_root: str | os.PathLike, resolution: str = DEFAULT_RESOLUTION) -> list[str]:
    """Names of the sequences with ground truth, sorted."""
    return sorted(p.name for p in annotation_dir(davis_root, resolution).iterdir() if p.is_dir())


def read_split(path: str | os.PathLike) -> list[str]:
    """Sequence names from a split file, in file order, without duplicates.

    Accepts both official formats: one name per line (DAVIS-2017 ``ImageSets/2016/val.txt``) and
    DAVIS-2016 ``ImageSets/480p/*.txt`` lines (``/JPEGImages/480p/<seq>/00000.jpg /Annotations/...``),
    whose sequence is the folder of the first path. Blank lines and ``#`` comments are skipped.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        msg = f"{path}: cannot read the split file ({exc.strerror or exc})"
        raise EvaluationInputError(msg, path) from exc
    names: dict[str, None] = {}
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        first = line.split()[0]
        name = Path(first).parent.name if "/" in first else first
        if not name:
            raise EvaluationInputError(f"{path}: cannot tell the sequence of line {raw!r}", path)
        names.setdefault(name, None)
    if not names:
        raise EvaluationInputError(f"{path}: the split file lists no sequence", path)
    return list(names)


def _colour_max(img: np.ndarray) -> np.ndarray:
    """Single channel of an image read by OpenCV: itself, or the brightest of its colour channels."""
    if img.ndim == 2:
        return img
    if img.shape[2] <= 2:  # grey (+ alpha)
        return img[:, :, 0]
    return img[:, :, :3].max(axis=2)


def _imread(path: Path) -> np.ndarray:
    img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if img is None:
        raise EvaluationInputError(f"{path}: cannot read this image (not a valid PNG?)", path)
    return img


def read_annotation(path: str | os.PathLike) -> np.ndarray:
    """A DAVIS ground-truth mask as booleans: every non-zero pixel is object (official ``annot > 0``)."""
    path = Path(path)
    return _colour_max(_imread(path)) > 0


def _read_exr_matte(path: Path) -> np.ndarray:
    import OpenImageIO as oiio  # only EXR predictions need it; scoring PNGs or arrays does not

    inp = oiio.ImageInput.open(str(path))
    if inp is None:
        msg = f"{path}: cannot read this EXR ({oiio.geterror() or 'unknown error'})"
        raise EvaluationInputError(msg, path)
    try:
        spec = inp.spec()
        names = list(spec.channelnames)
        ch = names.index("A") if "A" in names else 0
        data = inp.read_image(0, 0, ch, ch + 1, "float")
        if data is None:
            msg = f"{path}: cannot read the pixels ({inp.geterror() or 'unknown error'})"
            raise EvaluationInputError(msg, path)
        matte = np.asarray(data, dtype=np.float32).reshape(spec.height, spec.width)
        # A data window smaller than (or offset from) the display window: place it in the frame.
        if (spec.x, spec.y, spec.width, spec.height) != (spec.full_x, spec.full_y, spec.full_width,
                                                        spec.full_height):
            full = np.zeros((spec.full_height, spec.full_width), np.float32)
            ys, xs = spec.y - spec.full_y, spec.x - spec.full_x
            y0, x0 = max(ys, 0), max(xs, 0)
            y1, x1 = min(ys + spec.height, spec.full_height), min(xs + spec.width, spec.full_width)
            if y1 > y0 and x1 > x0:
                full[y0:y1, x0:x1] = matte[y0 - ys : y1 - ys, x0 - xs : x1 - xs]
            matte = full
    finally:
        inp.close()
    return matte >= 0.5  # NaN compares False: background


def read_prediction(path: str | os.PathLike) -> np.ndarray:
    """A predicted mask as booleans (PNG or EXR; the thresholds are in the module docstring)."""
    path = Path(path)
    if path.suffix.lower() == ".exr":
        return _read_exr_matte(path)
    img = _colour_max(_imread(path))
    if not np.issubdtype(img.dtype, np.integer):
        return as_binary(img.astype(np.float32))
    if img.ndim == 2 and img.size and int(img.max()) <= 1:
        return img > 0  # a {0, 1} label image
    half = (int(np.iinfo(img.dtype).max) + 1) // 2
    return img >= half


def find_prediction(predictions: str | os.PathLike, sequence: str, frame: str) -> Path | None:
    """``PRED/<sequence>/<frame>.png`` or ``.exr``, whichever exists first; None when neither does."""
    folder = Path(predictions) / sequence
    for ext in PREDICTION_EXTENSIONS:
        p = folder / f"{frame}{ext}"
        if p.is_file():
            return p
    return None


# --- scoring ---------------------------------------------------------------------------------------


def evaluate_frame(
    gt: np.ndarray, pred: np.ndarray, bound_th: float = DEFAULT_BOUND_TH
) -> tuple[float, float]:
    """(J, F) of one frame."""
    return jaccard(gt, pred), f_measure(gt, pred, bound_th)


def _scored_range(n: int, skip_first_last: bool, name: str) -> range:
    if skip_first_last:
        if n < 3:
            raise ValueError(f"{name}: {n} frame(s); DAVIS scoring leaves out the first and last frames, "
                             "so a sequence needs at least 3")
        return range(1, n - 1)
    if n < 1:
        raise ValueError(f"{name}: no frames")
    return range(n)


def _map(fn, items: Sequence, workers: int) -> list:
    if workers > 1 and len(items) > 1:
        with ThreadPoolExecutor(min(workers, len(items))) as pool:  # cv2 and numpy release the GIL
            return list(pool.map(fn, items))
    return [fn(i) for i in items]


def _result(name: str, scores: list[tuple[float, float]], frames: list[str]) -> SequenceResult:
    j = [s[0] for s in scores]
    f = [s[1] for s in scores]
    return SequenceResult(name=name, J=statistics(j), F=statistics(f), j_per_frame=j, f_per_frame=f,
                          frames=frames)


def evaluate_sequence(
    gt_masks: Sequence[np.ndarray] | np.ndarray,
    pred_masks: Sequence[np.ndarray] | np.ndarray,
    *,
    name: str = "sequence",
    frames: Sequence[str] | None = None,
    bound_th: float = DEFAULT_BOUND_TH,
    skip_first_last: bool = True,
    workers: int = 1,
) -> SequenceResult:
    """J and F of one sequence held in memory, one mask per frame of the whole sequence.

    Masks: bool/integer non-zero = object, float ``>= 0.5`` (see :func:`metrics.as_binary`). As in the
    DAVIS benchmark the first frame (given to the method) and the last are not scored; pass
    ``skip_first_last=False`` to score every frame (not comparable with published numbers).
    """
    if len(gt_masks) != len(pred_masks):
        raise ValueError(f"{name}: {len(gt_masks)} ground-truth masks but {len(pred_masks)} predictions")
    if frames is not None and len(frames) != len(gt_masks):
        raise ValueError(f"{name}: {len(frames)} frame names for {len(gt_masks)} masks")
    names = list(frames) if frames is not None else [f"{i:05d}" for i in range(len(gt_masks))]
    idx = list(_scored_range(len(gt_masks), skip_first_last, name))

    def score(i: int) -> tuple[float, float]:
        gt, pred = np.asarray(gt_masks[i]), np.asarray(pred_masks[i])
        if gt.shape[:2] != pred.shape[:2]:
            raise ValueError(f"{name} frame {names[i]}: ground truth {gt.shape} and prediction {pred.shape} "
                             "differ in size")
        return evaluate_frame(gt, pred, bound_th)

    return _result(name, _map(score, idx, workers), [names[i] for i in idx])


def evaluate_objects(
    gt_labels: Sequence[np.ndarray] | np.ndarray,
    pred_labels: Sequence[np.ndarray] | np.ndarray,
    *,
    name: str = "sequence",
    frames: Sequence[str] | None = None,
    bound_th: float = DEFAULT_BOUND_TH,
    skip_first_last: bool = True,
    workers: int = 1,
) -> SequenceResult:
    """J and F of a several-object sequence, the DAVIS-2017 way: label images (0 background, object k = k)
    per frame; each object of the ground truth is scored on its own (a frame where it is absent from both
    counts 1), and the sequence's statistics are the mean over objects of each object's. The per-frame
    values are the mean over objects of that frame's."""
    if len(gt_labels) != len(pred_labels):
        raise ValueError(f"{name}: {len(gt_labels)} ground-truth masks but {len(pred_labels)} predictions")
    ids = sorted(set(np.unique(np.concatenate([np.unique(np.asarray(g)) for g in gt_labels])).tolist()) - {0})
    if not ids:
        raise ValueError(f"{name}: the ground truth holds no object")
    per_object = [evaluate_sequence([np.asarray(g) == k for g in gt_labels], [np.asarray(p) == k for p in pred_labels],
                                    name=f"{name} object {k}", frames=frames, bound_th=bound_th,
                                    skip_first_last=skip_first_last, workers=workers) for k in ids]
    return _mean_over_objects(name, per_object)


def _mean_over_objects(name: str, per_object: list[SequenceResult]) -> SequenceResult:
    def mean_stats(stats: list[Statistics]) -> Statistics:
        return Statistics(*(float(np.mean([getattr(s, f) for s in stats])) for f in ("mean", "recall", "decay")))

    return SequenceResult(
        name=name, J=mean_stats([r.J for r in per_object]), F=mean_stats([r.F for r in per_object]),
        j_per_frame=[float(v) for v in np.mean([r.j_per_frame for r in per_object], axis=0)],
        f_per_frame=[float(v) for v in np.mean([r.f_per_frame for r in per_object], axis=0)],
        frames=per_object[0].frames)


def read_labels_png(path: Path) -> np.ndarray | None:
    """The indices of a palette (indexed-colour) PNG, as DAVIS-2017 annotations are; None for other images."""
    from PIL import Image

    try:
        with Image.open(path) as img:
            return np.asarray(img, dtype=np.uint8) if img.mode == "P" else None
    except (OSError, ValueError) as e:
        raise EvaluationInputError(f"{path}: cannot read this image ({e})", path) from None


def read_prediction_labels(path: Path) -> np.ndarray:
    """A several-object prediction as labels: a palette PNG's indices, or an osvos-render EXR's layers
    (``<name>.A``; ``obj<k>`` is object k, other names count in layer order), each pixel to its strongest
    object at >= 0.5."""
    if path.suffix.lower() != ".exr":
        labels = read_labels_png(path)
        if labels is None:
            raise EvaluationInputError(f"{path}: several objects need a palette (indexed-colour) PNG or an EXR "
                                       "with a layer per object", path)
        return labels
    import OpenImageIO as oiio

    inp = oiio.ImageInput.open(str(path))
    if inp is None:
        raise EvaluationInputError(f"{path}: cannot read this EXR ({oiio.geterror() or 'unknown error'})", path)
    try:
        names = list(inp.spec().channelnames)
        data = inp.read_image(0, 0, 0, len(names), "float")
    finally:
        inp.close()
    layers = [(i, n[:-2]) for i, n in enumerate(names) if n.endswith(".A")]
    if not layers:
        raise EvaluationInputError(f"{path}: no object layers (<name>.A) in this EXR", path)
    ids = [int(n[3:]) if re.fullmatch(r"obj\d+", n) else k + 1 for k, (_, n) in enumerate(layers)]
    stack = np.stack([np.nan_to_num(data[..., i]) for i, _ in layers])
    best = stack.argmax(axis=0)
    return np.where(stack.max(axis=0) >= 0.5, np.asarray(ids, np.uint8)[best], 0).astype(np.uint8)


def _is_multi_object(gt_files: list[Path]) -> bool:
    """A sequence whose first annotation is a palette PNG with two or more objects (DAVIS-2017)."""
    labels = read_labels_png(gt_files[0]) if gt_files else None
    return labels is not None and len(set(np.unique(labels).tolist()) - {0}) >= 2


@dataclass(frozen=True)
class _Frame:
    name: str
    gt: Path
    pred: Path


def _plan_sequence(ann_root: Path, predictions: Path, seq: str) -> list[_Frame]:
    """The frames to score, every file checked to exist before any pixel is read."""
    gt_dir = ann_root / seq
    if not gt_dir.is_dir():
        raise EvaluationInputError(f"{gt_dir}: no ground truth for sequence {seq!r}", gt_dir)
    pred_dir = predictions / seq
    if not pred_dir.is_dir():
        raise EvaluationInputError(f"{pred_dir}: no predictions for sequence {seq!r} (missing folder)",
                                   pred_dir)
    gt_files = sorted((p for p in gt_dir.iterdir() if p.suffix.lower() == ".png"),
                      key=lambda p: _natural_key(p.stem))
    if len(gt_files) < 3:
        raise EvaluationInputError(f"{gt_dir}: {len(gt_files)} annotation(s); DAVIS scoring needs at least 3 "
                                   "frames (the first and last are not scored)", gt_dir)
    planned, missing = [], []
    for gt in gt_files[1:-1]:
        pred = find_prediction(predictions, seq, gt.stem)
        if pred is None:
            missing.append(pred_dir / f"{gt.stem}.png")
        else:
            planned.append(_Frame(gt.stem, gt, pred))
    if missing:
        more = f" (and {len(missing) - 1} more frame(s) of {seq!r})" if len(missing) > 1 else ""
        raise EvaluationInputError(f"{missing[0]}: missing prediction (no .png or .exr for frame "
                                   f"{missing[0].stem}){more}", missing[0])
    return planned


def _score_file_pair(frame: _Frame, bound_th: float) -> tuple[float, float]:
    gt = read_annotation(frame.gt)
    pred = read_prediction(frame.pred)
    if gt.shape != pred.shape:
        raise EvaluationInputError(
            f"{frame.pred}: prediction is {pred.shape[1]}x{pred.shape[0]} but the ground truth {frame.gt} is "
            f"{gt.shape[1]}x{gt.shape[0]}", frame.pred)
    return evaluate_frame(gt, pred, bound_th)


def _default_sequences(ann_root: Path, predictions: Path) -> list[str]:
    """Every sub-folder of the predictions; each must have ground truth."""
    seqs = sorted(p.name for p in predictions.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not seqs:
        raise EvaluationInputError(
            f"{predictions}: no sequence folders (expected {predictions}/<seq>/00000.png)", predictions)
    for s in seqs:
        if not (ann_root / s).is_dir():
            raise EvaluationInputError(
                f"{predictions / s}: no ground truth for this sequence at {ann_root / s}; "
                "choose the sequences with --sequences or --split", predictions / s)
    return seqs


def evaluate_folder(
    davis_root: str | os.PathLike,
    predictions: str | os.PathLike,
    sequences: Iterable[str] | None = None,
    *,
    resolution: str = DEFAULT_RESOLUTION,
    bound_th: float = DEFAULT_BOUND_TH,
    workers: int = 1,
) -> EvaluationResult:
    """Score a folder of predictions against a DAVIS root.

    ``sequences`` defaults to every sub-folder of ``predictions``. All files of all sequences are
    checked to exist before scoring starts, so a missing frame fails at once. Raises
    :class:`EvaluationInputError` naming the offending file.
    """
    ann_root = annotation_dir(davis_root, resolution)
    predictions = Path(predictions)
    if not predictions.is_dir():
        raise EvaluationInputError(f"{predictions}: predictions folder not found", predictions)
    if sequences is None:
        seqs = _default_sequences(ann_root, predictions)
    else:
        seqs = list(dict.fromkeys(sequences))
    if not seqs:
        raise EvaluationInputError("no sequence to evaluate")
    plans = {s: _plan_sequence(ann_root, predictions, s) for s in seqs}
    log.info("evaluating %d sequence(s), %d frames", len(plans), sum(len(p) for p in plans.values()))

    results = []
    for seq, frames in plans.items():
        gt_first = min((p for p in (ann_root / seq).iterdir() if p.suffix.lower() == ".png"),
                       key=lambda p: _natural_key(p.stem))
        if _is_multi_object([gt_first]):  # DAVIS-2017: J and F per object, then the mean over objects
            gts = _map(lambda fr: read_labels_png(fr.gt), frames, workers)
            preds = _map(lambda fr: read_prediction_labels(fr.pred), frames, workers)
            for fr, g, p in zip(frames, gts, preds, strict=True):
                if g is None or g.shape != p.shape:
                    raise EvaluationInputError(f"{fr.pred}: not a label image of the ground truth's size "
                                               f"({fr.gt})", fr.pred)
            res = evaluate_objects(gts, preds, name=seq, frames=[fr.name for fr in frames], bound_th=bound_th,
                                   skip_first_last=False, workers=workers)
        else:
            scores = _map(lambda fr: _score_file_pair(fr, bound_th), frames, workers)
            res = _result(seq, scores, [fr.name for fr in frames])
        log.info("%s: J %.3f  F %.3f  (%d frames)", seq, res.J.mean, res.F.mean, res.n_frames)
        results.append(res)
    return EvaluationResult(sequences=results, bound_th=bound_th, davis_root=str(davis_root),
                            predictions=str(predictions))
