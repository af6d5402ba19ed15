"""The training loop shared by one-shot fine-tuning and parent training.

It knows nothing of where samples come from: a sampler hands it (image, mask) batches, and it reports
progress (fraction, loss, ETA) and honours a cancel flag between steps, which is what hosts need.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch

from .device import autocast, training_memory_format
from .jobs import CancelFlag, Cancelled, Progress, ProgressFn, is_cancelled
from .losses import deep_supervision_loss
from .network import OSVOSNet

log = logging.getLogger(__name__)

# The long side the parents learn at (``parent.ParentConfig``); fine-tuning above it warms up at it first.
PARENT_SIZE = 480


@dataclass
class OptimConfig:
    """Optimiser settings; the loss is per-pixel normalised, so these do not depend on image size."""

    learning_rate: float | tuple[float, ...] = 1e-4  # one value for each network of an ObjectNets, or one for all
    optimizer: str = "adam"  # adam | sgd
    momentum: float = 0.9
    weight_decay: float = 2e-4
    freeze_stages: int = 0  # trunk stages (from conv1) kept frozen
    side_weight: float = 1.0  # deep supervision weight at step 0
    schedule: str = "cosine"  # cosine: lr decays to 1/20 and side weights fade to 0 over the run; constant: neither
    # background the network takes for the object weighs up to 1 + this (losses.py); one value for each network
    # of an ObjectNets, or one for all
    hard_negatives: float | tuple[float, ...] = 0.0
    iou_weight: float = 0.0  # weight of the Lovász hinge on the fused output (losses.py), added to the loss
    # the first ``warmup`` share of the steps ramp the rate up linearly; kept for experiments: on held-out
    # shots of small objects it did not win (docs/experiments.md session 39)
    warmup: float = 0.0
    # exponent of the loss's class weights: 1 the paper's balance, 0 none (losses.py); kept for experiments: half
    # the balance lost on held-out shots of small objects (docs/experiments.md session 40)
    class_balance: float = 1.0

    def __post_init__(self) -> None:
        if self.schedule not in ("cosine", "constant"):
            raise ValueError(f"unknown schedule {self.schedule!r}: expected cosine or constant")
        if not 0.0 <= self.warmup < 1.0:
            raise ValueError(f"warmup {self.warmup}: a share of the steps, at least 0 and below 1")
        if not 0.0 <= self.class_balance <= 1.0:
            raise ValueError(f"class_balance {self.class_balance}: from 0 (no balance) to 1 (the paper's)")


def trainable_parameters(model: OSVOSNet, freeze_stages: int) -> list[torch.nn.Parameter]:
    for net in getattr(model, "nets", [model]):  # ObjectNets: each object's network
        for i, stage in enumerate(net.stages):
            stage.requires_grad_(i >= freeze_stages)
    return [p for p in model.parameters() if p.requires_grad]


def parameter_groups(model: OSVOSNet, cfg: OptimConfig) -> list[torch.nn.Parameter] | list[dict]:
    """What the optimiser steps: the trainable parameters, or with a learning rate per network (an
    ``ObjectNets`` whose objects learn at their own rates) one parameter group per network."""
    params = trainable_parameters(model, cfg.freeze_stages)
    if not isinstance(cfg.learning_rate, tuple):
        return params
    nets = getattr(model, "nets", None)
    if nets is None or len(nets) != len(cfg.learning_rate):
        raise ValueError(f"learning_rate: {len(cfg.learning_rate)} values are for an ObjectNets of as many networks")
    return [{"params": [p for p in net.parameters() if p.requires_grad], "lr": lr}
            for net, lr in zip(nets, cfg.learning_rate, strict=True)]


def make_optimizer(params: list[torch.nn.Parameter] | list[dict], cfg: OptimConfig) -> torch.optim.Optimizer:
    """The optimiser over ``params`` (parameters, or groups that carry their own ``lr``)."""
    lr = max(cfg.learning_rate) if isinstance(cfg.learning_rate, tuple) else cfg.learning_rate
    tensors = [p for g in params for p in g["params"]] if params and isinstance(params[0], dict) else params
    if cfg.optimizer == "adam":
        # fused: one kernel for all parameters instead of a dozen passes over them (BENCHMARKS.md)
        fused = all(p.device.type in ("cpu", "cuda") for p in tensors) or None
        return torch.optim.AdamW(params, lr=lr, weight_decay=cfg.weight_decay, fused=fused)
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    raise ValueError(f"unknown optimizer {cfg.optimizer!r}: expected adam or sgd")


def lr_factor(step: int, total: int, schedule: str, warmup: float = 0.0) -> float:
    """The rate's factor at ``step`` of ``total``: the schedule's, ramped up over the first ``warmup`` share."""
    ramp = round(warmup * total)
    up = (step + 1) / (ramp + 1) if step < ramp else 1.0
    if schedule == "constant" or total <= 1:
        return up
    floor = 0.05
    return up * (floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * step / total)))


def run_training(
    model: OSVOSNet,
    sample: Callable[[int], tuple[torch.Tensor, ...]],
    steps: int,
    cfg: OptimConfig,
    device: torch.device,
    dtype: torch.dtype,
    *,
    stage: str = "finetune",
    start_step: int = 0,
    optimizer: torch.optim.Optimizer | None = None,
    progress: ProgressFn | None = None,
    cancel: CancelFlag = None,
    on_step: Callable[[int, float], None] | None = None,
) -> torch.optim.Optimizer:
    """Run steps ``start_step`` .. ``steps - 1``; ``sample(step)`` gives an (image, mask) batch on ``device``,
    or (image, mask, weight), where pixels of weight 0 are left out of the loss; for an ``ObjectNets``, it
    may give a list of such batches, one per object's network (each network's loss summed).

    Returns the optimiser, so a caller can checkpoint and resume. Raises ``Cancelled`` between steps.
    """
    model.train()
    layout = training_memory_format(device, dtype)
    model.to(memory_format=layout)  # in place: an optimiser passed in keeps its parameters
    params = parameter_groups(model, cfg)
    opt = optimizer or make_optimizer(params, cfg)
    base_lrs = [g.get("initial_lr", g["lr"]) for g in opt.param_groups]
    for g, lr in zip(opt.param_groups, base_lrs, strict=True):
        g["initial_lr"] = lr
    t0 = time.monotonic()
    ema = None
    for step in range(start_step, steps):
        if is_cancelled(cancel):
            raise Cancelled(f"{stage} cancelled at step {step} of {steps}")
        for g, lr in zip(opt.param_groups, base_lrs, strict=True):
            g["lr"] = lr * lr_factor(step, steps, cfg.schedule, cfg.warmup)
        batch = sample(step)
        side_w = cfg.side_weight * (1.0 - step / steps if cfg.schedule == "cosine" else 1.0)
        if isinstance(batch, list):  # a batch per network of an ObjectNets: each object's own samples
            loss = 0.0
            hard = cfg.hard_negatives if isinstance(cfg.hard_negatives, tuple) else (cfg.hard_negatives,) * len(batch)
            for net, (image, mask, *weight), k in zip(model.nets, batch, hard, strict=True):
                with autocast(device, dtype):
                    fused, sides = net.forward_with_sides(image.contiguous(memory_format=layout))
                loss = loss + deep_supervision_loss(fused, sides, mask, side_w, weight[0] if weight else None,
                                                    hard_negatives=k, iou_weight=cfg.iou_weight,
                                                    balance=cfg.class_balance)
        else:
            image, mask, *weight = batch
            if isinstance(cfg.hard_negatives, tuple):
                raise ValueError("hard_negatives: one value per network is for an ObjectNets; this is one network")
            with autocast(device, dtype):
                fused, sides = model.forward_with_sides(image.contiguous(memory_format=layout))
            loss = deep_supervision_loss(fused, sides, mask, side_w, weight[0] if weight else None,
                                         exclusive=getattr(model, "exclusive_objects", True),
                                         hard_negatives=cfg.hard_negatives, iou_weight=cfg.iou_weight,
                                         balance=cfg.class_balance)
        if not torch.isfinite(loss):
            raise FloatingPointError(
                f"{stage}: the loss became {loss.item()} at step {step}; lower the learning rate."
            )
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        value = loss.item()
        ema = value if ema is None else 0.9 * ema + 0.1 * value
        if on_step is not None:
            on_step(step, value)
        if progress is not None:
            progress(Progress.timed(stage, step + 1 - start_step, steps - start_step, time.monotonic() - t0, ema))
    model.eval()
    return opt
