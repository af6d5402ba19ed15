"""The painted keyframes: each mask read with the plate frame it was painted on, for fine-tuning."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from .errors import MaskError, PlateError
from .masks import read_labels, read_mask
from .plates import read_plate
from .sequence import format_frame_path

log = logging.getLogger(__name__)


def load_keyframes(
    source: str | os.PathLike,
    keyframes: list[tuple[str | os.PathLike, int]],
    frames: Mapping[int, Path],
    colorspace: str,
    resize_mask: bool = False,
) -> list[tuple[np.ndarray, np.ndarray]]:
    """(rgb, mask) pairs for fine-tuning from (mask, frame) pairs, every problem reported in one message.

    ``frames``: the plate files already resolved; a keyframe outside them is looked up with ``source``."""
    if not keyframes:
        raise MaskError("no mask given: paint the object on one frame and pass it with --mask.")
    problems, pairs = [], []
    for mask_path, number in keyframes:
        path = frames.get(number) or format_frame_path(source, number)
        try:
            plate = read_plate(path, frame=number, colorspace=colorspace)
            mask = read_mask(mask_path, expected_size=(plate.info.width, plate.info.height), resize=resize_mask)
        except (PlateError, MaskError) as e:
            problems.append(str(e))
            continue
        pairs.append((plate.rgb, mask))
    if problems:
        raise MaskError("\n".join(problems))
    return pairs


def object_names(keyframes: list[tuple[str | os.PathLike, int, str | None]]) -> list[str]:
    """The objects of (mask, frame, object name) keyframes, in order: named ones as named, a palette PNG's
    as ``obj<index>``; one unnamed grey/alpha mask is a single object (``[]``: today's one-object render)."""
    names: list[str] = []
    plain = False  # an unnamed mask that is not a palette
    for mask, _, name in keyframes:
        if name is not None:
            found = [name]
        else:
            labels = read_labels(mask)
            plain = plain or labels is None
            indices = [] if labels is None else sorted(set(np.unique(labels).tolist()) - {0})
            if indices and indices != list(range(1, len(indices) + 1)):
                log.warning("label mask %s: indices %s are painted, %s unused; the objects are named after their "
                            "index (%s)", mask, indices, sorted(set(range(1, indices[-1] + 1)) - set(indices)),
                            ", ".join(f"obj{i}" for i in indices))
            found = [f"obj{i}" for i in indices]
        names += [n for n in found if n not in names]
    if names and plain:
        raise MaskError("a grey or alpha mask without an object name beside named objects or a palette (label) "
                        "PNG: give each object's mask with --object NAME MASK, or paint all objects in one "
                        "palette PNG.")
    return names


def painted_share(masks: list[str | os.PathLike]) -> float | None:
    """The share of the frame the smallest object painted in ``masks`` covers (a palette PNG: each of its
    objects; any other mask: its pixels at 0.5 or more). None when a mask cannot be read: loading the
    keyframes reports why."""
    shares = []
    for mask in masks:
        try:
            labels = read_labels(mask)
            if labels is not None:
                shares += [float(np.mean(labels == i)) for i in set(np.unique(labels).tolist()) - {0}]
            else:
                shares.append(float(np.mean(read_mask(mask) >= 0.5)))
        except MaskError:
            return None
    return min(shares, default=None)


def load_object_keyframes(
    source: str | os.PathLike,
    keyframes: list[tuple[str | os.PathLike, int, str | None]],
    names: list[str],
    frames: Mapping[int, Path],
    colorspace: str,
    resize_mask: bool = False,
    overlap: bool = False,
) -> list[tuple[np.ndarray, np.ndarray]]:
    """(rgb, masks (K, H, W)) per painted frame, for ``names`` (see ``object_names``): an object not painted
    on a frame is all zero there. Objects painted over each other are refused unless ``overlap``. Every
    problem in one message."""
    problems: list[str] = []
    per_frame: dict[int, tuple[np.ndarray, dict[str, np.ndarray]]] = {}
    for mask_path, number, name in keyframes:
        path = frames.get(number) or format_frame_path(source, number)
        try:
            if number not in per_frame:
                per_frame[number] = (read_plate(path, frame=number, colorspace=colorspace).rgb, {})
            rgb, painted = per_frame[number]
            size = (rgb.shape[1], rgb.shape[0])
            labels = read_labels(mask_path) if name is None else None
            if labels is not None:
                if (labels.shape[1], labels.shape[0]) != size:
                    raise MaskError(f"label mask {mask_path} is {labels.shape[1]}x{labels.shape[0]} but the plate "
                                    f"is {size[0]}x{size[1]}; paint it on the plate frame at its size.")
                found = {f"obj{i}": (labels == i).astype(np.float32) for i in set(np.unique(labels).tolist()) - {0}}
            else:
                found = {name: read_mask(mask_path, expected_size=size, resize=resize_mask)}
            for obj, m in found.items():
                if obj in painted:
                    raise MaskError(f"object {obj} is painted twice on frame {number}; give one mask per object "
                                    "and frame.")
                painted[obj] = m
        except (PlateError, MaskError) as e:
            problems.append(str(e))
    if not overlap:
        for number, (_, painted) in sorted(per_frame.items()):
            objs = [n for n in names if n in painted]
            for a, first in enumerate(objs):
                for second in objs[a + 1:]:
                    shared = int(np.count_nonzero((painted[first] > 0.5) & (painted[second] > 0.5)))
                    if shared:
                        problems.append(f"objects {first} and {second} are both painted on {shared} pixel(s) of "
                                        f"frame {number}: paint each pixel for one object, or switch on Objects "
                                        "Overlap (--object-overlap) when a pixel may belong to both.")
    if problems:
        raise MaskError("\n".join(problems))
    out = []
    for number in sorted(per_frame):
        rgb, painted = per_frame[number]
        zero = np.zeros(rgb.shape[:2], np.float32)
        out.append((rgb, np.stack([painted.get(n, zero) for n in names])))
    return out

