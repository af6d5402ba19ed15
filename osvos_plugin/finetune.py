"""One-shot fine-tuning: adapt the parent network to the object painted on one (or a few) frames."""

from __future__ import annotations

import copy
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch

from osvos_contract.manifest import default

from .augment import LARGE_OBJECT_SHARE, AugmentConfig, KeyframeSampler, taught_extent
from .device import prepare_model, resolve_device, resolve_precision, shape_varying
from .jobs import CancelFlag, ProgressFn
from .network import ObjectNets, OSVOSNet
from .training import PARENT_SIZE, OptimConfig, run_training

log = logging.getLogger(__name__)


@dataclass
class FinetuneConfig:
    """Fine-tuning settings; the node's parameters default to plugin.json's values, as a render's do."""

    iterations: int = default("iterations")
    learning_rate: float = default("learning_rate")
    optimizer: str = default("optimizer")
    seed: int = default("seed")
    process_size: int = default("process_size")  # long side of the scale-1.0 training image
    device: str = default("device")
    precision: str = default("precision")
    object_networks: str = default("object_networks")  # several objects: "per_object" networks or "shared"
    freeze_stages: int = 1
    # Coarse to fine: when ``process_size`` is larger than ``coarse_size`` (0: never), the first ``coarse_share``
    # of the steps at a long side of ``coarse_size``, the rest at ``process_size``. By default the parents'
    # training size: an object painted large (Large Object Scale: 854) first learns at the size its parent
    # knows, then at its own, for two thirds of the arithmetic (issue 20; docs/experiments.md session 31).
    coarse_size: int = PARENT_SIZE
    coarse_share: float = 0.5
    schedule: str = "cosine"  # or "constant" (then a run's step-N model is what an N-step budget gives)
    # Background the network takes for the object weighs up to 1 + ``hard_negatives`` times as much in the loss
    # (losses.py), for objects painted under ``hard_negatives_below`` of the frame: a small object is the one
    # a look-alike ground or a distractor outweighs (docs/experiments.md session 26).
    hard_negatives: float = 2.0
    hard_negatives_below: float = LARGE_OBJECT_SHARE
    # Objects painted under ``small_object_lr_below`` of the frame learn at ``small_object_lr`` times the
    # Learning Rate: on objects painted small a lower rate won over four seeds, on objects painted large it
    # lost (docs/experiments.md sessions 37 and 38). 1: every object at the Learning Rate. One network shared
    # by several objects learns at the Learning Rate, as it takes no hard negatives.
    small_object_lr: float = 0.5
    small_object_lr_below: float = LARGE_OBJECT_SHARE
    iou_weight: float = 0.0  # the Lovász hinge (an IoU surrogate) added to the loss at this weight (losses.py)
    warmup: float = 0.0  # the first share of the steps ramp the rate up linearly (OptimConfig.warmup)
    class_balance: float = 1.0  # the loss's class weights to this power (OptimConfig.class_balance)
    # The paper's scales, and two that zoom in (an object-centred window of the scale-1.0 size): an object
    # that comes closer than on the painted frame is still recognised. For a small object the largest zoom
    # grows until the object would span half the frame (at most 4x; see AugmentConfig.zoom_to), and its
    # samples at scale 1 and above are cut to 0.4-0.7 of each side around it (close crops: the smaller
    # scales show the whole background; higher J&F and cheaper steps, docs/experiments.md session 25).
    augment: AugmentConfig = field(
        default_factory=lambda: AugmentConfig(scales=(0.5, 0.8, 1.0, 1.25, 1.5), zoom_to=0.5, zoom_max=4.0,
                                              close_crop=0.4, close_crop_max=0.7,
                                              close_crop_below=LARGE_OBJECT_SHARE)
    )

    @property
    def coarse_steps(self) -> int:
        """How many of the first steps run at ``coarse_size`` (0: none at this ``process_size``)."""
        return round(self.iterations * self.coarse_share) if 0 < self.coarse_size < self.process_size else 0

    def optim(self, hard_negatives: float | tuple[float, ...] | None = None,
              learning_rate: float | tuple[float, ...] | None = None) -> OptimConfig:
        """The optimiser's settings; ``hard_negatives`` and ``learning_rate``: each network's
        (``hard_negatives_for``, ``learning_rate_for``), by default the fields as they are."""
        return OptimConfig(
            learning_rate=self.learning_rate if learning_rate is None else learning_rate,
            optimizer=self.optimizer, freeze_stages=self.freeze_stages,
            schedule=self.schedule, hard_negatives=self.hard_negatives if hard_negatives is None else hard_negatives,
            iou_weight=self.iou_weight, warmup=self.warmup, class_balance=self.class_balance,
        )

    def hard_negatives_for(self, masks: list[np.ndarray]) -> float:
        """The hard-negative weight for a network learning the object of ``masks`` (its keyframes' masks):
        ``hard_negatives`` where the object covers less than ``hard_negatives_below`` of the frame on one of
        them, else 0 (objects painted large learn as before). The smallest share, as the processing size's
        rule takes it (``settings.RenderSettings.for_object``): an object painted small anywhere is segmented
        at the small objects' size and learns as they do."""
        return self.hard_negatives if _smallest_share(masks) < self.hard_negatives_below else 0.0

    def learning_rate_for(self, masks: list[np.ndarray]) -> float:
        """The learning rate for a network learning the object of ``masks``, by the same rule:
        ``learning_rate`` times ``small_object_lr`` where the object covers less than ``small_object_lr_below``
        of the frame on one of them, else ``learning_rate``."""
        small = _smallest_share(masks) < self.small_object_lr_below
        return self.learning_rate * self.small_object_lr if small else self.learning_rate


