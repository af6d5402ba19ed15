"""Rescale Grown Objects: the extents, the rule, the Segmenter's second pass and a render end to end."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
import torch

from osvos_plugin.augment import AugmentConfig, largest_part_extent, taught_extent
from osvos_plugin.edges import edge_strength, outline_strength
from osvos_plugin.finetune import FinetuneConfig
from osvos_plugin.inference import InferenceConfig, Segmenter, grown_scale


@pytest.mark.parametrize(("side", "taught"), [
    (20, 0.5),  # extent 0.2: the zoom follows it until it spans 0.5
    (10, 0.4),  # extent 0.1: the zoom stops at its 4x cap, so 0.4
    (50, 0.75),  # extent 0.5: no following, the largest zoom (1.5) shows it at 0.75
])
def test_taught_extent_is_the_painted_extent_times_the_largest_zoom(side, taught):
    mask = np.zeros((100, 100), bool)
    mask[:side, :side] = True
    assert taught_extent([mask], FinetuneConfig().augment) == pytest.approx(taught, abs=0.002)
    # several keyframes: the largest; the paper's scales alone (no zoom): the extent itself
    small = np.zeros((100, 100), bool)
    small[:5, :5] = True
    assert taught_extent([small, mask], FinetuneConfig().augment) == pytest.approx(taught, abs=0.002)
    assert taught_extent([mask], AugmentConfig()) == pytest.approx(side / 100)


def test_the_largest_part_is_not_stretched_by_a_far_false_positive():
    matte = np.zeros((100, 100), bool)
    matte[40:60, 40:60] = True
    matte[95:99, 95:99] = True  # a speck in the far corner
    assert largest_part_extent(matte) == pytest.approx(0.2)
    assert largest_part_extent(np.zeros((10, 10), bool)) == 0.0


def test_the_rule_picks_the_largest_scale_at_which_the_object_fits():
    # taught up to 0.5, so the object may span 0.4 at the scale it is segmented at
    assert grown_scale(0.2, 0.5) == 1.0
    assert grown_scale(0.4, 0.5) == 1.0
    assert grown_scale(0.5, 0.5) == 0.7  # 0.35
    assert grown_scale(0.8, 0.5) == 0.5  # 0.7 x 0.8 = 0.56 does not fit, 0.4 does
    assert grown_scale(1.0, 0.5) == 0.35  # nothing fits: the smallest


class _ShortSighted(torch.nn.Module):
    """Finds the bright pixels, but at ``full`` px or more only those in the middle half of the frame: the
    recall a network loses on an object much larger than it was taught (a stand-in with an exact answer)."""

    def __init__(self, full: int, taught: float, objects: int = 1) -> None:
        super().__init__()
        self.full, self.taught_extent, self.objects, self.sizes = full, taught, objects, []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        self.sizes.append((h, w))
        bright = (x.mean(dim=1, keepdim=True) > 0.5).float()
        if max(h, w) >= self.full:
            window = torch.zeros_like(bright)
            window[..., h // 4:h - h // 4, w // 4:w - w // 4] = 1
            bright = bright * window
        if self.objects == 2:  # the left and the right half of the frame's bright pixels, two objects
            left = torch.zeros_like(bright)
            left[..., : w // 2] = 1
            return torch.cat([20 * bright * left - 10, 20 * bright * (1 - left) - 10], dim=1)
        return 20 * bright - 10


def _frame(y0: int, y1: int, x0: int, x1: int) -> tuple[np.ndarray, np.ndarray]:
    rgb = np.full((96, 128, 3), 0.1, np.float32)
    truth = np.zeros((96, 128), bool)
    truth[y0:y1, x0:x1] = True
    rgb[truth] = 0.9
    return rgb, truth


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / (a | b).sum())


@pytest.mark.parametrize("flip, refine", [(False, False), (True, False), (True, True)])
def test_a_frame_whose_object_outgrew_its_training_is_segmented_again_smaller(flip, refine):
    small, small_truth = _frame(38, 58, 54, 74)  # spans 0.18 of the frame: as taught
    large, large_truth = _frame(8, 88, 10, 118)  # 0.84: the middle half alone spans 0.5 of it
    cfg = InferenceConfig(process_size=128, precision="fp32", device="cpu", flip_average=flip, edge_refine=refine,
                          edge_softness=0.0, grown_rescale=True)
    net = _ShortSighted(full=128, taught=0.6)  # may span 0.48: 0.7 x 0.5 fits
    seg = Segmenter(net, cfg)
    mattes = [seg.predict(small) > 0.5, seg.predict(large) > 0.5]
    assert seg.regrown == 1
    assert (96, 128) in net.sizes and (68, 90) in net.sizes  # the large frame again at 0.7 (90 px)
    assert _iou(mattes[0], small_truth) > 0.97
    assert _iou(mattes[1], large_truth) > 0.95
    # off, or a model that does not say how large it was taught: the middle half alone
    for net, grown in ((_ShortSighted(128, 0.6), False), (_ShortSighted(128, 0.0), True)):
        seg = Segmenter(net, InferenceConfig(**{**cfg.__dict__, "grown_rescale": grown}))
        assert _iou(seg.predict(large) > 0.5, large_truth) < 0.45
        assert seg.regrown == 0 and all(size == (96, 128) for size in net.sizes)


def test_with_several_objects_their_union_is_what_outgrew():
    """Two objects side by side (a shared network's scores): neither half alone spans more than it was taught,
    together they do, and both come back whole from the smaller pass."""
    large, truth = _frame(8, 88, 10, 118)
    net = _ShortSighted(full=128, taught=0.6, objects=2)
    seg = Segmenter(net, InferenceConfig(process_size=128, precision="fp32", device="cpu", flip_average=False,
                                         edge_refine=False, edge_softness=0.0, grown_rescale=True))
    matte = seg.predict(large) > 0.5
    assert matte.shape == (2, 96, 128) and seg.regrown == 1
    assert _iou(matte[0], truth & (np.arange(128) < 64)) > 0.95
    assert _iou(matte[1], truth & (np.arange(128) >= 64)) > 0.95


class _Spilling(torch.nn.Module):
    """Finds the bright pixels exactly at ``full`` px or more; below, it spills 3 px past them onto the flat
    ground: a smaller answer whose outline leaves the object's edges."""

    def __init__(self, full: int, taught: float) -> None:
        super().__init__()
        self.full, self.taught_extent = full, taught

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        bright = (x.mean(dim=1, keepdim=True) > 0.5).float()
        if max(x.shape[-2:]) < self.full:
            bright = torch.nn.functional.max_pool2d(bright, 7, stride=1, padding=3)
        return 20 * bright - 10


def test_a_smaller_answer_whose_outline_leaves_the_plates_edges_is_not_taken():
    """The rule fires (the square spans 0.84, taught 0.6), the frame is segmented again at 0.7, but that answer's
    outline lies on the flat ground while the processing size's lies on the square's edges: the processing
    size's matte is kept, exactly the square."""
    large, truth = _frame(8, 88, 10, 118)
    net = _Spilling(full=128, taught=0.6)
    seg = Segmenter(net, InferenceConfig(process_size=128, precision="fp32", device="cpu", flip_average=False,
                                         edge_refine=False, edge_softness=0.0, grown_rescale=True))
    assert np.array_equal(seg.predict(large) > 0.5, truth)
    assert seg.regrown == 0
    # why, on the plate: the square's outline lies on its edges, the spilled one's on flat ground
    assert outline_strength(truth, edge_strength(large)) > 0.5
    spilled = cv2.dilate(truth.astype(np.uint8), np.ones((7, 7), np.uint8)) > 0
    assert outline_strength(spilled, edge_strength(large)) == 0.0


def test_outline_strength_is_the_plates_gradient_along_the_mattes_edge():
    rgb, truth = _frame(20, 60, 30, 90)  # 0.1 ground, a 0.9 square
    strength = edge_strength(rgb)
    assert strength[40, 60] == 0.0 and strength[5, 5] == 0.0  # flat inside and outside
    assert strength[20, 60] == pytest.approx(3.2, abs=1e-4)  # Sobel of a 0.8 step: 4 x 0.8
    assert outline_strength(truth, strength) == pytest.approx(float(strength[strength > 0].mean()), rel=0.05)
    inner = np.zeros_like(truth)
    inner[30:50, 40:80] = True  # a matte cut short inside the square
    assert outline_strength(inner, strength) == 0.0
    assert outline_strength(np.zeros_like(truth), strength) == 0.0


def _growing_shot(folder, sides: list[int]) -> list[np.ndarray]:
    """192x128 frames of a textured orange square growing from ``sides[0]`` px over a dark noisy ground, as a
    car driving up to the camera; its masks (exact), the first frame's as the roto."""
    import cv2

    rng = np.random.default_rng(1)
    (folder / "plate").mkdir(parents=True)
    masks = []
    for i, side in enumerate(sides):
        img = rng.integers(0, 70, (128, 192, 3), dtype=np.uint8)
        m = np.zeros((128, 192), bool)
        y0, x0 = 64 - side // 2, 96 - side // 2 + (len(sides) - 1 - i) * 4
        m[y0:y0 + side, x0:x0 + side] = True
        texture = rng.integers(-25, 26, (int(m.sum()), 1))
        img[m] = np.clip(np.array([40, 140, 235]) + texture, 0, 255).astype(np.uint8)  # BGR orange
        cv2.imwrite(str(folder / "plate" / f"car.{i + 1}.png"), img)
        masks.append(m)
    cv2.imwrite(str(folder / "roto.png"), masks[0].astype(np.uint8) * 255)
    return masks


def test_render_rescales_the_frames_where_the_object_outgrew_its_training(tmp_path, capsys):
    """End to end with the shipped parent: the object is painted small (taught up to 0.5 of the frame) and grows
    to 0.66; the two frames past 0.8 of the taught extent are segmented again smaller (at 0.7 and 0.5 of the
    processing size). Frame 7's answer at 0.7 is kept: its outline follows the square's edges better than the
    processing size's. Frame 8's at 0.5 is not: the network still finds that square nearly whole at the
    processing size and loses its corners at 0.5 (IoU 0.91 against 0.87, seen in fp32). Every matte matches the
    square, the saved model records how large it was taught, and a render from it gives the same mattes."""
    from osvos_plugin.cli.render import main as render_main
    from osvos_plugin.device import int8_engine
    from osvos_plugin.io import read_mask
    from osvos_plugin.review import review_path
    from osvos_plugin.weights import read_checkpoint_info

    masks = _growing_shot(tmp_path, [24, 28, 34, 40, 50, 58, 84, 104])
    base = [str(tmp_path / "plate" / "car.#.png"), "--device", "cpu", "--progress", "none",
            "--output-format", "png8", "--process-size", "128"]  # Rescale Grown Objects is on by default
    # the square painted small learns at half the Learning Rate: 2e-4 runs the 1e-4 the frames above were seen at
    assert FinetuneConfig().small_object_lr == 0.5
    assert render_main([*base, "--mask", str(tmp_path / "roto.png"), "--mask-frame", "1", "--iterations", "150",
                        "--learning-rate", "2e-4",
                        "-o", str(tmp_path / "out" / "m.#.png"), "--save-model", str(tmp_path / "ft.safetensors")]) == 0
    line = capsys.readouterr().out
    taught = read_checkpoint_info(tmp_path / "ft.safetensors").provenance["taught_extent"]
    assert taught == pytest.approx(taught_extent([masks[0]], FinetuneConfig().augment))
    grown = [f for f, m in enumerate(masks, 1) if largest_part_extent(m) > 0.8 * taught]
    assert grown == [7, 8] and "1 frame (7) segmented again smaller" in line, line
    report = json.loads(review_path(tmp_path / "out" / "m.#.png").read_text())
    assert report["rescaled"]["ranges"] == [[7, 7]]
    assert [f["rescaled_to"] for f in report["frames"]] == [None] * 6 + [90, None]  # 0.7 of 128 px
    ious = [_iou(read_mask(tmp_path / "out" / f"m.{f}.png", allow_empty=True) >= 0.5, truth)
            for f, truth in enumerate(masks, 1)]
    # the two grown frames show the square at 3.5 and 4.3 times its painted side; fine-tuning's hard negatives
    # for an object painted small (session 26) make the network stricter there
    assert min(ious[:6]) > 0.9 and min(ious[6:]) > 0.85, ious
    if int8_engine() is not None:  # int8 calibrates the network at each smaller size tried once, kept beside it
        names = sorted(p.name.split(".int8")[1] for p in tmp_path.rglob("*.int8*.safetensors"))
        assert names == ["-64px.safetensors", "-90px.safetensors", ".safetensors"], names
    assert render_main([*base, "--load-model", str(tmp_path / "ft.safetensors"),
                        "-o", str(tmp_path / "again" / "m.#.png")]) == 0
    for f in range(1, len(masks) + 1):
        assert np.array_equal(read_mask(tmp_path / "again" / f"m.{f}.png", allow_empty=True),
                              read_mask(tmp_path / "out" / f"m.{f}.png", allow_empty=True)), f"frame {f}"
