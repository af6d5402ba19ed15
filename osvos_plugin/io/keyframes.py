"""The painted keyframes: each mask read with the plate frame it was painted on, for fine-tuning."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from .errors import MaskError, PlateError
from .masks import read_mask
from .plates import read_plate
from .sequence import format_frame_path


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
