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
