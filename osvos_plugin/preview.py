"""Overlay previews: the plate with the matte tinted and outlined, as PNG frames and an MP4."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from pathlib import Path

import cv2
import numpy as np

log = logging.getLogger(__name__)


def overlay(rgb: np.ndarray, matte: np.ndarray, colour: tuple[float, float, float] = (1.0, 0.25, 0.2),
            opacity: float = 0.5) -> np.ndarray:
    """uint8 RGB: ``rgb`` (H, W, 3 in [0, 1]) tinted by ``matte`` (H, W in [0, 1]), with the matte's edge drawn."""
    a = np.clip(matte, 0.0, 1.0)[..., None] * opacity
    tint = np.asarray(colour, np.float32)
    out = (np.clip(rgb, 0.0, 1.0) * (1 - a) + tint * a) * 255
    out = out.round().astype(np.uint8)
    contours, _ = cv2.findContours((matte > 0.5).astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    cv2.drawContours(out, contours, -1, tuple(int(c * 255) for c in colour), 2)
    return out


def write_previews(items: Iterable[tuple[int, np.ndarray, np.ndarray]], out_dir: Path, name: str,
                   fps: float = 24.0) -> tuple[list[Path], Path | None]:
    """PNG overlays ``out_dir/name.####.png`` and, where OpenCV has an MP4 writer, ``out_dir/name.mp4``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    pngs: list[Path] = []
    video = None
    mp4 = out_dir / f"{name}.mp4"
    for frame, rgb, matte in items:
        img = overlay(rgb, matte)
        bgr = cv2.cvtColor(img, cv2.COLOR_RGB2BGR)
        path = out_dir / f"{name}.{frame:04d}.png"
        cv2.imwrite(str(path), bgr)
        pngs.append(path)
        if video is None:
            video = cv2.VideoWriter(str(mp4), cv2.VideoWriter_fourcc(*"mp4v"), fps, (bgr.shape[1], bgr.shape[0]))
            if not video.isOpened():
                log.info("no MP4 writer in this OpenCV build: PNG previews only")
                video = False
        if video:
            video.write(bgr)
    if video:
        video.release()
        return pngs, mp4
    mp4.unlink(missing_ok=True)
    return pngs, None
