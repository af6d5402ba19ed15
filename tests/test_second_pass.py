"""Second Pass Size: each frame segmented at a second long side too, the probabilities averaged (a third the
second pass's); the average itself, an exact stand-in, and a render end to end."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch

from osvos_plugin.inference import SECOND_PASS_WEIGHT, InferenceConfig, Segmenter
from osvos_plugin.weights import load_checkpoint


def _config(**kw) -> InferenceConfig:
    cfg = dict(process_size=64, device="cpu", precision="fp32", batch_size=2, flip_average=False,
               edge_refine=False, edge_softness=0.0, core_threshold=0.0, soft=True)
    cfg.update(kw)
    return InferenceConfig(**cfg)


@pytest.mark.parametrize("flip, refine", [(False, False), (True, True)])
def test_the_second_pass_is_averaged_in_with_a_third_of_the_weight(demo_pair, tiny_parent, flip, refine):
    model, _ = load_checkpoint(tiny_parent)
    frames = [demo_pair(f, long_side=150)[0] for f in (1001, 1002)]
    kw = dict(flip_average=flip, edge_refine=refine)
    first = Segmenter(model, _config(**kw)).probabilities(frames)
    second = Segmenter(model, _config(process_size=96, **kw)).probabilities(frames)
    both = Segmenter(model, _config(second_pass_size=96, **kw)).probabilities(frames)
    for p, q, got in zip(first, second, both, strict=True):
        assert got.shape == p.shape == frames[0].shape[:2]
        assert np.allclose(got, (1 - SECOND_PASS_WEIGHT) * p + SECOND_PASS_WEIGHT * q, atol=1e-5)
        assert np.abs(p - q).max() > 1e-2  # the two sizes answer differently: the average is not either
    # a second pass at the processing size itself is no second pass; a negative size is refused
    same = Segmenter(model, _config(second_pass_size=64)).probabilities(frames)
    assert all(np.array_equal(a, b) for a, b in zip(same, Segmenter(model, _config()).probabilities(frames),
                                                    strict=True))
    with pytest.raises(ValueError, match="second_pass_size"):
        Segmenter(model, _config(second_pass_size=-1))


class _UnsureWhenLarge(torch.nn.Module):
    """Finds the bright pixels; at ``full`` px or more it is unsure (p = 0.5) of those in the frame's right half:
    a stand-in with an exact answer for a network that is sure of an object only at one of two sizes."""

    def __init__(self, full: int) -> None:
        super().__init__()
        self.full, self.sizes = full, []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        self.sizes.append((h, w))
        bright = (x.mean(dim=1, keepdim=True) > 0.5).float()
        sure = torch.ones_like(bright)
        if max(h, w) >= self.full:
            sure[..., w // 2:] = 0
        return (20 * bright - 10) * sure  # logit 0 (p 0.5) where unsure


def test_the_second_pass_decides_where_the_first_is_unsure():
    rgb = np.full((96, 128, 3), 0.1, np.float32)
    truth = np.zeros((96, 128), bool)
    truth[24:72, 16:112] = True  # across both halves
    rgb[truth] = 0.9
    cfg = _config(process_size=128, soft=False, threshold=0.65)
    net = _UnsureWhenLarge(full=128)
    alone = Segmenter(net, cfg).predict(rgb) > 0.5
    assert np.array_equal(alone, truth & (np.arange(128) < 64)[None])  # the unsure half left out at 0.65
    net.sizes.clear()
    both = Segmenter(net, _config(process_size=128, soft=False, threshold=0.65, second_pass_size=96)).predict(rgb)
    assert sorted(set(net.sizes)) == [(72, 96), (96, 128)]
    # sure at 96 px: 2/3 x 0.5 + 1/3 x 1 = 0.67 over the unsure half; the sure half 1; the ground 0
    assert np.array_equal(both > 0.5, truth)


def test_the_second_pass_never_runs_above_the_plates_long_side(caplog):
    caplog.set_level(logging.INFO, logger="osvos_plugin.inference")
    rgb = np.full((96, 128, 3), 0.1, np.float32)
    rgb[24:72, 16:112] = 0.9
    net = _UnsureWhenLarge(full=1000)
    capped = Segmenter(net, _config(process_size=96, soft=False, second_pass_size=400)).predict(rgb)
    assert sorted(set(net.sizes)) == [(72, 96), (96, 128)]  # the second pass at the plate's 128 px, not 400
    assert "plate's 128 px" in caplog.text
    net.sizes.clear()
    at_plate = Segmenter(net, _config(process_size=96, soft=False, second_pass_size=128)).predict(rgb)
    assert np.array_equal(capped, at_plate)
    # frames handed over already shrunk: the plate is the output's size, so the pass may run above the frames'
    net.sizes.clear()
    seg = Segmenter(net, _config(process_size=96, soft=True, second_pass_size=400))
    seg.probabilities([rgb], out_size=(192, 256))
    assert sorted(set(net.sizes)) == [(72, 96), (192, 256)]
    # a pass capped down to the processing size is no second pass
    net.sizes.clear()
    Segmenter(net, _config(process_size=128, soft=True, second_pass_size=400)).probabilities([rgb])
    assert set(net.sizes) == {(96, 128)} and len(net.sizes) == 1


def _square_shot(folder, n: int = 4) -> list[np.ndarray]:
    """192x128 frames of a textured orange square gliding over a dark noisy ground; its masks (exact), the
    first frame's as the roto."""
    import cv2

    rng = np.random.default_rng(2)
    (folder / "plate").mkdir(parents=True)
    masks = []
    for i in range(n):
        img = rng.integers(0, 70, (128, 192, 3), dtype=np.uint8)
        m = np.zeros((128, 192), bool)
        m[40:88, 60 + 6 * i:108 + 6 * i] = True
        texture = rng.integers(-25, 26, (int(m.sum()), 1))
        img[m] = np.clip(np.array([40, 140, 235]) + texture, 0, 255).astype(np.uint8)
        cv2.imwrite(str(folder / "plate" / f"sq.{i + 1}.png"), img)
        masks.append(m)
    cv2.imwrite(str(folder / "roto.png"), masks[0].astype(np.uint8) * 255)
    return masks