def _smallest_share(masks: list[np.ndarray]) -> float:
    return min(float((m > 0.5).mean()) for m in masks)


def validate_keyframe(rgb: np.ndarray, mask: np.ndarray, name: str = "keyframe") -> None:
    """One clear error for keyframes the network cannot learn from. ``mask`` (H, W), or (K, H, W) for K
    objects, where an object may be absent from a keyframe (painted on another) but the union is checked."""
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"{name}: image must be (H, W, 3) RGB, got shape {rgb.shape}")
    if mask.ndim == 3:
        validate_keyframe(rgb, mask.max(axis=0), name)
        return
    if mask.shape != rgb.shape[:2]:
        raise ValueError(f"{name}: mask is {mask.shape[1]}x{mask.shape[0]}, image is {rgb.shape[1]}x{rgb.shape[0]}")
    if not (np.isfinite(rgb).all() and np.isfinite(mask).all()):
        raise ValueError(f"{name}: image or mask holds NaN or Inf pixels")
    fg = float((mask > 0.5).mean())
    if fg == 0.0:
        raise ValueError(f"{name}: the mask has no foreground; paint the object on this frame")
    if fg == 1.0:
        raise ValueError(f"{name}: the mask is all foreground; paint only the object")


def _start_model(parent: OSVOSNet | ObjectNets, n: int, object_networks: str) -> OSVOSNet | ObjectNets:
    """What fine-tuning starts from: a copy of ``parent`` when it already has ``n`` objects (a kept model
    continued), else a parent's generic foreground for each object, in one network per object or in the
    scores of one shared network."""
    if object_networks not in ("per_object", "shared"):
        raise ValueError(f"object_networks must be per_object or shared, got {object_networks!r}")
    if n == parent.num_objects:
        return copy.deepcopy(parent)
    if isinstance(parent, ObjectNets):
        raise ValueError(f"a model of {parent.num_objects} object networks cannot learn {n} objects")
    if n > 1 and object_networks == "per_object":
        return ObjectNets.from_parent(parent, n)
    return parent.with_objects(n)


