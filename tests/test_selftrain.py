"""Self-training on pseudo-labels: the labels, the frames picked, the ignored pixels, and the model."""

import numpy as np
import pytest
import torch

from osvos_plugin.augment import AugmentConfig, KeyframeSampler
from osvos_plugin.finetune import FinetuneConfig, finetune
from osvos_plugin.losses import class_balanced_bce
from osvos_plugin.selftrain import SelfTrainConfig, pick_frames, pseudo_label, self_train
from osvos_plugin.weights import load_checkpoint


def test_pseudo_label_keeps_only_sure_pixels_eroded():
    prob = np.full((100, 100), 0.02, np.float32)  # sure background
    prob[20:80, 20:80] = 0.5  # unsure band
    prob[30:70, 30:70] = 0.97  # sure object
    target, weight = pseudo_label(prob, SelfTrainConfig(erode=0.03, max_unsure=0.5))  # radius 3 px at 100 px
    assert target.dtype == weight.dtype == np.float32
    assert target[33:67, 33:67].all() and target.sum() == pytest.approx(34 * 34, rel=0.05)  # object shrunk by 3
    assert not target[30:70, 30].any() and not target[:30].any()
    assert weight[33:67, 33:67].all() and not weight[25:75, 25].any()  # the unsure band and its margins: ignored
    assert weight[:17].all() and weight[:, :17].all()  # background eroded by 3 from the band at 20
    assert not weight[17:20, 50].any()
    assert np.all(target <= weight)


def test_pseudo_label_without_a_sure_object_or_with_nan():
    assert pseudo_label(np.full((50, 50), 0.6, np.float32), SelfTrainConfig()) is None
    # a sure object, but the network is unsure of 40% of the frame: a frame it does not know teaches nothing
    prob = np.full((100, 100), 0.02, np.float32)
    prob[:, :40] = 0.5
    prob[40:60, 60:80] = 0.95
    assert pseudo_label(prob, SelfTrainConfig()) is None
    target, weight = pseudo_label(prob, SelfTrainConfig(max_unsure=0.5))
    assert target.sum() > 0 and 0.5 < weight.mean() < 0.6
    bad = np.zeros((50, 50), np.float32)
    bad[3, 4] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        pseudo_label(bad, SelfTrainConfig())


def test_pick_frames_spreads_over_the_shot_and_skips_the_painted_frame():
    assert pick_frames(6, 90, exclude=[0]) == [16, 30, 45, 60, 74, 89]  # every 89/6 frames from the end
    picked = pick_frames(3, 10, exclude=[9])
    assert len(picked) == 3 and 9 not in picked and picked[-1] == 8
    assert pick_frames(10, 4, exclude=[1]) == [0, 2, 3]
    assert pick_frames(0, 10) == [] and pick_frames(3, 1, exclude=[0]) == []


def test_weighted_loss_ignores_weight_zero_pixels():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(1, 1, 8, 8, generator=g, requires_grad=True)
    target = (torch.rand(1, 1, 8, 8, generator=g) > 0.6).float()
    weight = torch.zeros(1, 1, 8, 8)
    weight[..., :, :5] = 1
    loss = class_balanced_bce(logits, target, weight)
    # the same as the loss of the kept pixels alone
    assert loss.item() == pytest.approx(class_balanced_bce(logits[..., :5], target[..., :5]).item(), rel=1e-5)
    loss.backward()
    assert logits.grad[..., 5:].abs().max() == 0 and logits.grad[..., :5].abs().max() > 0
    # all-ones weight: the unweighted loss
    ones = torch.ones_like(weight)
    assert class_balanced_bce(logits, target, ones).item() == pytest.approx(class_balanced_bce(logits, target).item())


def test_sampler_moves_the_weight_with_the_mask():
    rgb = np.random.default_rng(0).random((60, 80, 3), dtype=np.float32)
    mask = np.zeros((60, 80), np.float32)
    mask[:, :40] = 1  # object on the left, and only the left half is trusted
    weight = mask.copy()
    cfg = AugmentConfig(rotate_deg=10, crop=0.8, colour=0.1)
    sampler = KeyframeSampler([(rgb, mask, weight)], 80, cfg, torch.device("cpu"), seed=1)
    for step in range(12):
        image, target, w = sampler(step)
        assert image.shape[1] == 3 and target.shape == w.shape and target.shape[1] == 1
        assert set(torch.unique(w).tolist()) <= {0.0, 1.0}
        assert w.sum() > 0 and (target[w == 1] > 0.99).all()  # where the weight survives, so does the object
    plain = KeyframeSampler([(rgb, mask)], 80, cfg, torch.device("cpu"), seed=1)
    assert len(plain(0)) == 2


def test_zoomed_in_scales_give_a_window_of_the_full_size_showing_the_object():
    rgb = np.random.default_rng(0).random((60, 80, 3), dtype=np.float32)
    mask = np.zeros((60, 80), np.float32)
    mask[50:56, 70:76] = 1  # a small object in a corner
    sampler = KeyframeSampler([(rgb, mask)], 80, AugmentConfig(scales=(2.0,), crop=1.0, colour=0), torch.device("cpu"))
    for step in range(10):
        image, target = sampler(step)
        assert tuple(image.shape[-2:]) == (60, 80) and target.sum() > 0


@pytest.fixture(scope="module")
def shot(demo_pair):
    """The demo's painted frame and three later frames, at 96 px."""
    rgb0, mask0 = demo_pair(1001, long_side=96)
    return (rgb0, mask0.astype(np.float32)), [demo_pair(f, long_side=96)[0] for f in (1008, 1014, 1020)]


def test_self_train_changes_a_copy_and_repeats_with_a_seed(shot, tiny_parent):
    keyframe, frames = shot
    parent, _ = load_checkpoint(tiny_parent)
    tuned = finetune(parent, [keyframe], FinetuneConfig(iterations=40, process_size=96, device="cpu",
                                                        precision="fp32", learning_rate=1e-3))
    before = {k: v.clone() for k, v in tuned.state_dict().items()}
    cfg = SelfTrainConfig(iterations=3, process_size=96, device="cpu", precision="fp32",
                          confident_fg=0.6, confident_bg=0.4)
    stages = []
    a = self_train(tuned, [keyframe], frames, cfg, progress=lambda p: stages.append(p.stage))
    b = self_train(tuned, [keyframe], frames, cfg)
    assert stages == ["selftrain"] * 3
    assert all(torch.equal(v, tuned.state_dict()[k]) for k, v in before.items())  # the input is left as it was
    changed = [k for k, v in a.state_dict().items() if not torch.equal(v, before[k])]
    assert changed and all(torch.equal(v, b.state_dict()[k]) for k, v in a.state_dict().items())
    assert not any(k.startswith("stages.0.") for k in changed)  # conv1 stays frozen


def test_self_train_without_sure_pixels_returns_the_model_unchanged(shot, tiny_parent):
    keyframe, frames = shot
    parent, _ = load_checkpoint(tiny_parent)
    cfg = SelfTrainConfig(iterations=3, process_size=96, device="cpu", precision="fp32", confident_fg=1.0)
    out = self_train(parent, [keyframe], frames, cfg)
    assert out is not parent
    assert all(torch.equal(v, parent.state_dict()[k]) for k, v in out.state_dict().items())
