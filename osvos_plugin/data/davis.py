"""Reading a DAVIS-layout root (``JPEGImages/480p/<seq>/*.jpg``, ``Annotations/480p/<seq>/*.png``)."""

from __future__ import annotations

import logging
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from ..imaging import fit_long_side

log = logging.getLogger(__name__)

DEFAULT_RESOLUTION = "480p"


@dataclass
class DavisSequence:
    """One sequence held in memory as uint8 (RGB frames (N, H, W, 3), masks (N, H, W) in {0, 255})."""

    name: str
    frames: np.ndarray
    masks: np.ndarray
    frame_names: list[str]


def default_davis_root() -> Path:
    """``$OSVOS_DAVIS_ROOT``, else ``../shared/data/davis2016-train`` beside the checkout."""
    env = os.environ.get("OSVOS_DAVIS_ROOT")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[3] / "shared" / "data" / "davis2016-train"


def list_sequences(root: str | os.PathLike, resolution: str = DEFAULT_RESOLUTION) -> list[str]:
    """Sequence names that have both frames and annotations, sorted."""
    root = Path(root)
    img_dir = root / "JPEGImages" / resolution
    ann_dir = root / "Annotations" / resolution
    if not img_dir.is_dir() or not ann_dir.is_dir():
        raise FileNotFoundError(
            f"{root}: not a DAVIS root (needs JPEGImages/{resolution} and Annotations/{resolution})"
        )
    return sorted(p.name for p in img_dir.iterdir() if (ann_dir / p.name).is_dir())


def _read_pair(img_path: Path, ann_path: Path, size: tuple[int, int] | None) -> tuple[np.ndarray, np.ndarray]:
    img = cv2.imread(str(img_path), cv2.IMREAD_COLOR)
    ann = cv2.imread(str(ann_path), cv2.IMREAD_GRAYSCALE)
    if img is None or ann is None:
        raise OSError(f"cannot read {img_path if img is None else ann_path}")
    img = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
    if size is not None and (img.shape[1], img.shape[0]) != size:
        img = cv2.resize(img, size, interpolation=cv2.INTER_AREA)
        ann = cv2.resize(ann, size, interpolation=cv2.INTER_AREA)
    return img, np.where(ann > 127, 255, 0).astype(np.uint8) if size is None else ann


def load_sequence(
    root: str | os.PathLike,
    name: str,
    long_side: int | None = None,
    resolution: str = DEFAULT_RESOLUTION,
    threads: int = 4,
) -> DavisSequence:
    """Load a sequence, optionally resized so the long side is ``long_side`` (masks then soft at edges)."""
    root = Path(root)
    img_dir = root / "JPEGImages" / resolution / name
    ann_dir = root / "Annotations" / resolution / name
    names = sorted(p.stem for p in img_dir.glob("*.jpg"))
    if not names:
        raise FileNotFoundError(f"{img_dir}: no frames")
    missing = [n for n in names if not (ann_dir / f"{n}.png").is_file()]
    if missing:
        raise FileNotFoundError(f"{ann_dir}: no annotation for frames {missing[:5]}")
    first = cv2.imread(str(img_dir / f"{names[0]}.jpg"))
    h, w = first.shape[:2]
    size = None
    if long_side:
        h, w = fit_long_side(h, w, long_side)
        size = (w, h)
    with ThreadPoolExecutor(threads) as pool:
        pairs = list(pool.map(lambda n: _read_pair(img_dir / f"{n}.jpg", ann_dir / f"{n}.png", size), names))
    frames = np.stack([p[0] for p in pairs])
    masks = np.stack([p[1] for p in pairs])
    return DavisSequence(name, frames, masks, names)