def _sampler(keyframes: list[tuple[np.ndarray, ...]], cfg: FinetuneConfig,
             device: torch.device) -> Callable[[int], tuple[torch.Tensor, ...]]:
    """The keyframes' samples at ``process_size``; coarse to fine, the first steps' at ``coarse_size``."""
    fine = KeyframeSampler(keyframes, cfg.process_size, cfg.augment, device, seed=cfg.seed)
    coarse_steps = cfg.coarse_steps
    if coarse_steps <= 0:
        return fine
    coarse = KeyframeSampler(keyframes, cfg.coarse_size, cfg.augment, device, seed=cfg.seed + 1)
    return lambda step: coarse(step) if step < coarse_steps else fine(step)


def finetune(
    parent: OSVOSNet | ObjectNets,
    keyframes: list[tuple[np.ndarray, np.ndarray]],
    config: FinetuneConfig | None = None,
    progress: ProgressFn | None = None,
    cancel: CancelFlag = None,
    on_step: Callable[[int, OSVOSNet], None] | None = None,
) -> OSVOSNet:
    """A fine-tuned copy of ``parent`` (which is left untouched) for the object in ``keyframes``.

    ``keyframes``: (rgb (H, W, 3) float32 in [0, 1], mask (H, W) float32 in [0, 1]) pairs. With the same
    seed, inputs and device, the result is the same. ``on_step(step, model)`` runs after every step
    (model in training mode), e.g. to snapshot the model at several budgets in one run.
    """
    cfg = config or FinetuneConfig()
    for i, (rgb, mask) in enumerate(keyframes):
        validate_keyframe(rgb, mask, f"keyframe {i}")
    objects = {kf[1].shape[0] if kf[1].ndim == 3 else 1 for kf in keyframes}
    if len(objects) != 1:
        raise ValueError(f"every keyframe needs a mask per object; got {sorted(objects)} objects")
    (n,) = objects
    if n > 1:  # each object painted on at least one keyframe, else it cannot be learnt
        painted = np.stack([kf[1].reshape(n, -1).max(axis=1) for kf in keyframes]).max(axis=0)
        if (painted <= 0.5).any():
            raise ValueError(f"object {int(np.argmin(painted)) + 1} is painted on no keyframe")
    device = resolve_device(cfg.device)
    dtype = resolve_precision(cfg.precision, device)
    torch.manual_seed(cfg.seed)
    model = prepare_model(_start_model(parent, n, cfg.object_networks), device)
    if cfg.iterations <= 0:
        return model.eval()
    model.taught_extent = taught_extent([kf[1] for kf in keyframes], cfg.augment)  # (``on_step``'s copies too)
    if isinstance(model, ObjectNets):
        # each object's network on samples of its own keyframes alone, drawn as a single-object fine-tune
        # draws them (its own zoom for its own size): the networks end as separate fine-tunes would
        samplers = [_sampler([(kf[0], kf[1][k], *kf[2:]) for kf in keyframes], cfg, device) for k in range(n)]

        def sampler(step: int) -> list[tuple[torch.Tensor, ...]]:
            return [one(step) for one in samplers]
        masks = [[kf[1][k] for kf in keyframes] for k in range(n)]
        optim = cfg.optim(tuple(cfg.hard_negatives_for(m) for m in masks),
                          tuple(cfg.learning_rate_for(m) for m in masks))
    else:
        sampler = _sampler(keyframes, cfg, device)
        # one network for every object: the loss's hard negatives and the smaller rate are a single object's
        # (losses.py)
        masks = [kf[1] for kf in keyframes]
        optim = (cfg.optim(cfg.hard_negatives_for(masks), cfg.learning_rate_for(masks)) if n == 1
                 else cfg.optim(0.0))
    t0 = time.monotonic()
    with shape_varying(device):
        run_training(
            model, sampler, cfg.iterations, optim, device, dtype, stage="finetune", progress=progress,
            cancel=cancel, on_step=None if on_step is None else lambda step, _loss: on_step(step, model),
        )
    log.info("fine-tuned %d iterations in %.1f s on %s (%s)", cfg.iterations, time.monotonic() - t0, device, dtype)
    return model
