"""Class-balanced sigmoid cross-entropy (HED / OSVOS) and the deep-supervision sum."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def class_balanced_bce(
    logits: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None = None, hard_negatives: float = 0.0,
    balance: float = 1.0,
) -> torch.Tensor:
    """The paper's loss: positives weighted by the share of negatives, negatives by the share of positives.

    ``target`` may be soft (in [0, 1]); (N, C, H, W), one channel per object. Per image and channel:
    sum(beta * y * -log sigmoid(x) + (1 - beta) * (1 - y) * -log(1 - sigmoid(x))) / npixels, with
    beta = |Y-| / |Y|; then the mean over images and channels. Dividing by
    the pixel count keeps the learning rate independent of the image size. Computed with softplus, which
    is stable for logits of any magnitude.

    ``weight`` (one channel, 0 or 1): pixels with weight 0 are ignored, as if absent from the image (the
    shares and the pixel count are over the others); used for pseudo-labels that leave unsure pixels out.

    ``hard_negatives`` k > 0: a background pixel's loss is multiplied by 1 + k * p, p its predicted
    probability of being the object (not differentiated), so background the network takes for the object
    (a look-alike) weighs up to 1 + k times as much as background it already rejects (issue 16).

    ``balance`` b: the two weights are beta ** b and (1 - beta) ** b; 1 is the paper's balance, 0 the plain
    cross-entropy, between them a partial balance (a small object's positives outweigh its background by
    less).
    """
    logits = logits.float()
    target = target.float()
    # per image and per channel (each object's score is its own one-vs-rest problem), then the mean
    dims = tuple(range(2, logits.ndim))
    loss_pos = target * F.softplus(-logits)  # -log sigmoid(x)
    loss_neg = (1.0 - target) * F.softplus(logits)  # -log(1 - sigmoid(x))
    if hard_negatives > 0:
        loss_neg = loss_neg * (1.0 + hard_negatives * torch.sigmoid(logits.detach()))
    if weight is None:
        beta = 1.0 - target.mean(dim=dims, keepdim=True)  # share of negatives
        return _balanced(beta, loss_pos, loss_neg, balance).mean(dim=dims).mean()
    weight = weight.float()
    count = weight.sum(dim=dims, keepdim=True).clamp_min(1.0)
    beta = 1.0 - (target * weight).sum(dim=dims, keepdim=True) / count
    per_pixel = _balanced(beta, loss_pos, loss_neg, balance) * weight
    return (per_pixel.sum(dim=dims, keepdim=True) / count).mean()


def _balanced(beta: torch.Tensor, loss_pos: torch.Tensor, loss_neg: torch.Tensor, balance: float) -> torch.Tensor:
    if balance == 1.0:
        return beta * loss_pos + (1.0 - beta) * loss_neg
    return beta.pow(balance) * loss_pos + (1.0 - beta).pow(balance) * loss_neg


def class_balanced_ce(
    logits: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None = None
) -> torch.Tensor:
    """``class_balanced_bce`` for K objects (logits and targets (N, K, H, W)): cross-entropy over a
    background (logit 0, target 1 - the objects') and the K objects, each class's pixels weighted by
    1 - its share of the image, which for one object is exactly the two-class balance above. ``weight``:
    as there."""
    if logits.shape[1] == 1:
        return class_balanced_bce(logits, target, weight)
    logits = logits.float()
    target = target.float().clamp(0.0, 1.0)
    target = torch.cat([(1.0 - target.sum(dim=1, keepdim=True)).clamp_min(0.0), target], dim=1)
    log_p = torch.log_softmax(torch.cat([torch.zeros_like(logits[:, :1]), logits], dim=1), dim=1)
    dims = tuple(range(2, logits.ndim))
    w = torch.ones_like(target[:, :1]) if weight is None else weight.float()
    count = w.sum(dim=dims, keepdim=True).clamp_min(1.0)
    share = (target * w).sum(dim=dims, keepdim=True) / count  # (N, K+1, 1, 1)
    per_pixel = -((1.0 - share) * target * log_p).sum(dim=1, keepdim=True) * w
    return (per_pixel.sum(dim=dims, keepdim=True) / count).mean()


def lovasz_hinge(logits: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None = None) -> torch.Tensor:
    """Lovász hinge (Berman et al., CVPR 2018): a convex surrogate of 1 - IoU of the matte cut at logit 0, per
    image and channel, then the mean. Unlike the per-pixel loss it weighs errors by what they cost the object's
    IoU, so a missed part of a large object and a false blob count as J counts them. ``target`` is cut at 0.5;
    pixels of ``weight`` 0 are left out. An image whose object is absent contributes its hinge on background."""
    logits = logits.float().flatten(2)
    labels = (target.float() > 0.5).float().flatten(2)
    keep = None if weight is None else (weight.float().flatten(2) > 0.5)
    losses = []
    for n in range(logits.shape[0]):
        for c in range(logits.shape[1]):
            x, y = logits[n, c], labels[n, c]
            if keep is not None:
                x, y = x[keep[n, 0]], y[keep[n, 0]]
            if x.numel() == 0:
                continue
            errors = 1.0 - x * (2.0 * y - 1.0)
            errors, order = torch.sort(errors, descending=True)
            y = y[order]
            total = y.sum()
            jaccard = 1.0 - (total - y.cumsum(0)) / (total + (1.0 - y).cumsum(0))
            grad = torch.cat([jaccard[:1], jaccard[1:] - jaccard[:-1]])
            losses.append(torch.dot(F.relu(errors), grad))
    return torch.stack(losses).mean() if losses else logits.sum() * 0.0


def deep_supervision_loss(
    fused: torch.Tensor,
    sides: list[torch.Tensor],
    target: torch.Tensor,
    side_weight: float,
    weight: torch.Tensor | None = None,
    exclusive: bool = True,
    hard_negatives: float = 0.0,
    iou_weight: float = 0.0,
    balance: float = 1.0,
) -> torch.Tensor:
    """Fused loss plus ``side_weight`` times the sum of the side-output losses (``weight``: see above), plus
    ``iou_weight`` times the fused output's ``lovasz_hinge`` (its channels as independent objects).

    ``exclusive`` False (one network per object): each object's own two-class loss, summed over the
    objects, so each network learns exactly as a single-object fine-tune would. ``hard_negatives`` and
    ``balance``: see ``class_balanced_bce`` (one object a network, so not for a shared network of several
    objects)."""
    if exclusive and fused.shape[1] > 1:
        if hard_negatives > 0:
            raise ValueError("hard_negatives needs one network per object (object_networks per_object)")
        if balance != 1.0:
            raise ValueError("a partial class balance needs one network per object (object_networks per_object)")
        loss_fn = class_balanced_ce
    else:
        def loss_fn(logits: torch.Tensor, tgt: torch.Tensor, w: torch.Tensor | None) -> torch.Tensor:
            return class_balanced_bce(logits, tgt, w, hard_negatives, balance) * logits.shape[1]
    loss = loss_fn(fused, target, weight)
    if side_weight > 0:
        loss = loss + side_weight * sum(loss_fn(s, target, weight) for s in sides)
    if iou_weight > 0:
        loss = loss + iou_weight * lovasz_hinge(fused, target, weight) * fused.shape[1]
    return loss
