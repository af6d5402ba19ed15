"""Shared fixtures: small real images, the DAVIS root when present, a tiny OSVOS checkpoint."""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
DEMO = REPO / "osvos_plugin" / "demo" / "bear"

torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))


@pytest.fixture(scope="session")
def davis_root() -> Path:
    """``$OSVOS_DAVIS_ROOT`` or ../shared/data/davis2016-train; the test is skipped without it."""
    from osvos_plugin.data.davis import default_davis_root

    root = default_davis_root()
    if not (root / "JPEGImages" / "480p").is_dir():
        pytest.skip(f"DAVIS-2016 train not found at {root} (set OSVOS_DAVIS_ROOT)")
    return root


def load_demo_pair(frame: int = 1001, long_side: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """A real frame of the bundled demo shot and its ground-truth mask, float in [0, 1]."""
    img = cv2.cvtColor(cv2.imread(str(DEMO / "plate" / f"bear.{frame}.jpg")), cv2.COLOR_BGR2RGB)
    mask = cv2.imread(str(DEMO / "truth" / f"bear.{frame}.png"), cv2.IMREAD_GRAYSCALE)
    if long_side:
        h, w = img.shape[:2]
        s = long_side / max(h, w)
        size = (round(w * s), round(h * s))
        img = cv2.resize(img, size, interpolation=cv2.INTER_AREA)
        mask = cv2.resize(mask, size, interpolation=cv2.INTER_AREA)
    return img.astype(np.float32) / 255, (mask > 127).astype(np.float32)


@pytest.fixture(scope="session")
def demo_pair():
    """``demo_pair(frame, long_side)``: a frame of the demo shot and its ground-truth mask."""
    return load_demo_pair


@pytest.fixture(scope="session")
def hed_state():
    from osvos_plugin.weights import read_hed_h5

    return read_hed_h5()


@pytest.fixture(scope="session")
def tiny_parent(tmp_path_factory, hed_state) -> Path:
    """An OSVOS checkpoint with the HED trunk and fresh heads: a real, if untrained, parent."""
    from osvos_plugin.network import OSVOSNet
    from osvos_plugin.weights import save_checkpoint, trunk_state

    torch.manual_seed(0)
    net = OSVOSNet("caffe_bgr")
    net.load_state_dict(trunk_state(hed_state), strict=False)
    path = tmp_path_factory.mktemp("models") / "parent.safetensors"
    save_checkpoint(net, path, provenance={"kind": "test"})
    return path
