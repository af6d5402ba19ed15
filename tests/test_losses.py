import pytest
import torch
import torch.nn.functional as F

from osvos_plugin.losses import class_balanced_bce, deep_supervision_loss


def test_balanced_weights_match_formula():
    logits = torch.tensor([[[[2.0, -1.0], [0.5, -3.0]]]])
    target = torch.tensor([[[[1.0, 0.0], [0.0, 0.0]]]])
    beta = 3 / 4  # share of negatives
    p = torch.sigmoid(logits)
    expected = (-beta * torch.log(p[0, 0, 0, 0]) - (1 - beta) * torch.log(1 - p[0, 0, [0, 1, 1], [1, 0, 1]]).sum()) / 4
    assert torch.allclose(class_balanced_bce(logits, target), expected, atol=1e-6)


def test_partial_balance_weighs_each_class_by_its_weight_to_the_power():
    """balance 0 is the plain cross-entropy; 0.5 weighs positives by sqrt(beta) and negatives by sqrt(1 - beta),
    with and without an ignore weight."""
    logits = torch.tensor([[[[2.0, -1.0], [0.5, -3.0]]]])
    target = torch.tensor([[[[1.0, 0.0], [0.0, 0.0]]]])
    plain = F.binary_cross_entropy_with_logits(logits, target)
    assert torch.allclose(class_balanced_bce(logits, target, balance=0.0), plain, atol=1e-6)
    p = torch.sigmoid(logits)
    half = (-(3 / 4) ** 0.5 * torch.log(p[0, 0, 0, 0])
            - (1 / 4) ** 0.5 * torch.log(1 - p[0, 0, [0, 1, 1], [1, 0, 1]]).sum()) / 4
    assert torch.allclose(class_balanced_bce(logits, target, balance=0.5), half, atol=1e-6)
    weight = torch.ones_like(target)
    assert torch.allclose(class_balanced_bce(logits, target, weight, balance=0.5), half, atol=1e-6)
    assert torch.allclose(deep_supervision_loss(logits, [], target, 0.0, balance=0.5), half, atol=1e-6)
    with pytest.raises(ValueError, match="one network per object"):
        deep_supervision_loss(torch.zeros(1, 2, 2, 2), [], torch.zeros(1, 2, 2, 2), 0.0, balance=0.5)


def test_stable_for_huge_logits_and_size_independent():
    t = torch.zeros(1, 1, 8, 8)
    t[..., :2, :2] = 1
    x = torch.where(t > 0, torch.tensor(-1e4), torch.tensor(1e4))  # confidently wrong everywhere
    assert torch.isfinite(class_balanced_bce(x, t))
    small = class_balanced_bce(torch.zeros(1, 1, 8, 8), t)
    big = class_balanced_bce(torch.zeros(1, 1, 64, 64), torch.nn.functional.interpolate(t, size=(64, 64)))
    assert torch.allclose(small, big, atol=1e-6)


def test_rare_foreground_is_not_ignored():
    """With 1% foreground, predicting all background must cost as much as predicting all foreground."""
    t = torch.zeros(1, 1, 10, 10)
    t[..., 0, 0] = 1
    all_bg = class_balanced_bce(torch.full_like(t, -5.0), t)
    all_fg = class_balanced_bce(torch.full_like(t, 5.0), t)
    assert torch.allclose(all_bg, all_fg, rtol=1e-3)


def test_deep_supervision_adds_weighted_sides():
    t = (torch.rand(1, 1, 6, 6) > 0.5).float()
    f, s = torch.randn(1, 1, 6, 6), [torch.randn(1, 1, 6, 6) for _ in range(4)]
    base = class_balanced_bce(f, t)
    assert torch.allclose(deep_supervision_loss(f, s, t, 0.0), base)
    full = deep_supervision_loss(f, s, t, 0.5)
    assert torch.allclose(full, base + 0.5 * sum(class_balanced_bce(x, t) for x in s))


