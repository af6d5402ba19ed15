"""The fold-validation bench (benchmarks/bench_folds.py) and the GPU data kit: their pure parts."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]


def _load(rel: str):
    spec = importlib.util.spec_from_file_location(Path(rel).stem, ROOT / rel)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    return mod


folds = _load("benchmarks/bench_folds.py")


def test_parse_variants_reads_plugin_names_and_json_values():
    assert folds.parse_variants("base;ps:process_size=854,flip_average=false; t:optimizer=sgd") == [
        ("base", {}), ("ps", {"process_size": 854, "flip_average": False}), ("t", {"optimizer": "sgd"})]


def test_pick_threshold_finds_the_cut_that_reproduces_the_mask():
    rng = np.random.default_rng(0)
    mask = np.zeros((40, 40), bool)
    mask[10:30, 10:30] = True
    # object pixels at 0.65-0.95, background at 0.05-0.6: only a cut in (0.6, 0.65) is exact
    prob = np.where(mask, rng.uniform(0.65, 0.95, mask.shape), rng.uniform(0.05, 0.6, mask.shape))
    assert folds.pick_threshold([prob], [mask]) == pytest.approx(0.6)


def test_calibration_views_move_the_mask_with_the_frame():
    h, w = 90, 160
    rgb = np.zeros((h, w, 3), np.float32)
    mask = np.zeros((h, w), np.float32)
    rgb[30:60, 40:80] = 1.0
    mask[30:60, 40:80] = 1.0
    views = folds.calibration_views(rgb, mask)
    assert len(views) == 3
    for img, m in views:
        assert img.shape == rgb.shape and m.shape == mask.shape and m.dtype == bool
        # the painted square is white in every view: the mask covers the white pixels and little else
        white = img[..., 0] > 0.5
        iou = (white & m).sum() / (white | m).sum()
        assert iou > 0.9
    areas = [m.sum() for _, m in views]
    assert areas[0] < mask.sum() * 0.45  # shrunk to 0.6: 0.36 of the area
    assert areas[1] > mask.sum() * 2.2  # zoomed 1.6x: 2.56 times the area


def _row(variant, fold, seq, jf):
    return {"variant": variant, "fold": fold, "sequence": seq, "finetune_s": 1.0, "infer_s_per_frame": 0.1,
            "calib_threshold": 0.8, "scores": {"0.75": {"J": jf, "F": jf}, "calib": {"J": jf, "F": jf}}}


def test_summary_counts_wins_per_fold_against_the_first_variant():
    rows = [_row("base", "a", "s1", 0.5), _row("base", "a", "s2", 0.5), _row("base", "b", "s3", 0.5),
            _row("new", "a", "s1", 0.6), _row("new", "a", "s2", 0.4), _row("new", "b", "s3", 0.7),
            {"variant": "new", "fold": "b", "sequence": "s4", "error": "boom"}]
    text = folds.summarise(rows)
    new = next(line for line in text.splitlines() if line.startswith("| new | 0.75 |"))
    assert "0.500 / 0.500 / 0.500 (2) | 1/2" in new  # fold a: one win, one loss
    assert "0.700 / 0.700 / 0.700 (1) | 1/1" in new


def test_pack_and_unpack_give_back_a_davis_root(tmp_path):
    pack = _load("benchmarks/gpu/pack_davis.py")
    unpack = _load("benchmarks/gpu/unpack_davis.py")
    from osvos_plugin.data.davis import load_sequence

    src = tmp_path / "src"
    for seq, n in (("car-turn", 9), ("bear", 7)):  # a fold sequence and an always-trained one
        (src / "JPEGImages/480p" / seq).mkdir(parents=True)
        (src / "Annotations/480p" / seq).mkdir(parents=True)
        for i in range(n):
            img = np.full((480, 854, 3), 40 + 10 * i, np.uint8)
            ann = np.zeros((480, 854), np.uint8)
            ann[100:300, 200 + 10 * i:500] = 255
            cv2.imwrite(str(src / "JPEGImages/480p" / seq / f"{i:05d}.jpg"), img)
            cv2.imwrite(str(src / "Annotations/480p" / seq / f"{i:05d}.png"), ann)
    assert pack.pack_davis(src, tmp_path / "packed") == 3 + 3  # every 4th of 9, every 3rd of 7
    assert unpack.unpack(tmp_path / "packed", tmp_path / "root") == 6
    car = load_sequence(tmp_path / "root", "car-turn")
    assert car.frames.shape == (3, 480, 854, 3) and car.frame_names == ["00000", "00004", "00008"]
    assert np.array_equal(car.masks[1] > 127, cv2.imread(str(src / "Annotations/480p/car-turn/00004.png"), 0) > 127)
    bear = load_sequence(tmp_path / "root", "bear")
    assert bear.frames.shape == (3, 270, 480, 3)
    assert abs(int(bear.frames[1].mean()) - 70) <= 2  # frame 3's grey level survives WebP and JPEG
