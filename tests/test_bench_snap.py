"""The contour-head exploration (benchmarks/train_contours.py, bench_snap.py) on small synthetic inputs with
exact answers: the boundary labels it trains on, the head it loads over BSDS HED, and the render's snap it
replays from kept probabilities."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from osvos_plugin.network import HEDContourNet
from osvos_plugin.snapping import SnapConfig

ROOT = Path(__file__).resolve().parents[1]


spec = importlib.util.spec_from_file_location("bench_snap", ROOT / "benchmarks" / "bench_snap.py")
bench_snap = importlib.util.module_from_spec(spec)
sys.modules[spec.name] = bench_snap
spec.loader.exec_module(bench_snap)
train_contours = bench_snap.train_contours  # loaded beside it


def test_boundaries_are_the_pixels_next_to_a_change_of_label():
    mask = np.zeros((12, 16), np.float32)
    mask[3:9, 4:11] = 0.8  # soft: object where > 0.5
    mask[5, 7] = 0.3  # a one-pixel hole
    got = train_contours.boundaries(torch.from_numpy(mask)[None, None])[0, 0].numpy()
    obj = np.pad(mask > 0.5, 1, mode="edge")
    want = np.zeros_like(got)
    for y in range(12):
        for x in range(16):
            window = obj[y:y + 3, x:x + 3]
            want[y, x] = float(window.any() and not window.all())
    assert np.array_equal(got, want)
    assert got[5, 7] == 1 and got[0, 0] == 0 and got[6, 9] == 0


def test_only_the_last_stages_and_the_head_train():
    net = HEDContourNet()
    names = train_contours.trainable(net, 1)
    assert names and all(n.startswith(("stages.4.", "dsn.", "fuse.")) for n in names)
    assert {n.split(".")[0] for n in names} == {"stages", "dsn", "fuse"}
    assert all(n.startswith(("dsn.", "fuse.")) for n in train_contours.trainable(net, 0))


def test_a_trained_head_loads_over_bsds_hed_and_a_foreign_file_is_refused(tmp_path):
    weight = torch.full((1, 5, 1, 1), 0.25)
    save_file({"fuse.weight": weight}, str(tmp_path / "head.safetensors"))
    net = train_contours.load_contour_net(tmp_path / "head.safetensors")
    bsds = train_contours.load_contour_net(None)
    assert torch.equal(net.fuse.weight, weight) and not torch.equal(bsds.fuse.weight, weight)
    assert torch.equal(net.dsn[0].weight, bsds.dsn[0].weight)  # the rest is BSDS HED's
    save_file({"head.weight": weight}, str(tmp_path / "other.safetensors"))
    with pytest.raises(ValueError, match="other.safetensors: not a contour head"):
        train_contours.load_contour_net(tmp_path / "other.safetensors")


def test_the_replayed_snap_puts_a_shifted_edge_on_the_contour():
    """A plate with a sharp square, its contour map at half the plate's size (as at the processing size), and
    a probability whose edge is 2 plate pixels off: the snap brings the matte onto the square exactly."""
    size, lo, hi = 96, 30, 70
    yy, xx = np.mgrid[0:size, 0:size]
    truth = (xx >= lo) & (xx < hi) & (yy >= lo) & (yy < hi)
    frame = np.dstack([40 + 160 * truth, 60 + 120 * truth, 90 + 60 * truth]).astype(np.uint8)
    edge = cv2.morphologyEx(truth.astype(np.uint8), cv2.MORPH_GRADIENT, np.ones((3, 3), np.uint8))
    contours = cv2.resize(edge.astype(np.float32), (size // 2, size // 2), interpolation=cv2.INTER_AREA)
    contours /= contours.max()
    shifted = (xx >= lo + 2) & (xx < hi + 2) & (yy >= lo) & (yy < hi)
    prob = np.where(shifted, 0.9, 0.1).astype(np.float32)
    out = bench_snap.snapped(prob, contours, frame, 0.75, SnapConfig(level=0.15, spacing=2.5, band=3.5))
    assert ((prob > 0.75) != truth).sum() == 2 * 2 * (hi - lo)
    assert ((out > 0.75) != truth).sum() <= 4  # the watershed's corners at most


def test_keep_spares_what_the_network_is_sure_of():
    """A one-pixel-wide line the contours do not outline: the vote removes it, unless it is sure enough."""
    size = 48
    frame = np.full((size, size, 3), 90, np.uint8)
    prob = np.full((size, size), 0.1, np.float32)
    prob[:, 20] = 0.99  # the line
    prob[10:30, 30:40] = 0.8  # a block: the vote keeps most of it
    contours = np.zeros((size, size), np.float32)
    cfg = SnapConfig(level=0.15, spacing=2.5, band=3.5)
    plain = bench_snap.snapped(prob, contours, frame, 0.75, cfg)
    assert not (plain[:, 20] > 0.75).any()  # one region of one colour: the line is outvoted
    kept = bench_snap.snapped(prob, contours, frame, 0.75, cfg, keep=0.95)
    assert (kept[:, 20] > 0.75).all()
    assert np.array_equal(kept[prob < 0.95], plain[prob < 0.95])


def test_a_head_of_the_wrong_shape_is_refused(tmp_path):
    save_file({"fuse.weight": torch.zeros(1, 4, 1, 1)}, str(tmp_path / "small.safetensors"))
    with pytest.raises(ValueError, match="small.safetensors: not a contour head.*fuse.weight"):
        train_contours.load_contour_net(tmp_path / "small.safetensors")
