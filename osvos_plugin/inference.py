"""Inference: every frame segmented independently (no flow, no drift), in batches, streaming.

``Segmenter`` is the small core object a sequence runs through: frames in, mattes out, with at most
one batch in flight, so memory does not grow with the shot length.
"""

from __future__ import annotations

import copy
import logging
import os
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from osvos_contract.manifest import default

from .augment import largest_part_extent
from .device import inference_precision, prepare_model, resolve_device, resolve_precision
from .edges import alpha_from_probability, edge_strength, guided_upsample, guided_upsample_tensor, outline_strength
from .imaging import fit_long_side, resize
from .jobs import CancelFlag, Cancelled, Progress, ProgressFn, is_cancelled
from .network import OSVOSNet, object_probabilities
from .snapping import ContourDetector, SnapConfig, snap_probability

log = logging.getLogger(__name__)


@dataclass
class InferenceConfig:
    """Inference settings; the node's parameters default to plugin.json's values, as a render's do."""

    process_size: int = default("process_size")  # long side at which the network runs; 0 = the plate's own size
    batch_size: int = default("batch_size")
    soft: bool = default("soft_matte")  # soft matte instead of a hard 0/1 one
    # The class-balanced loss weighs the (rarer) object pixels up, so the network says "object" too
    # readily and the default threshold is above 0.5 (why and how it was picked: models/README.md).
    threshold: float = default("threshold")
    # Hysteresis: a region above the threshold is kept only if it holds a pixel above this (``hold_cores``);
    # at or below the threshold, off.
    core_threshold: float = default("core_threshold")
    flip_average: bool = default("flip_average")  # also segment each frame mirrored and average (False: one pass)
    device: str = default("device")
    precision: str = default("precision")
    # Edges, applied at the plate's size (osvos_plugin/edges.py); at their defaults the matte is today's.
    edge_refine: bool = default("edge_refine")  # the plate guides the upsampling (guided filter)
    edge_grow: float = default("edge_grow")  # plate pixels the edge moves outwards (negative: inwards)
    edge_softness: float = default("edge_softness")  # plate pixels of edge ramp; 0: hard, or soft_matte's
    boundary_snap: bool = default("boundary_snap")  # the edge moved onto the plate's contours (snapping.py)
    snap: SnapConfig = field(default_factory=SnapConfig)
    overlap: bool = default("object_overlap")  # several objects: each matte on its own, a pixel may be in several
    # An object that comes much closer than fine-tuning ever showed it is recognised only in part at the
    # processing size; such a frame is segmented again smaller (``grown_scale``), where the object appears
    # at a size it was taught (the model's ``taught_extent``; a model without one rescales no frame).
    grown_rescale: bool = default("grown_object_rescale")
    # Each frame also segmented with its long side at this many pixels (0: off), the two probabilities averaged
    # with SECOND_PASS_WEIGHT on this one's: the network sees the object at two sizes and their errors differ.
    second_pass_size: int = default("second_pass_size")


# The guided filter's window is this many processing-size pixels (the network's edge is uncertain by about
# that much), i.e. larger in plate pixels the more the probability is blown up; its eps is on the plate's
# [0, 1] scale. Internal constants, not knobs: the edge controls a compositor needs are grow and softness.
EDGE_RADIUS = 2.0
EDGE_EPS = 1e-3

# Grown objects: the smaller multiples of the processing size a frame may be segmented at again, and the share
# of the taught extent the object may span there (docs/experiments.md, sessions 21 and 22).
GROWN_SCALES = (0.7, 0.5, 0.35)
GROWN_LIMIT = 0.8
# Which rule picks a grown frame's answer, recorded in the mattes' fingerprint when the option is on: a matte made by
# an earlier rule (before session 33 the smaller answer was taken unchecked) must not pass for this one's on resume.
GROWN_RULE = "outline-checked"

