"""Object-moved samples (``AugmentConfig.move``): the object's place filled in, the object and its mask shifted
together over it."""

from __future__ import annotations

import numpy as np
import torch

from osvos_plugin.augment import AugmentConfig, KeyframeSampler, object_removed

H, W = 60, 80


def _keyframe() -> tuple[np.ndarray, np.ndarray]:
    """A red square on a smooth grey-blue gradient (the keyframe) and its exact mask."""
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float32)
    rgb = np.stack([0.2 + 0.002 * xx, 0.3 + 0.003 * yy, np.full_like(xx, 0.5)], axis=-1)
    mask = np.zeros((H, W), np.float32)
    mask[20:36, 30:46] = 1.0
    rgb[mask > 0] = (0.95, 0.05, 0.05)
    return rgb, mask


def test_the_objects_place_is_filled_from_its_surroundings():
    rgb, mask = _keyframe()
    filled = object_removed(rgb, mask)
    hole = mask > 0
    assert filled[hole, 0].max() < 0.45 and filled[hole, 1].min() > 0.25  # no red left, the gradient's colours
    far = np.ones((H, W), bool)
    far[15:41, 25:51] = False  # beyond the hole and its margin: untouched
    assert np.array_equal(filled[far], rgb[far])
    assert np.array_equal(object_removed(rgb, np.zeros_like(mask)), rgb)  # nothing painted: nothing filled


def test_a_moved_sample_shows_the_object_elsewhere_and_its_place_as_background():
    rgb, mask = _keyframe()
    cfg = AugmentConfig(scales=(1.0,), flip=False, crop=1.0, colour=0.0, move=1.0, move_max=0.25)
    sampler = KeyframeSampler([(rgb, mask)], W, cfg, torch.device("cpu"), seed=3)
    shifts = set()
    for step in range(12):
        image, m = sampler(step)
        image, m = image[0].permute(1, 2, 0).numpy(), m[0, 0].numpy()
        ys, xs = np.nonzero(m > 0.5)
        dy, dx = int(ys.min()) - 20, int(xs.min()) - 30
        assert abs(dy) <= 0.25 * H + 1 and abs(dx) <= 0.25 * W + 1
        shifts.add((dy, dx))
        inside = m > 0.99
        assert np.allclose(image[inside], (0.95, 0.05, 0.05), atol=1e-4)  # the object moved with its mask
        old = (mask > 0) & (m < 0.01)  # where it was painted and is no longer: background, not red
        assert old.any() and image[old, 0].max() < 0.45
    assert len(shifts) > 8  # a new place every time


def test_no_moves_unless_asked_and_none_for_weighted_pseudo_labels():
    rgb, mask = _keyframe()
    plain = AugmentConfig(scales=(1.0,), flip=False, crop=1.0, colour=0.0)
    sampler = KeyframeSampler([(rgb, mask)], W, plain, torch.device("cpu"), seed=0)
    image, m = sampler(0)
    assert np.array_equal(m[0, 0].numpy(), mask)  # the keyframe as painted
    assert all(bg is None for _, per_scale in sampler.variants for *_, bg in per_scale)
    weighted = KeyframeSampler([(rgb, mask, np.ones_like(mask))], W, AugmentConfig(move=1.0), torch.device("cpu"))
    assert all(bg is None for _, per_scale in weighted.variants for *_, bg in per_scale)
