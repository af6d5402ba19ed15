"""The scale rules of benchmarks/bench_scales.py, on small synthetic probabilities with an exact answer."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("bench_scales", ROOT / "benchmarks" / "bench_scales.py")
bench = importlib.util.module_from_spec(spec)
sys.modules[spec.name] = bench
spec.loader.exec_module(bench)


def _box(y0: int, y1: int, x0: int, x1: int, shape=(100, 100)) -> np.ndarray:
    out = np.full(shape, 0.1, np.float32)
    out[y0:y1, x0:x1] = 0.9
    return out


def test_grown_takes_the_other_scale_only_where_its_object_is_much_larger():
    part = _box(40, 60, 40, 60)  # the processing size sees a shrinking part of a grown object
    whole = _box(10, 90, 10, 90)  # the smaller scale sees all of it
    assert np.array_equal(bench.combine(part, whole, "grown", 0.75, 1.5), whole)
    same = _box(38, 62, 38, 62)  # about as large: the processing size's is kept
    assert np.array_equal(bench.combine(part, same, "grown", 0.75, 1.5), part)


def test_mean_and_max():
    a, b = _box(0, 50, 0, 100), _box(50, 100, 0, 100)
    assert np.allclose(bench.combine(a, b, "mean", 0.75, 1.5), 0.5)
    assert np.allclose(bench.combine(a, b, "max", 0.75, 1.5), 0.9)
    with pytest.raises(ValueError, match="unknown combination"):
        bench.combine(a, b, "median", 0.75, 1.5)


def test_extent_rule_picks_the_largest_scale_at_which_the_object_fits():
    # frame 0: a small object (box side 0.2 of the frame): scale 1 fits under 0.5;
    # frame 1: the object spans 0.8 of the frame: 0.5 x 0.8 = 0.4 fits, 0.7 x 0.8 = 0.56 does not;
    # frame 2: it fills the frame: even 0.5 does not fit, so the smallest scale is used
    small, large, full = _box(40, 60, 40, 60), _box(10, 90, 10, 90), _box(0, 100, 0, 100)
    probs = {1.0: np.stack([small, large, full])}
    for s in (0.7, 0.5):
        probs[s] = probs[1.0] * s  # marks which scale a frame came from
    picked = [bench.by_extent(probs, i, 0.75, 0.5) for i in range(3)]
    assert np.array_equal(picked[0], probs[1.0][0])
    assert np.array_equal(picked[1], probs[0.5][1])
    assert np.array_equal(picked[2], probs[0.5][2])
    # a looser limit keeps the larger object at 0.7 (0.7 x 0.8 = 0.56 <= 0.6)
    assert np.array_equal(bench.by_extent(probs, 1, 0.75, 0.6), probs[0.7][1])


def test_part_outline_is_not_stretched_by_a_far_false_positive():
    # the object (side 0.2 of the frame) and a speck in the far corner: the whole matte's box spans the
    # frame, the largest part's is the object's, so only the box outline sends the frame to a smaller scale
    prob = _box(40, 60, 40, 60)
    prob[95:99, 95:99] = 0.9
    probs = {1.0: prob[None], 0.5: prob[None] * 0.5}
    assert bench.scale_for(probs, 0, 0.75, 0.5, "part") == 1.0
    assert bench.scale_for(probs, 0, 0.75, 0.5, "box") == 0.5


def test_much_larger_counts_the_mattes_pixels():
    # 20x20 = 400 pixels against 30x30 = 900: over 1.5 times, not over 2.5 times; an empty base counts as 1
    small, large = _box(40, 60, 40, 60), _box(35, 65, 35, 65)
    assert bench.much_larger(small, large, 0.75, 1.5)
    assert not bench.much_larger(small, large, 0.75, 2.5)
    assert not bench.much_larger(large, small, 0.75, 1.5)
    assert bench.much_larger(np.zeros((100, 100), np.float32), small, 0.75, 1.5)
