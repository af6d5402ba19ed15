"""Object-moved samples (``AugmentConfig.move``): the object's place filled in, the object and its mask shifted
together over it."""

from __future__ import annotations

import json

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


def test_a_warped_sample_bends_image_and_mask_together_within_its_bound():
    """A warp moves the object's pixels and its mask alike (the red stays under the mask), by no more than
    ``warp`` of each side, and a new field each sample; off, the keyframe comes back as painted."""
    rgb, mask = _keyframe()
    cfg = AugmentConfig(scales=(1.0,), flip=False, crop=1.0, colour=0.0, warp=0.05)
    sampler = KeyframeSampler([(rgb, mask)], W, cfg, torch.device("cpu"), seed=1)
    shapes = set()
    for step in range(6):
        image, m = sampler(step)
        image, m = image[0].permute(1, 2, 0).numpy(), m[0, 0].numpy()
        inside, outside = m > 0.99, m < 0.01
        assert np.allclose(image[inside], (0.95, 0.05, 0.05), atol=0.01)  # edge pixels: a 1% mix
        assert image[outside, 0].max() < 0.45  # no red outside the bent mask
        ys, xs = np.nonzero(m > 0.5)
        assert abs(int(ys.min()) - 20) <= 0.05 * H + 1 and abs(int(xs.max()) - 45) <= 0.05 * W + 1
        assert not np.array_equal(m > 0.5, mask > 0)  # bent
        shapes.add((m > 0.5).tobytes())
    assert len(shapes) == 6


def test_no_moves_unless_asked_and_none_for_weighted_pseudo_labels():
    rgb, mask = _keyframe()
    plain = AugmentConfig(scales=(1.0,), flip=False, crop=1.0, colour=0.0)
    sampler = KeyframeSampler([(rgb, mask)], W, plain, torch.device("cpu"), seed=0)
    image, m = sampler(0)
    assert np.array_equal(m[0, 0].numpy(), mask)  # the keyframe as painted
    assert all(bg is None for _, per_scale in sampler.variants for *_, bg in per_scale)
    weighted = KeyframeSampler([(rgb, mask, np.ones_like(mask))], W, AugmentConfig(move=1.0), torch.device("cpu"))
    assert all(bg is None for _, per_scale in weighted.variants for *_, bg in per_scale)


def test_render_with_learn_anywhere_follows_an_object_across_the_frame(tmp_path, capsys):
    """End to end with the shipped parent: a textured square painted on the left crosses to the right over a
    noisy ground; with Learn Object Anywhere every matte matches the square, the model's record says it was
    learnt so, and the shot's kept model is reused with it on and not without it."""
    import cv2

    from osvos_plugin.cli.render import main as render_main
    from osvos_plugin.io import read_mask
    from osvos_plugin.weights import read_checkpoint_info

    rng = np.random.default_rng(2)
    (tmp_path / "plate").mkdir()
    masks = []
    for i, x0 in enumerate(range(20, 141, 24)):  # 6 frames, the square 36 px, 24 px further each frame
        img = rng.integers(0, 70, (128, 192, 3), dtype=np.uint8)
        m = np.zeros((128, 192), bool)
        m[46:82, x0:x0 + 36] = True
        img[m] = np.clip(np.array([40, 140, 235]) + rng.integers(-25, 26, (int(m.sum()), 1)), 0, 255).astype(np.uint8)
        cv2.imwrite(str(tmp_path / "plate" / f"sq.{i + 1}.png"), img)
        masks.append(m)
    cv2.imwrite(str(tmp_path / "roto.png"), masks[0].astype(np.uint8) * 255)
    base = [str(tmp_path / "plate" / "sq.#.png"), "--device", "cpu", "--progress", "none", "--output-format", "png8",
            "--process-size", "128", "--mask", str(tmp_path / "roto.png"), "--mask-frame", "1", "--iterations", "60"]
    assert render_main([*base, "--learn-anywhere", "-o", str(tmp_path / "out" / "m.#.png"),
                        "--save-model", str(tmp_path / "ft.safetensors")]) == 0
    capsys.readouterr()
    for f, truth in enumerate(masks, 1):
        matte = read_mask(tmp_path / "out" / f"m.{f}.png", allow_empty=True) >= 0.5
        assert (matte & truth).sum() / (matte | truth).sum() > 0.9, f"frame {f}"
    record = read_checkpoint_info(tmp_path / "ft.safetensors").provenance
    assert '"move": 0.5' in json.dumps(record)
    again = [*base, "-o", str(tmp_path / "out" / "m.#.png")]  # beside the kept model (out/.osvos)
    assert render_main([*again, "--learn-anywhere", "--overwrite"]) == 0  # the same recipe: the kept model serves
    assert "the shot's kept model, reused" in capsys.readouterr().out
    assert render_main(again) == 0  # learnt otherwise: fine-tuned afresh, its mattes rendered again
    out = capsys.readouterr().out
    assert "kept model, reused" not in out and "rendered with another model or other settings" in out, out