def test_hard_negatives_weigh_background_the_network_takes_for_the_object():
    """Background at probability p weighs 1 + k * p; the object's pixels and sure background do not change,
    and the extra weight carries no gradient of its own."""
    logits = torch.tensor([[[[4.0, -4.0], [0.0, 2.0]]]], requires_grad=True)
    target = torch.tensor([[[[1.0, 0.0], [0.0, 0.0]]]])
    k = 3.0
    got = class_balanced_bce(logits, target, hard_negatives=k)
    beta = 0.75  # three of the four pixels are background
    x = logits.detach().flatten()
    p = torch.sigmoid(x)
    neg = F.softplus(x[1:]) * (1 + k * p[1:])
    want = (beta * F.softplus(-x[0]) + (1 - beta) * neg.sum()) / 4
    assert torch.allclose(got, want)
    assert got > class_balanced_bce(logits, target)  # the look-alike at logit 2 weighs more
    got.backward()
    # d/dx of (1 - beta) / 4 * softplus(x) * const(1 + k p) at the look-alike pixel
    assert torch.allclose(logits.grad.flatten()[3], (1 - beta) / 4 * p[3] * (1 + k * p[3]))
    # with k = 0 nothing changes, and deep supervision passes k to every output
    assert torch.allclose(class_balanced_bce(logits, target, hard_negatives=0.0), class_balanced_bce(logits, target))
    sides = [logits.detach() * 0.5]
    plain = deep_supervision_loss(logits.detach(), sides, target, 1.0)
    hard = deep_supervision_loss(logits.detach(), sides, target, 1.0, hard_negatives=k)
    want_ds = class_balanced_bce(logits.detach(), target, hard_negatives=k) + class_balanced_bce(
        sides[0], target, hard_negatives=k)
    assert torch.allclose(hard, want_ds) and hard > plain
    # a shared network of several objects has no single background to weigh: refused, not ignored
    two = torch.zeros(1, 2, 2, 2)
    with pytest.raises(ValueError, match="one network per object"):
        deep_supervision_loss(two, [], two, 0.0, hard_negatives=k)


def test_lovasz_hinge_is_twice_one_minus_iou_for_unit_margins():
    """At logits of +-1 (every pixel decided, margin 1) the Lovász extension of the Jaccard loss is exact:
    wrong pixels have hinge error 2, right ones 0, so the loss is 2 * (1 - IoU) of the matte cut at 0."""
    from osvos_plugin.losses import lovasz_hinge

    g = torch.Generator().manual_seed(0)
    target = (torch.rand(2, 1, 20, 30, generator=g) > 0.7).float()
    matte = (torch.rand(2, 1, 20, 30, generator=g) > 0.6).float()
    iou = (matte * target).sum(dim=(1, 2, 3)) / (matte + target - matte * target).sum(dim=(1, 2, 3))
    assert torch.allclose(lovasz_hinge(2 * matte - 1, target), (2 * (1 - iou)).mean(), atol=1e-6)
    assert lovasz_hinge(torch.where(target > 0, 3.0, -3.0), target) == 0.0  # right with a margin: nothing


def test_lovasz_hinge_leaves_out_unweighted_pixels_and_its_weight_adds_it():
    from osvos_plugin.losses import lovasz_hinge

    target = torch.zeros(1, 1, 4, 4)
    target[..., :2, :2] = 1
    logits = torch.where(target > 0, 2.0, -2.0)
    logits[..., 3, 3] = 2.0  # one false positive
    weight = torch.ones(1, 1, 4, 4)
    assert lovasz_hinge(logits, target) > 0
    weight[..., 3, 3] = 0
    assert lovasz_hinge(logits, target, weight) == 0.0
    f, s = torch.randn(1, 1, 6, 6), [torch.randn(1, 1, 6, 6) for _ in range(4)]
    t = (torch.rand(1, 1, 6, 6) > 0.5).float()
    assert torch.allclose(deep_supervision_loss(f, s, t, 0.5, iou_weight=0.25),
                          deep_supervision_loss(f, s, t, 0.5) + 0.25 * lovasz_hinge(f, t))
