"""Self-training: after one-shot fine-tuning, learn a little more from the shot's own later frames.

One painted frame shows the object in one pose, at one size. Where it turns, grows or opens its wings
later in the shot, the fine-tuned network misses parts of it. Self-training segments a few frames spread
over the shot, keeps only the pixels the network is sure of (eroded, so that the unsure band along the
boundary is left out) as pseudo-labels, and fine-tunes for a few more steps on them and on the painted
frame, which keeps the artist's mask in charge. Every frame is still segmented independently afterwards:
no flow and no drift; a pseudo-label only ever shapes the weights.
"""

from __future__ import annotations

import copy
import logging
import time
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

import cv2
import numpy as np
import torch

from osvos_contract.manifest import default

from .augment import AugmentConfig, KeyframeSampler
from .device import prepare_model, resolve_device, resolve_precision, shape_varying
from .inference import InferenceConfig, Segmenter
from .jobs import CancelFlag, ProgressFn
from .network import OSVOSNet
from .training import OptimConfig, run_training

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass
class SelfTrainConfig:
    """Self-training settings. A render runs it only when asked (plugin.json's ``self_train_iterations``, 0 by
    default: see models/README.md); called directly, it runs its own budget below."""

    iterations: int = 100
    learning_rate: float = 5e-5
    confident_fg: float = 0.9  # probability above which a pixel is taken as the object
    confident_bg: float = 0.1  # and below which as background; pixels in between are ignored
    erode: float = 0.006  # both confident regions shrink by this share of the long side (3 px at 480)
    max_unsure: float = 0.25  # a frame with more of its pixels unsure is one the network does not know: skipped
    painted_share: float = 0.5  # share of steps that sample the painted frame(s)
    seed: int = default("seed")
    process_size: int = default("process_size")
    device: str = default("device")
    precision: str = default("precision")
    freeze_stages: int = 1
    flip_average: bool = default("flip_average")  # for the pseudo-labels' inference, as the render's
    augment: AugmentConfig = field(default_factory=AugmentConfig)


def pick_frames(count: int, n: int, exclude: Sequence[int] = ()) -> list[int]:
    """``count`` indices spread evenly over ``range(n)``, from the far end back, skipping ``exclude``."""
    skip = set(exclude)
    candidates = [i for i in range(n) if i not in skip]
    if count <= 0 or not candidates:
        return []
    if count >= len(candidates):
        return candidates
    # evenly spaced positions in the candidate list, always including the last one
    picks = np.linspace(len(candidates) - 1, 0, count, endpoint=False)[::-1]
    return sorted({candidates[int(round(p))] for p in picks})


def frames_to_learn_from(shot: Sequence[T], frame_numbers: Sequence[int], count: int,
                          painted: Collection[int]) -> list[T]:
    """The items of ``shot`` (one per frame, ``frame_numbers`` theirs) whose pseudo-labels self-training
    learns from: ``count`` spread over the whole shot, never a painted frame. The caller passes the whole
    shot on disk, whatever the frame range, so that every render of a shot (a range, a farm's
    fine-tune-once step, a resume) trains the same model."""
    exclude = [i for i, f in enumerate(frame_numbers) if f in painted]
    return [shot[i] for i in pick_frames(count, len(shot), exclude=exclude)]


def pseudo_label(prob: np.ndarray, cfg: SelfTrainConfig) -> tuple[np.ndarray, np.ndarray] | None:
    """(target, weight) float32 from a probability map, or None when the frame cannot teach anything.

    Target 1 where the network is sure of the object, 0 elsewhere; weight 1 where it is sure either way
    (after erosion), 0 where the pixel must not teach anything. None when it is sure of no object, or
    unsure of more than ``max_unsure`` of the frame: there a confident region is as likely to be a
    mistake (something else that looks like the object) as the object, and learning from it would
    teach the mistake to every frame.
    """
    if not np.isfinite(prob).all():
        raise ValueError("pseudo-label: the probability map holds NaN or Inf")
    fg = (prob > cfg.confident_fg).astype(np.uint8)
    bg = (prob < cfg.confident_bg).astype(np.uint8)
    radius = max(1, round(cfg.erode * max(prob.shape)))
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))
    fg, bg = cv2.erode(fg, kernel), cv2.erode(bg, kernel)
    weight = (fg | bg).astype(np.float32)
    if fg.sum() < 16 or 1.0 - weight.mean() > cfg.max_unsure:
        return None
    return fg.astype(np.float32), weight


class _Mixed:
    """Steps draw from the painted frames with probability ``share``, else from the pseudo-labelled ones."""

    def __init__(self, painted: KeyframeSampler, pseudo: KeyframeSampler, share: float, seed: int) -> None:
        self.painted, self.pseudo, self.share = painted, pseudo, share
        self.g = torch.Generator().manual_seed(seed)
        self.n_painted = self.n_pseudo = 0

    def __call__(self, step: int) -> tuple[torch.Tensor, ...]:
        if torch.rand((), generator=self.g).item() < self.share:
            self.n_painted += 1
            return self.painted(self.n_painted - 1)
        self.n_pseudo += 1
        return self.pseudo(self.n_pseudo - 1)


def self_train(
    model: OSVOSNet,
    keyframes: list[tuple[np.ndarray, np.ndarray]],
    frames: list[np.ndarray],
    config: SelfTrainConfig | None = None,
    progress: ProgressFn | None = None,
    cancel: CancelFlag = None,
) -> OSVOSNet:
    """A copy of the fine-tuned ``model``, trained further on pseudo-labels of ``frames`` (RGB in [0, 1],
    from the same shot; see ``pick_frames``) and on the painted ``keyframes``. ``model`` is left as is.

    Frames that cannot teach anything (see ``pseudo_label``) are dropped; with none left, the model comes
    back unchanged (a copy), and a log line says so.
    """
    cfg = config or SelfTrainConfig()
    device = resolve_device(cfg.device)
    dtype = resolve_precision(cfg.precision, device)
    model = prepare_model(copy.deepcopy(model), device).eval()
    if cfg.iterations <= 0 or not frames:
        return model
    t0 = time.monotonic()
    segmenter = Segmenter(model, InferenceConfig(
        process_size=cfg.process_size, batch_size=1, soft=True, flip_average=cfg.flip_average,
        device=cfg.device, precision=cfg.precision,
    ))
    labelled = []
    for rgb in frames:
        label = pseudo_label(segmenter.probabilities([rgb])[0], cfg)
        if label is not None:
            labelled.append((rgb, *label))
    del segmenter
    if not labelled:
        log.info("self-training skipped: the network is sure of the object on none of %d frames", len(frames))
        return model
    log.info("self-training on %d pseudo-labelled frames (%.1f s to label them)", len(labelled), time.monotonic() - t0)
    torch.manual_seed(cfg.seed)
    sampler = _Mixed(
        KeyframeSampler(keyframes, cfg.process_size, cfg.augment, device, seed=cfg.seed),
        KeyframeSampler(labelled, cfg.process_size, cfg.augment, device, seed=cfg.seed + 1),
        cfg.painted_share, cfg.seed,
    )
    optim = OptimConfig(learning_rate=cfg.learning_rate, freeze_stages=cfg.freeze_stages)
    with shape_varying(device):
        run_training(model, sampler, cfg.iterations, optim, device, dtype, stage="selftrain", progress=progress,
                     cancel=cancel)
    log.info("self-trained %d iterations in %.1f s", cfg.iterations, time.monotonic() - t0)
    return model