# The second pass's share of the averaged probability (the processing size's: the rest); docs/experiments.md,
# session 42.
SECOND_PASS_WEIGHT = 1 / 3


def grown_scale(extent: float, taught: float) -> float:
    """The multiple of the processing size to segment a frame at whose object (its largest part) spans
    ``extent`` (``augment.largest_part_extent``), for a model taught the object up to ``taught``: the largest of
    1 and ``GROWN_SCALES`` at which it spans at most ``GROWN_LIMIT`` of that, else the smallest."""
    fits = [s for s in (1.0, *GROWN_SCALES) if s * extent <= GROWN_LIMIT * taught]
    return max(fits) if fits else min(GROWN_SCALES)


def recentre(prob: np.ndarray, threshold: float) -> np.ndarray:
    """``sigmoid(logit(prob) - logit(threshold))`` as float32: ``prob`` itself at 0.5, and above 0.5 just
    where ``prob > threshold``. 0 and 1 stay 0 and 1."""
    if threshold == 0.5:
        return prob.astype(np.float32, copy=False)
    if threshold <= 0.0 or threshold >= 1.0:
        return (prob > threshold).astype(np.float32)
    p = prob.astype(np.float64)
    with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
        odds = p / (1.0 - p) * ((1.0 - threshold) / threshold)  # inf where p == 1 (then inf / inf: set below)
        out = odds / (1.0 + odds)
    out[p >= 1.0] = 1.0
    return out.astype(np.float32)


def hold_cores(prob: np.ndarray, threshold: float, core: float) -> np.ndarray:
    """``prob`` with every connected region above ``threshold`` that nowhere exceeds ``core`` set to 0
    (hysteresis, 8-connected): the threshold can then sit low enough to take in all of an object that is
    surer in its core than at its edges, without also keeping the unsure blobs a look-alike background
    raises. Pixels at or below the threshold are left as they are. ``core <= threshold``: ``prob`` itself."""
    if core <= threshold:
        return prob
    above = prob > threshold
    if not above.any():
        return prob
    n, regions = cv2.connectedComponents(above.astype(np.uint8), connectivity=8)
    held = np.zeros(n, bool)
    held[np.unique(regions[prob > core])] = True
    held[0] = True  # region 0 is everything at or below the threshold
    if held.all():  # the usual frame: every region is sure somewhere, nothing to drop
        return prob
    return np.where(held[regions], prob, np.zeros((), prob.dtype))


