import torch

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
