"""Class-balanced sigmoid cross-entropy (HED / OSVOS) and the deep-supervision sum."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def class_balanced_bce(
    logits: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None = None
) -> torch.Tensor:
    """The paper's loss: positives weighted by the share of negatives, negatives by the share of positives.

    ``target`` may be soft (in [0, 1]). Per image: sum(beta * y * -log sigmoid(x) + (1 - beta) * (1 - y)
    * -log(1 - sigmoid(x))) / npixels, with beta = |Y-| / |Y|; then the mean over the batch. Dividing by
    the pixel count keeps the learning rate independent of the image size. Computed with softplus, which
    is stable for logits of any magnitude.

    ``weight`` (same shape, 0 or 1): pixels with weight 0 are ignored, as if absent from the image (the
    shares and the pixel count are over the others); used for pseudo-labels that leave unsure pixels out.
    """
    logits = logits.float()
    target = target.float()
    dims = tuple(range(1, logits.ndim))
    loss_pos = target * F.softplus(-logits)  # -log sigmoid(x)
    loss_neg = (1.0 - target) * F.softplus(logits)  # -log(1 - sigmoid(x))
    if weight is None:
        beta = 1.0 - target.mean(dim=dims, keepdim=True)  # share of negatives
        per_pixel = beta * loss_pos + (1.0 - beta) * loss_neg
        return per_pixel.mean(dim=dims).mean()
    weight = weight.float()
    count = weight.sum(dim=dims, keepdim=True).clamp_min(1.0)
    beta = 1.0 - (target * weight).sum(dim=dims, keepdim=True) / count
    per_pixel = (beta * loss_pos + (1.0 - beta) * loss_neg) * weight
    return (per_pixel.sum(dim=dims, keepdim=True) / count).mean()


def deep_supervision_loss(
    fused: torch.Tensor,
    sides: list[torch.Tensor],
    target: torch.Tensor,
    side_weight: float,
    weight: torch.Tensor | None = None,
) -> torch.Tensor:
    """Fused loss plus ``side_weight`` times the sum of the side-output losses (``weight``: see above)."""
    loss = class_balanced_bce(fused, target, weight)
    if side_weight > 0:
        loss = loss + side_weight * sum(class_balanced_bce(s, target, weight) for s in sides)
    return loss
