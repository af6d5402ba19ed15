"""The artist's-loop bench (benchmarks/bench_loop.py): its scoring by hand-worked cases, and one tiny run."""

from __future__ import annotations

import importlib.util
import math
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("bench_loop", ROOT / "benchmarks" / "bench_loop.py")
loop = importlib.util.module_from_spec(spec)
sys.modules["bench_loop"] = loop
spec.loader.exec_module(loop)


def test_flag_precision_and_recall_against_the_frames_that_score_badly():
    scores = {1: 0.9, 2: 0.3, 3: 0.1, 4: 0.8, 5: 0.45}
    got = loop.flag_scores({2, 3, 4}, scores)
    assert (got["bad"], got["hit"]) == (3, 2)  # frames 2, 3, 5 under 0.5; 2 and 3 flagged
    assert got["precision"] == pytest.approx(2 / 3) and got["recall"] == pytest.approx(2 / 3)
    nothing = loop.flag_scores(set(), {1: 0.9})
    assert math.isnan(nothing["precision"]) and math.isnan(nothing["recall"])


def test_confidence_floor_empties_unsure_frames_and_scores_hidden_and_visible_apart():
    gt_hidden, gt_seen = np.zeros((4, 4), bool), np.zeros((4, 4), bool)
    gt_seen[:2] = True
    pred_bad = np.zeros((4, 4), bool)
    pred_bad[2:] = True  # grass where the object is hidden
    rows = loop.floor_effect([gt_hidden, gt_seen], [pred_bad, gt_seen.copy()], [0.25, 0.9], floors=(0.3, 0.95))
    assert [r["emptied"] for r in rows] == [0, 1, 2]
    assert [r["J_hidden"] for r in rows] == [0.0, 1.0, 1.0]  # emptied: two empty masks agree
    assert [r["J_visible"] for r in rows] == [1.0, 1.0, 0.0]  # too high a floor empties a good matte
    prob = np.array([[0.0, 0.5], [1.0, 0.75]], np.float32)
    assert loop.confidence(prob) == pytest.approx((0.0 + 1.0 + 0.5) / 3)
    assert loop.confidence(np.zeros((2, 2), np.float32)) == 1.0


def _square(root: Path) -> None:
    """A five-frame DAVIS-layout shot: a red box moving right on grey."""
    seq = root / "JPEGImages/480p/square"
    ann = root / "Annotations/480p/square"
    seq.mkdir(parents=True)
    ann.mkdir(parents=True)
    for i in range(5):
        img = np.full((36, 64, 3), 90, np.uint8)
        mask = np.zeros((36, 64), np.uint8)
        mask[8:24, 10 + 4 * i:30 + 4 * i] = 255
        img[mask > 0] = (30, 30, 220)
        cv2.imwrite(str(seq / f"{i:05d}.jpg"), img)
        cv2.imwrite(str(ann / f"{i:05d}.png"), mask)


@pytest.mark.slow
def test_one_tiny_sequence_runs_the_whole_loop(tmp_path):
    from osvos_plugin.network import OSVOSNet
    from osvos_plugin.settings import RenderSettings

    _square(tmp_path)
    settings = RenderSettings.resolve({"iterations": 2, "continue_iterations": 1, "process_size": 64,
                                       "device": "cpu", "precision": "fp32", "flip_average": False})
    out = loop.run_sequence(OSVOSNet(), tmp_path, "square", settings)
    assert out["frames"] == 5 and 1 <= out["worst_frame"] <= 3
    assert 0.0 <= out["J_first"] <= 1.0 and 0.0 <= out["J_continued"] <= 1.0 and 0.0 <= out["J_full"] <= 1.0
    assert out["continue_s"] > 0 and out["full_s"] > 0
    assert [r["floor"] for r in out["confidence_floor"]] == [0.0, *loop.FLOORS]


def test_the_loop_fine_tunes_with_the_fields_asked_and_can_leave_out_the_full_fine_tune(tmp_path, monkeypatch):
    """``--finetune`` reaches every fine-tune of the loop (the first and the correction, which runs Continue
    Iterations), ``--continue-finetune`` the correction alone, over it; ``--no-full`` leaves the full fine-tune
    out and says so with NaN."""
    from osvos_plugin.network import OSVOSNet
    from osvos_plugin.settings import RenderSettings

    _square(tmp_path)
    seen = []
    real = loop.finetune

    def recording(parent, keyframes, cfg, **kw):
        seen.append((len(keyframes), cfg.iterations, cfg.small_object_lr, cfg.augment.move))
        return real(parent, keyframes, cfg, **kw)

    monkeypatch.setattr(loop, "finetune", recording)
    settings = RenderSettings.resolve({"iterations": 2, "continue_iterations": 1, "process_size": 64,
                                       "device": "cpu", "precision": "fp32", "flip_average": False})
    overrides = loop.finetune_overrides("small_object_lr=0.25,augment.move=0.5")
    out = loop.run_sequence(OSVOSNet(), tmp_path, "square", settings, overrides, full=False,
                            continue_overrides=loop.finetune_overrides("small_object_lr=1.0"))
    assert seen == [(1, 2, 0.25, 0.5), (2, 1, 1.0, 0.5)]  # the correction's own rate, the move kept
    assert math.isnan(out["J_full"]) and math.isnan(out["full_s"]) and 0.0 <= out["J_continued"] <= 1.0
