"""The follow rule of benchmarks/bench_follow.py, on a small synthetic shot with an exact ground truth."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("bench_follow", ROOT / "benchmarks" / "bench_follow.py")
bench = importlib.util.module_from_spec(spec)
sys.modules[spec.name] = bench
spec.loader.exec_module(bench)


def _square(y: int, x: int, side: int = 10, shape=(120, 160)) -> np.ndarray:
    out = np.zeros(shape, np.uint8)
    out[y:y + side, x:x + side] = 1
    return out


def _shot():
    """An object that moves 3 px a frame, hides on frames 6-8, and comes back about 35 px away; a look-alike
    blob far from it on frames 2-5. Returns (probabilities, the object's true masks)."""
    truth, probs = [], []
    for t in range(12):
        obj = _square(20, 10 + 3 * t) if t < 6 else (np.zeros((120, 160), np.uint8) if t < 9 else _square(50, 60))
        distractor = _square(90, 130) if 2 <= t < 6 else np.zeros_like(obj)
        truth.append(obj)
        probs.append(np.where(obj | distractor, 0.9, 0.1).astype(np.float32))
    return probs, truth


def test_follow_drops_the_far_look_alike_and_finds_the_object_again():
    probs, truth = _shot()
    mattes = bench.follow(probs, truth[0], threshold=0.75, margin=1.0)
    for t, (matte, obj) in enumerate(zip(mattes, truth, strict=True)):
        assert np.array_equal(matte, obj), f"frame {t}"


def test_without_the_growing_search_a_returning_object_stays_lost():
    probs, truth = _shot()
    mattes = bench.follow(probs, truth[0], threshold=0.75, margin=1.0, grow=False)
    assert np.array_equal(mattes[5], truth[5])  # the look-alike is still dropped
    assert not mattes[10].any()  # but the object that came back elsewhere is not found


def test_pixels_mode_cuts_a_part_that_reaches_beyond_the_region():
    painted = _square(50, 50)
    # one connected bar from the object out to 100 px away: components keep all of it, pixels cut it
    bar = painted.copy()
    bar[52:56, 50:160] = 1
    prob = np.where(bar, 0.9, 0.1).astype(np.float32)
    kept = bench.follow([prob], painted, 0.75, margin=1.0, mode="components")[0]
    cut = bench.follow([prob], painted, 0.75, margin=1.0, mode="pixels")[0]
    assert np.array_equal(kept, bar)
    assert cut.sum() < bar.sum() and cut[:, 100:].sum() == 0 and np.array_equal(cut & painted, painted)


def test_mode_is_checked():
    with pytest.raises(ValueError, match="mode"):
        bench.follow([np.zeros((4, 4), np.float32)], np.ones((4, 4)), 0.5, 1.0, mode="blobs")


def test_recover_keeps_an_object_that_outgrows_a_kept_speck():
    """The soccerball case: the object jumps beyond the search radius while a speck stays near its old
    place. Without recover the speck is followed for the rest of the shot; with it the object is kept."""
    speck = _square(20, 12, side=2)
    painted = _square(20, 10)
    probs = [np.where(painted, 0.9, 0.1).astype(np.float32)]
    truth = [painted]
    for t in range(1, 6):
        obj = _square(70, 60 + 3 * t)
        truth.append(obj)
        probs.append(np.where(obj | speck, 0.9, 0.1).astype(np.float32))
    lost = bench.follow(probs, painted, 0.75, margin=1.0)
    found = bench.follow(probs, painted, 0.75, margin=1.0, recover=3.0)
    assert all(np.array_equal(m, speck) for m in lost[1:])
    assert all(np.array_equal(m, obj | speck) for m, obj in zip(found[1:], truth[1:], strict=True))


class _Refit(Exception):
    """Raised by the stand-in parent loader: the bench went on to fine-tune."""


def _no_parent():
    raise _Refit


def test_cached_probabilities_are_reused_only_for_the_same_parent_and_settings(tmp_path):
    from osvos_plugin.data.davis import DavisSequence
    from osvos_plugin.settings import RenderSettings

    parent = tmp_path / "parent.safetensors"
    parent.write_bytes(b"one parent")
    settings = RenderSettings.resolve({})
    key = bench.cache_key(parent, settings)
    seq = DavisSequence("shot", np.zeros((2, 8, 8, 3), np.uint8), np.zeros((2, 8, 8), np.uint8), ["0", "1"])
    kept = np.full((2, 8, 8), 0.25, np.float16)
    np.savez_compressed(tmp_path / "shot.npz", prob=kept, key=np.array(key))
    assert np.array_equal(bench.probabilities(_no_parent, seq, settings, tmp_path, key), kept)
    # another parent, other settings, or a file without a key: fine-tuned again, not reused
    parent.write_bytes(b"another parent")
    other = bench.cache_key(parent, settings)
    more_steps = bench.cache_key(parent, RenderSettings.resolve({"iterations": settings.iterations + 1}))
    assert len({key, other, more_steps}) == 3
    for stale in (other, more_steps):
        with pytest.raises(_Refit):
            bench.probabilities(_no_parent, seq, settings, tmp_path, stale)
    np.savez_compressed(tmp_path / "shot.npz", prob=kept)
    with pytest.raises(_Refit):
        bench.probabilities(_no_parent, seq, settings, tmp_path, key)


def test_table_counts_wins_against_the_plain_matte():
    rows = [{"variant": v, "sequence": s, "J": j, "F": f} for v, s, j, f in [
        ("plain", "a", 0.5, 0.7), ("plain", "b", 0.8, 0.8),
        ("x", "a", 0.6, 0.7), ("x", "b", 0.8, 0.8004)]]  # a: +0.05; b: +0.0002, a tie
    lines = bench.table(rows, ["plain", "x"], ["a", "b"]).strip().splitlines()
    assert lines[2] == "| plain | 0.650 | 0.750 | 0.700 | 0/2 | 0.600 | 0.800 |"
    assert lines[3] == "| x | 0.700 | 0.750 | 0.725 | 1/2 | 0.650 | 0.800 |"
