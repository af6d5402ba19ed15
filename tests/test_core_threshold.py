"""Core Threshold (hysteresis): a region above the Threshold is kept only if it is sure somewhere, on
synthetic probabilities and a small synthetic shot whose mattes are known exactly."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from osvos_plugin.inference import InferenceConfig, Segmenter, hold_cores
from osvos_plugin.weights import load_checkpoint


def _two_blobs() -> np.ndarray:
    """A sure object (1.0 inside a 0.6 rim), an unsure look-alike (0.7) and a faint haze (0.3)."""
    prob = np.full((40, 60), 0.3, np.float32)
    prob[5:25, 5:25] = 0.6
    prob[9:21, 9:21] = 1.0
    prob[10:30, 35:55] = 0.7
    prob[0:3, :] = 0.0
    return prob


def test_hysteresis_keeps_the_sure_region_whole_and_drops_the_unsure_one():
    prob = _two_blobs()
    held = hold_cores(prob, threshold=0.5, core=0.9)
    assert np.array_equal(held[5:25, 5:25], prob[5:25, 5:25])  # the sure object, rim included
    assert (held[10:30, 35:55] == 0).all()  # the look-alike never reaches 0.9
    rest = np.ones_like(prob, bool)
    rest[10:30, 35:55] = False
    assert np.array_equal(held[rest], prob[rest])  # nothing else changes, haze included
    assert held.dtype == prob.dtype


def test_hysteresis_is_off_at_or_below_the_threshold_and_joins_diagonal_neighbours():
    prob = _two_blobs()
    assert hold_cores(prob, 0.5, 0.5) is prob and hold_cores(prob, 0.5, 0.0) is prob
    assert np.array_equal(hold_cores(prob, 0.5, 0.65), prob)  # both regions pass 0.65 somewhere
    diagonal = np.zeros((5, 5), np.float32)
    diagonal[1, 1], diagonal[2, 2] = 1.0, 0.6  # touching at a corner: one region
    assert np.array_equal(hold_cores(diagonal, 0.5, 0.9), diagonal)
    assert not hold_cores(np.zeros((4, 4), np.float32), 0.5, 0.9).any()


@pytest.mark.parametrize("params, kept", [
    ({"threshold": 0.5, "core_threshold": 0.0}, {"sure", "unsure"}),  # a low threshold alone keeps the look-alike
    ({}, {"sure-core"}),  # the defaults, 0.65 with a core of 0.95: the rim (0.6) and the look-alike are out
    ({"threshold": 0.5, "core_threshold": 0.9}, {"sure"}),
    ({"threshold": 0.5, "core_threshold": 0.9, "edge_softness": 4.0}, {"sure"}),  # the edge ramp follows
    ({"threshold": 0.65, "core_threshold": 0.9}, {"sure-core"}),  # the rim (0.6) is below the threshold
])
def test_a_render_keeps_only_regions_sure_in_their_core(tmp_path, tiny_parent, monkeypatch, params, kept):
    """End to end: plugin.json's Threshold and Core Threshold through a render to the matte on disk. The
    network's answer is replaced by a known one (the plate's red channel), so the matte is known exactly."""
    from osvos_plugin.io import read_mask
    from osvos_plugin.pipeline import Keyframe, RenderJob, render

    regions = {"sure": (slice(6, 26), slice(6, 26)), "sure-core": (slice(10, 22), slice(10, 22)),
               "unsure": (slice(12, 32), slice(38, 58))}
    red = np.zeros((48, 64), np.uint8)
    red[regions["sure"]] = 153  # 0.6: the object's rim
    red[regions["sure-core"]] = 255  # 1.0: its core
    red[regions["unsure"]] = 178  # 0.7: a look-alike the network is unsure of
    (tmp_path / "in").mkdir()
    for f in (1, 2):
        cv2.imwrite(str(tmp_path / "in" / f"p.{f}.png"), np.dstack([np.zeros_like(red)] * 2 + [red]))  # BGR
    cv2.imwrite(str(tmp_path / "roto.png"), (red == 255) * np.uint8(255))

    def known(self, frames, out_size=None):  # the red channel, at the matte's size
        h, w = out_size or frames[0].shape[:2]
        return [cv2.resize(f[:, :, 0].astype(np.float32), (w, h), interpolation=cv2.INTER_NEAREST) for f in frames]

    monkeypatch.setattr(Segmenter, "probabilities", known)
    out = tmp_path / "out" / "m.#.png"
    render(RenderJob(str(tmp_path / "in" / "p.#.png"), str(out), [Keyframe(tmp_path / "roto.png", 1)],
                     params={"iterations": 1, "process_size": 64, "device": "cpu", "output_format": "png16",
                             **params}, parent=tiny_parent))
    matte = read_mask(str(out).replace("#", "2"), allow_empty=True)
    want = np.zeros(red.shape, bool)
    for name in kept:
        want[regions[name]] = True
    assert np.array_equal(matte > 0.5, want)
    if "edge_softness" in params:  # a ramp at the kept edge, none where the look-alike was
        assert 0 < matte[16, 5] < 1 and (matte[:, 34:] == 0).all()


def test_the_segmenter_refuses_a_core_threshold_of_one(tiny_parent):
    model, _ = load_checkpoint(tiny_parent)
    with pytest.raises(ValueError, match="core threshold"):
        Segmenter(model, InferenceConfig(core_threshold=1.0, device="cpu"))