class Segmenter:
    """Runs a (fine-tuned) OSVOS network over frames and returns mattes at the frames' own size."""

    def __init__(self, model: OSVOSNet, config: InferenceConfig | None = None,
                 int8_cache: str | os.PathLike | None = None) -> None:
        """``int8_cache``: where int8 inference keeps and finds this model's calibration
        (``quantize.quantize_for_cpu``); None calibrates every time."""
        self.cfg = config or InferenceConfig()
        if not 0.0 <= self.cfg.threshold <= 1.0:
            raise ValueError(f"threshold must be in [0, 1], got {self.cfg.threshold}")
        if not 0.0 <= self.cfg.core_threshold < 1.0:
            raise ValueError(f"core threshold must be in [0, 1), got {self.cfg.core_threshold}")
        if self.cfg.edge_softness < 0:
            raise ValueError(f"edge_softness must be >= 0, got {self.cfg.edge_softness}")
        if self.cfg.second_pass_size < 0:
            raise ValueError(f"second_pass_size must be >= 0 (0: off), got {self.cfg.second_pass_size}")
        self._warned_small_guide = False
        self._warned_second_cap = False
        self.device = resolve_device(self.cfg.device)
        self._edges_on_device = self.device.type != "cpu"  # the guided filter: OpenCV is fastest on a CPU
        self._precision = inference_precision(self.cfg.precision, self.device)
        self.dtype = resolve_precision(self._precision, self.device)
        self._source, self._int8_cache = model, int8_cache
        self.model = self._prepared(self.cfg.process_size, int8_cache)
        self._scaled: dict[int, torch.nn.Module] = {}  # by long side: the network for grown objects' frames
        self.regrown = 0  # frames segmented again at a smaller scale (``grown_rescale``), by either pass
        self._rescaled: list[int | None] = []  # the last batch's: the long side each frame was segmented again at
        self.rescaled_to: int | None = None  # the frame ``stream`` handed out last: the side it was segmented again at
        self._object_probabilities = getattr(self.model, "probabilities", object_probabilities)
        # Several objects: a shared network's objects compete in one softmax, so their probabilities add up
        # to the object-or-not belief; one network per object gives each object's own, decided on the maximum.
        self._exclusive = getattr(model, "exclusive_objects", True)
        self._taught = float(getattr(model, "taught_extent", 0.0))
        self._contours: ContourDetector | None = None  # made on first use (boundary_snap)

    def _prepared(self, process_size: int, int8_cache: str | os.PathLike | None) -> torch.nn.Module:
        """The caller's model as inference runs it: int8 calibrated at ``process_size`` (the sizes a network
        meets shape its activation ranges), or a low-precision copy."""
        model = self._source
        if self._precision == "int8":
            from .quantize import quantize_for_cpu

            model = quantize_for_cpu(model, process_size, cache=int8_cache)
        if self.dtype != torch.float32:
            # Inference runs on a low-precision copy rather than under autocast, which would cast every
            # weight again on every call (a fixed cost that dominates at small sizes). The caller's model
            # stays float32, e.g. for more fine-tuning.
            model = copy.deepcopy(model).to(self.dtype)
        return prepare_model(model, self.device).eval()

    def _model_at(self, long_side: int) -> torch.nn.Module:
        """The network for frames segmented at ``long_side`` instead of the processing size (made once)."""
        if self._precision != "int8":
            return self.model
        if long_side not in self._scaled:
            cache = None
            if self._int8_cache is not None:
                stem = Path(self._int8_cache).name.removesuffix(".safetensors")
                cache = Path(self._int8_cache).with_name(f"{stem}-{long_side}px.safetensors")
            self._scaled[long_side] = self._prepared(long_side, cache)
        return self._scaled[long_side]

    @torch.inference_mode()
    def probabilities(self, frames: list[np.ndarray], out_size: tuple[int, int] | None = None) -> list[np.ndarray]:
        """Foreground probability float32 for each (H, W, 3) RGB frame in [0, 1] (same size each).

        The probability is at the frames' size, or ``out_size`` (h, w): a reader may hand over frames
        already shrunk to the processing size, and the matte still comes out at the plate's size.

        With ``edge_refine`` the probability is upsampled with the frame as the guide (``guided_upsample``),
        so the frames should then come in at the plate's size: a smaller frame is a blurred guide.
        """
        if not frames:
            return []
        h, w = frames[0].shape[:2]
        batch = torch.from_numpy(np.stack(frames).astype(np.float32, copy=False)).permute(0, 3, 1, 2)
        batch = batch.to(self.device, non_blocking=True)
        size = (h, w) if self.cfg.process_size <= 0 else fit_long_side(h, w, self.cfg.process_size)
        x = resize(batch, size).to(self.dtype).contiguous(memory_format=torch.channels_last)
        out_h, out_w = out_size or (h, w)
        probs = self._probabilities(frames, batch, x, (out_h, out_w))
        side = self._second_side(max(out_h, out_w))
        if side > 0 and side != max(size):
            rescaled = self._rescaled  # what ``stream`` reports: the processing size's pass
            second = resize(batch, fit_long_side(h, w, side)).to(self.dtype)
            second = second.contiguous(memory_format=torch.channels_last)
            more = self._probabilities(frames, batch, second, (out_h, out_w), self._model_at(side))
            probs = [(1 - SECOND_PASS_WEIGHT) * p + SECOND_PASS_WEIGHT * q for p, q in zip(probs, more, strict=True)]
            self._rescaled = rescaled
        return self._snapped(frames, x, probs) if self.cfg.boundary_snap else probs

    def _second_side(self, plate_side: int) -> int:
        """The long side of the second pass (0: none): Second Pass Size, but never above the plate's own long
        side, where an enlarged plate would show the network nothing new and cost time."""
        side = self.cfg.second_pass_size
        if side > plate_side:
            if not self._warned_second_cap:
                log.info("second pass at the plate's %d px long side, not the %d px asked for", plate_side, side)
                self._warned_second_cap = True
            side = plate_side
        return side

    def _probabilities(self, frames: list[np.ndarray], plates: torch.Tensor, x: torch.Tensor,
                       out_size: tuple[int, int], model: torch.nn.Module | None = None) -> list[np.ndarray]:
        """The probabilities at ``out_size`` of ``x``, the frames at the size ``model`` (by default the
        processing size's) runs at."""
        # One pass without edges is upsampled as logits; otherwise as probabilities, since flip averaging
        # averages probabilities (not the logits, so one confident view cannot outvote the other).
        as_logits = not (self.cfg.edge_refine or self.cfg.flip_average)
        scores = self._regrown(plates, x, self._scores(model or self.model, x, as_logits), as_logits)
        if self.cfg.edge_refine:
            return self._refined(frames, plates, scores, out_size)
        if scores.shape[-2:] != out_size:
            scores = F.interpolate(scores, size=out_size, mode="bilinear", align_corners=False)
        return self._per_frame(self._object_probabilities(scores) if as_logits else scores)

    def _scores(self, model: torch.nn.Module, x: torch.Tensor, as_logits: bool) -> torch.Tensor:
        """(N, K, h, w) at ``x``'s size: the objects' probabilities, the mean of the frame's and its mirror
        image's with flip averaging (one batch; the mirrored answer flipped back); else, ``as_logits``, the
        network's logits."""
        if self.cfg.flip_average:
            both = self._object_probabilities(model(torch.cat([x, x.flip(-1)])).float())
            n = x.shape[0]
            return 0.5 * (both[:n] + both[n:].flip(-1))
        logits = model(x).float()
        return logits if as_logits else self._object_probabilities(logits)

    def _regrown(self, plates: torch.Tensor, x: torch.Tensor, scores: torch.Tensor, as_logits: bool) -> torch.Tensor:
        """``scores`` with each frame whose object outgrew what fine-tuning showed (``grown_scale``) replaced by
        the frame segmented at the smaller scale, brought back to the processing size, where that answer's
        outline follows the plate's edges better than the processing size's (``outline_strength``): a matte
        the network cut short inside a grown object ends where the plate shows no edge, while one that already
        held the whole object (a rider seen whole) would only lose its thin parts. The object is outlined by
        its largest part on the processing size's matte (with several objects, their union's)."""
        c = self.cfg
        self._rescaled = [None] * scores.shape[0]
        if not c.grown_rescale or self._taught <= 0:
            return scores
        long_side, (h, w) = max(x.shape[-2:]), plates.shape[-2:]
        for i, matte in enumerate(self._beliefs(scores, as_logits) > c.threshold):
            extent = largest_part_extent(matte)
            scale = grown_scale(extent, self._taught)
            if scale == 1.0:
                continue
            side = round(long_side * scale)
            small = resize(plates[i:i + 1], fit_long_side(h, w, side)).to(self.dtype)
            again = self._scores(self._model_at(side), small.contiguous(memory_format=torch.channels_last), as_logits)
            again = F.interpolate(again, size=scores.shape[-2:], mode="bilinear", align_corners=False)
            strength = edge_strength(x[i].float().permute(1, 2, 0).cpu().numpy())
            before = outline_strength(matte, strength)
            after = outline_strength(self._beliefs(again, as_logits)[0] > c.threshold, strength)
            if after <= before:
                log.debug("the object spans %.2f of the frame, taught up to %.2f; at %d px its outline follows the "
                          "plate's edges less (%.3f against %.3f): kept", extent, self._taught, side, after, before)
                continue
            scores[i] = again[0]
            self.regrown += 1
            self._rescaled[i] = side
            log.debug("the object spans %.2f of the frame, taught up to %.2f: segmented at %d px", extent,
                      self._taught, side)
        return scores

    def _beliefs(self, scores: torch.Tensor, as_logits: bool) -> np.ndarray:
        """(N, h, w): the probability that a pixel is any object, from ``scores`` (logits when ``as_logits``), as
        ``matte`` decides it."""
        probs = self._object_probabilities(scores) if as_logits else scores
        belief = probs.sum(dim=1).clamp(max=1.0) if self._exclusive else probs.amax(dim=1)
        return belief.float().cpu().numpy()

    @staticmethod
    def _per_frame(prob: torch.Tensor) -> list[np.ndarray]:
        """(N, K, H, W) -> N arrays: (H, W) for one object, (K, H, W) for several."""
        prob = prob.cpu().numpy()
        return list(prob[:, 0]) if prob.shape[1] == 1 else list(prob)

    def _refined(self, frames: list[np.ndarray], plates: torch.Tensor, prob: torch.Tensor,
                 out_size: tuple[int, int]) -> list[np.ndarray]:
        """The probability ``prob`` at the processing size, upsampled to ``out_size`` with each frame as the
        guide: on a CPU frame by frame in OpenCV, elsewhere the batch on the device (``plates``: the frames
        there)."""
        if plates.shape[-2:] != out_size and not self._warned_small_guide:
            log.warning("edge refinement: frames of %s guide a %s matte; pass the plate at full size "
                        "for plate-resolution edges", tuple(plates.shape[-2:]), out_size)
            self._warned_small_guide = True
        radius = EDGE_RADIUS * 0.5 * (out_size[-2] / prob.shape[-2] + out_size[-1] / prob.shape[-1])
        if self._edges_on_device:
            if plates.shape[-2:] != out_size:
                plates = F.interpolate(plates, size=out_size, mode="bilinear", align_corners=False)
            return self._per_frame(guided_upsample_tensor(prob, plates, radius, EDGE_EPS))
        out = []
        for small, rgb in zip(prob.cpu().numpy(), frames, strict=True):
            if rgb.shape[:2] != out_size:
                rgb = cv2.resize(rgb, out_size[::-1], interpolation=cv2.INTER_LINEAR)
            up = [guided_upsample(p, rgb, radius, EDGE_EPS) for p in small]
            out.append(up[0] if len(up) == 1 else np.stack(up))
        return out

    def contour_maps(self, x: torch.Tensor) -> np.ndarray:
        """HED contour probability (N, h, w) for the network's input ``x`` (N, 3, h, w)."""
        if self._contours is None:
            self._contours = ContourDetector(self.device, self.dtype)
        return self._contours(x)[:, 0].cpu().numpy()

    def _snapped(self, frames: list[np.ndarray], x: torch.Tensor, probs: list[np.ndarray]) -> list[np.ndarray]:
        """``probs`` with their edges snapped to the contours of the frames (``snapping.py``): contours at the
        processing size, regions and the vote at the probabilities' size, coloured by the frames."""
        out = []
        for contours, rgb, prob in zip(self.contour_maps(x), frames, probs, strict=True):
            size = prob.shape[-2:]
            scale = 0.5 * (size[0] / contours.shape[0] + size[1] / contours.shape[1])
            if contours.shape != size:
                contours = cv2.resize(contours, size[::-1], interpolation=cv2.INTER_LINEAR)
            if rgb.shape[:2] != size:
                rgb = cv2.resize(rgb, size[::-1], interpolation=cv2.INTER_AREA if rgb.shape[0] > size[0]
                                 else cv2.INTER_LINEAR)
            out.append(snap_probability(prob, contours, rgb, self.cfg.threshold, self.cfg.snap, scale,
                                        exclusive=self._exclusive))
        return out

    def matte(self, prob: np.ndarray) -> np.ndarray:
        """Soft or hard matte from a probability map, as the config asks.

        The soft matte is the probability re-centred on the threshold (see ``recentre``), so it crosses
        0.5 exactly where the hard matte's edge is: the threshold moves the edge of both. With an edge grow
        or softness the matte is instead ``alpha_from_probability``'s: 1 in the core, 0 outside, a ramp
        ``edge_softness`` wide across the moved edge; there ``soft_matte`` only matters at softness 0, where
        it anti-aliases the (moved) hard edge.
        """
        if prob.ndim == 3 and self.cfg.overlap:  # several objects, each decided on its own probability
            return np.stack([self.matte(p) for p in prob])
        if prob.ndim == 3:
            # Several objects: whether a pixel is an object at all is decided on the objects' summed
            # probability (1 - the background's), exactly as for one object; which object, by the most
            # likely. Two objects that share a pixel's belief do not leave it out. With a network per
            # object (not exclusive) on the most probable object's own probability, as in the paper.
            belief = np.clip(prob.sum(axis=0), 0.0, 1.0) if self._exclusive else prob.max(axis=0)
            union = self.matte(belief)
            winner = prob.argmax(axis=0)
            return union[None] * (np.arange(len(prob))[:, None, None] == winner[None])
        c = self.cfg
        prob = hold_cores(prob, c.threshold, c.core_threshold)
        if c.edge_grow != 0 or c.edge_softness != 0:
            return alpha_from_probability(prob, c.threshold, c.edge_softness, c.edge_grow, antialias=c.soft)
        if self.cfg.soft:
            return recentre(prob, self.cfg.threshold)
        return (prob > self.cfg.threshold).astype(np.float32)

    def predict(self, rgb: np.ndarray) -> np.ndarray:
        """The matte of one frame."""
        return self.matte(self.probabilities([rgb])[0])

    def stream(
        self,
        frames: Iterable[tuple[Any, np.ndarray]],
        total: int | None = None,
        progress: ProgressFn | None = None,
        cancel: CancelFlag = None,
        out_size: tuple[int, int] | None = None,
    ) -> Iterator[tuple[Any, np.ndarray]]:
        """(key, rgb) in -> (key, matte) out, in order, one batch in memory at a time.

        ``out_size`` (h, w): the size of the mattes when the frames come in smaller (see ``probabilities``).

        Cancel is honoured between batches (``Cancelled`` is raised), so mattes already yielded are whole.
        While a frame is handed out, ``rescaled_to`` says at which long side it was segmented again (Rescale
        Grown Objects), or None.
        """
        t0 = time.monotonic()
        done = 0
        batch: list[tuple[Any, np.ndarray]] = []

        def flush() -> Iterator[tuple[Any, np.ndarray]]:
            nonlocal done
            probs = self.probabilities([rgb for _, rgb in batch], out_size)
            rescaled = self._rescaled if len(self._rescaled) == len(batch) else [None] * len(batch)
            for (key, _), prob, side in zip(batch, probs, rescaled, strict=True):
                self.rescaled_to = side
                yield key, self.matte(prob)
            self.rescaled_to = None
            done += len(batch)
            batch.clear()
            if progress is not None:
                progress(Progress.timed("infer", done, total or done, time.monotonic() - t0))

        for key, rgb in frames:
            if is_cancelled(cancel):
                raise Cancelled(f"inference cancelled after {done} frames")
            if batch and rgb.shape != batch[0][1].shape:
                yield from flush()  # sizes differ: never mix them in one batch
            batch.append((key, rgb))
            if len(batch) >= self.cfg.batch_size:
                yield from flush()
        if batch:
            yield from flush()