def test_render_with_a_second_pass_matches_the_square_and_is_not_kept_stale(tmp_path, capsys):
    """End to end with the shipped parent: the mattes with a second pass at 160 px match the square; a second
    render into the same folder with the pass turned off re-renders every frame rather than keep the old ones."""
    from osvos_plugin.cli.render import main as render_main
    from osvos_plugin.device import int8_engine
    from osvos_plugin.io import read_mask

    masks = _square_shot(tmp_path)
    out = str(tmp_path / "out" / "m.#.png")
    base = [str(tmp_path / "plate" / "sq.#.png"), "--mask", str(tmp_path / "roto.png"), "--mask-frame", "1",
            "--device", "cpu", "--progress", "none", "--output-format", "png8", "--process-size", "128",
            "--iterations", "100", "-o", out]
    assert render_main([*base, "--second-pass-size", "160"]) == 0
    for f, truth in enumerate(masks, 1):
        matte = read_mask(tmp_path / "out" / f"m.{f}.png", allow_empty=True) >= 0.5
        assert (matte & truth).sum() / (matte | truth).sum() > 0.9, f"frame {f}"
    if int8_engine() is not None:  # int8 calibrates the network at the second size too, kept beside the first
        names = sorted(p.name.split(".int8")[1] for p in tmp_path.rglob("*.int8*.safetensors"))
        assert names == ["-160px.safetensors", ".safetensors"], names
    capsys.readouterr()
    assert render_main(base) == 0
    text = capsys.readouterr().out
    assert "4 frames written, 0 kept" in text and "4 were rendered with another model or other settings" in text, text


def test_a_second_pass_too_small_for_the_network_is_refused_before_any_work():
    from osvos_plugin.errors import InputError
    from osvos_plugin.settings import RenderSettings

    assert RenderSettings.resolve({"second_pass_size": 0}).second_pass_size == 0
    assert RenderSettings.resolve({"second_pass_size": 64}).second_pass_size == 64
    with pytest.raises(InputError, match="second_pass_size 10: 0 .off. or at least 64 px"):
        RenderSettings.resolve({"second_pass_size": 10})
