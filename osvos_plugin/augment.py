"""Augmentations for one-shot and parent training: the paper's flips and scales, plus a random crop,
a small rotation and a light colour jitter, which help the object survive motion and lighting changes.

Everything here works on tensors (N, C, H, W) with a seeded ``torch.Generator``, so a seed repeats
the same sequence of samples on one device.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, replace

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from .imaging import fit_long_side, resize, to_tensor_image, to_tensor_mask

log = logging.getLogger(__name__)

# The share of the frame from which a painted object counts as large: the network at the plate's 854 wins on
# objects painted this large and loses on smaller ones, which tend to come closer later (Large Object Scale,
# docs/experiments.md sessions 10 and 19); close crops win on the smaller ones and lose on these (session 25).
LARGE_OBJECT_SHARE = 0.04


@dataclass
class AugmentConfig:
    scales: tuple[float, ...] = (0.5, 0.8, 1.0)  # the paper's; a scale above 1 zooms in (a window of the 1.0 size)
    flip: bool = True
    crop: float = 0.8  # a crop keeps at least this share of each side (1.0 = no crop)
    crop_max: float = 1.0  # ... and at most this share (below 1: every sample is cut, and a step costs less)
    crop_on_object: bool = False  # the crop holds a random pixel of the object (the first ``objects`` channels)
    # KeyframeSampler only: the samples at scale 1 and above (full size, zoomed in), which cost the most, cut to
    # keep between these shares of each side around the object (0: cut as the others); those below 1 show the
    # whole frame's background at a fraction of the cost. Only for keyframes whose objects cover less than
    # ``close_crop_below`` of the frame.
    close_crop: float = 0.0
    close_crop_max: float = 1.0
    close_crop_below: float = 1.0
    rotate_deg: float = 0.0  # maximal rotation either way
    # Smooth non-rigid warp (0 = off): each sample is bent by a random displacement field (a 4x4 grid of shifts
    # of up to this share of each side, smoothly interpolated), so the network sees the object's shape change
    # as a pose does (wings opening, a rider leaning): Lucid Data Dreaming's deformations, without its compositing.
    warp: float = 0.0
    colour: float = 0.1  # brightness/contrast/saturation jitter amplitude (0 = off)
    # Zoom that follows the object's size (KeyframeSampler only; 0 = the scales as given). A small object
    # tends to come closer (a car driving up, a bird taking off), so the largest zoom is raised until the
    # object's box would span this share of the frame (the square root of its share of the area), up to
    # ``zoom_max``; the zoom scales in between are spread evenly on a log scale.
    zoom_to: float = 0.0
    zoom_max: float = 4.0
    # Object moved (KeyframeSampler only; 0 = off): this share of the samples shows the painted object shifted
    # by up to ``move_max`` of the frame's sides over the keyframe's background with the object's own place
    # filled in (inpainted), so the network learns that what lies where the object was painted is background,
    # not the object (a look-alike ground, an object that moves away from its painted place).
    move: float = 0.0
    move_max: float = 0.25


def _uniform(g: torch.Generator, lo: float, hi: float) -> float:
    return lo + (hi - lo) * torch.rand((), generator=g).item()


def augment_pair(
    image: torch.Tensor, mask: torch.Tensor, cfg: AugmentConfig, g: torch.Generator, objects: int | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """One random augmentation of an (1, 3, H, W) image and its (1, C, H, W) mask (already scaled), whose first
    ``objects`` channels (all unless given) are objects, the rest carried along (a loss weight)."""
    if cfg.flip and torch.rand((), generator=g).item() < 0.5:
        image, mask = image.flip(-1), mask.flip(-1)
    h, w = image.shape[-2:]
    if cfg.rotate_deg > 0:
        angle = math.radians(_uniform(g, -cfg.rotate_deg, cfg.rotate_deg))
        cos, sin = math.cos(angle), math.sin(angle)
        theta = torch.tensor([[cos, -sin * h / w, 0.0], [sin * w / h, cos, 0.0]], dtype=image.dtype)[None]
        grid = F.affine_grid(theta.to(image.device), list(image.shape), align_corners=False)
        image = F.grid_sample(image, grid, mode="bilinear", padding_mode="reflection", align_corners=False)
        mask = F.grid_sample(mask, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    if cfg.warp > 0:
        image, mask = _warped(image, mask, cfg.warp, g)
    if cfg.crop < 1.0:
        top = max(cfg.crop, min(1.0, cfg.crop_max))
        ch = min(h, max(16, round(h * _uniform(g, cfg.crop, top))))
        cw = min(w, max(16, round(w * _uniform(g, cfg.crop, top))))
        y0, x0 = _crop_origin(mask[0, :objects].amax(0) if cfg.crop_on_object else None, (h, w), (ch, cw), g)
        image, mask = image[..., y0:y0 + ch, x0:x0 + cw], mask[..., y0:y0 + ch, x0:x0 + cw]
    if cfg.colour > 0:
        a = cfg.colour
        brightness = _uniform(g, -a, a)
        contrast = _uniform(g, 1 - a, 1 + a)
        saturation = _uniform(g, 1 - a, 1 + a)
        grey = image.mean(dim=1, keepdim=True)
        image = grey + (image - grey) * saturation
        image = (image - image.mean()) * contrast + image.mean() + brightness
        image = image.clamp(0.0, 1.0)
    return image.contiguous(), mask.contiguous()


def _warped(image: torch.Tensor, mask: torch.Tensor, amount: float, g: torch.Generator
            ) -> tuple[torch.Tensor, torch.Tensor]:
    """``image`` and ``mask`` bent by one smooth random displacement field of up to ``amount`` of each side."""
    h, w = image.shape[-2:]
    shifts = (torch.rand((1, 2, 4, 4), generator=g) * 2.0 - 1.0) * (2.0 * amount)  # grid units span 2 a side
    field = F.interpolate(shifts, size=(h, w), mode="bicubic", align_corners=True).permute(0, 2, 3, 1)
    ident = F.affine_grid(torch.eye(2, 3, dtype=torch.float32)[None], [1, 1, h, w], align_corners=False)
    grid = (ident + field).to(image.device, image.dtype)
    image = F.grid_sample(image, grid, mode="bilinear", padding_mode="reflection", align_corners=False)
    mask = F.grid_sample(mask, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    return image, mask


def _crop_origin(
    anchor: torch.Tensor | None, size: tuple[int, int], crop: tuple[int, int], g: torch.Generator
) -> tuple[int, int]:
    """Top-left corner of a ``crop`` (h, w) of an image of ``size``: anywhere, or, given an ``anchor`` map
    (H, W) with pixels over 0.5, around a random one of those (anywhere when it has none)."""
    (h, w), (ch, cw) = size, crop
    y_lo, y_hi, x_lo, x_hi = 0, h - ch, 0, w - cw
    if anchor is not None:
        ys, xs = torch.nonzero(anchor > 0.5, as_tuple=True)
        if len(ys):
            k = int(torch.randint(0, len(ys), (), generator=g))
            ay, ax = int(ys[k]), int(xs[k])
            y_lo, y_hi = max(0, ay - ch + 1), min(h - ch, ay)
            x_lo, x_hi = max(0, ax - cw + 1), min(w - cw, ax)
    return int(torch.randint(y_lo, y_hi + 1, (), generator=g)), int(torch.randint(x_lo, x_hi + 1, (), generator=g))


def object_extent(mask: np.ndarray) -> float:
    """Square root of the share of the frame that the object's bounding box covers (0 for an empty mask).
    Several objects ((K, H, W) masks): the box around all of them."""
    mask = np.asarray(mask)
    if mask.ndim == 3:
        mask = mask.max(axis=0)
    ys, xs = np.nonzero(mask > 0.5)
    if len(ys) == 0:
        return 0.0
    box = (int(ys.max() - ys.min()) + 1) * (int(xs.max() - xs.min()) + 1)
    return math.sqrt(box / (mask.shape[0] * mask.shape[1]))


def object_scales(mask: np.ndarray, cfg: AugmentConfig) -> tuple[float, ...]:
    """The scales to train a keyframe at: ``cfg.scales``, with the zoom scales (those above 1) reaching up
    to the zoom at which the object spans ``cfg.zoom_to`` of the frame (see AugmentConfig)."""
    zooms = sorted(s for s in cfg.scales if s > 1.0)
    extent = object_extent(mask)
    if cfg.zoom_to <= 0 or not zooms or extent == 0.0:
        return tuple(cfg.scales)
    top = min(cfg.zoom_max, cfg.zoom_to / extent)
    if top <= zooms[-1]:
        return tuple(cfg.scales)
    spread = np.geomspace(zooms[0], top, len(zooms)) if len(zooms) > 1 else np.array([top])
    return tuple(s for s in cfg.scales if s <= 1.0) + tuple(round(float(z), 3) for z in spread)


def taught_extent(masks: list[np.ndarray], cfg: AugmentConfig) -> float:
    """The largest extent (``object_extent``) at which fine-tuning shows the object painted as ``masks`` (a
    mask per keyframe): each mask's extent times the largest of its training scales (``object_scales``).
    An object that later spans much more of the frame than this is one the network never saw so large."""
    return max((object_extent(m) * max(object_scales(m, cfg)) for m in masks), default=0.0)


def largest_part_extent(matte: np.ndarray) -> float:
    """``object_extent`` of the largest connected part of a boolean ``matte`` (H, W) alone: a false positive
    is mostly a part of its own, and would stretch the whole matte's box."""
    n, _, stats, _ = cv2.connectedComponentsWithStats(matte.astype(np.uint8), connectivity=8)
    if n <= 1:
        return 0.0
    k = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    return math.sqrt(stats[k, cv2.CC_STAT_WIDTH] * stats[k, cv2.CC_STAT_HEIGHT] / matte.size)


def object_removed(rgb: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """``rgb`` (H, W, 3) in [0, 1] with the object (``mask`` (H, W) or (K, H, W), grown by a margin for its soft
    edge) filled in from its surroundings (OpenCV's Telea inpainting, at most 240 px a side: the fill is smooth
    anyway, and inpainting cost grows with the hole)."""
    union = np.asarray(mask, np.float32)
    union = union.max(axis=0) if union.ndim == 3 else union
    h, w = union.shape
    margin = max(1, round(0.015 * max(h, w)))
    hole = cv2.dilate((union > 0.05).astype(np.uint8), np.ones((2 * margin + 1,) * 2, np.uint8))
    if not hole.any():
        return np.asarray(rgb, np.float32)
    scale = min(1.0, 240 / max(h, w))
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    small = cv2.resize((np.clip(rgb, 0, 1) * 255).astype(np.uint8), size, interpolation=cv2.INTER_AREA)
    small_hole = cv2.resize(hole, size, interpolation=cv2.INTER_NEAREST)
    small_hole = cv2.dilate(small_hole, np.ones((3, 3), np.uint8))
    filled = cv2.inpaint(small, small_hole, 3, cv2.INPAINT_TELEA)
    filled = cv2.resize(filled, (w, h), interpolation=cv2.INTER_LINEAR).astype(np.float32) / 255
    keep = hole[..., None] == 0
    return np.where(keep, np.asarray(rgb, np.float32), filled)


class KeyframeSampler:
    """Random augmented samples from one or more painted keyframes, pre-scaled once per scale.

    A keyframe is (rgb, mask), or (rgb, mask, weight) where pixels of weight 0 are left out of the loss
    (pseudo-labels; see ``selftrain``). The weight rides along as an extra mask channel, so every
    geometric augmentation moves it with the mask, and the sampler then gives (image, mask, weight).
    ``mask`` is (H, W), or (K, H, W) for K objects (every keyframe the same K; an object not on a
    keyframe is all zero there): the sample's mask then has K channels.
    """

    def __init__(
        self,
        keyframes: list[tuple[np.ndarray, ...]],
        long_side: int,
        cfg: AugmentConfig,
        device: torch.device,
        seed: int = 0,
    ) -> None:
        if not keyframes:
            raise ValueError("fine-tuning needs at least one painted keyframe")
        self.cfg = cfg
        self.close = cfg if cfg.close_crop <= 0 else replace(
            cfg, crop=cfg.close_crop, crop_max=cfg.close_crop_max, crop_on_object=True)
        self.device = device
        self.g = torch.Generator().manual_seed(seed)
        self.weighted = any(len(kf) > 2 for kf in keyframes)
        self.channels = keyframes[0][1].shape[0] if np.ndim(keyframes[0][1]) == 3 else 1
        # per keyframe: the scale-1.0 size (the window of a zoomed-in variant), then (image, mask, background)
        # per scale; the background (the object's place filled in) only where samples move the object
        self.closes: list[AugmentConfig] = []  # per keyframe: how its samples at scale 1 and above are cut
        self.variants: list[tuple[tuple[int, int], list[tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]]]] = []
        moves = cfg.move > 0 and not self.weighted
        for rgb, mask, *weight in keyframes:
            img_t = to_tensor_image(rgb)
            mask_t = to_tensor_mask(mask) if np.ndim(mask) == 2 else torch.from_numpy(
                np.ascontiguousarray(mask, dtype=np.float32))[None]
            if self.weighted:
                w_t = to_tensor_mask(weight[0]) if weight else torch.ones_like(mask_t)
                mask_t = torch.cat([mask_t, w_t], dim=1)
            h, w = fit_long_side(*img_t.shape[-2:], long_side)
            per_scale = []
            scales = object_scales(mask, cfg)
            if scales != tuple(cfg.scales):
                log.info("small object (%.2f of the frame): zooming in up to %gx", object_extent(mask), max(scales))
            background = to_tensor_image(object_removed(rgb, mask)) if moves else None
            for s in scales:
                size = (max(16, round(h * s)), max(16, round(w * s)))
                bg = None if background is None else resize(background, size).to(device)
                per_scale.append((resize(img_t, size).to(device), resize(mask_t, size).to(device), bg))
            self.variants.append(((h, w), per_scale))
            union = np.asarray(mask).max(axis=0) if np.ndim(mask) == 3 else np.asarray(mask)
            self.closes.append(self.close if float((union > 0.5).mean()) < cfg.close_crop_below else cfg)

    def __call__(self, step: int) -> tuple[torch.Tensor, ...]:
        window, per_scale = self.variants[step % len(self.variants)]
        image, mask, background = per_scale[int(torch.randint(0, len(per_scale), (), generator=self.g))]
        cfg = self.closes[step % len(self.variants)] if image.shape[-2] >= window[0] else self.cfg  # scale >= 1
        if background is not None and torch.rand((), generator=self.g).item() < self.cfg.move:
            image, mask = self._moved(image, mask, background)
        image, mask = self._window(image, mask, window)
        image, mask = augment_pair(image, mask, cfg, self.g, self.channels)
        image = image.contiguous(memory_format=torch.channels_last)
        if self.weighted:
            # a weight blurred by resizing or rotation marks the edge of an ignored region: ignore it too
            k = self.channels
            return image, mask[:, :k].contiguous(), (mask[:, k:k + 1] > 0.999).float()
        return image, mask

    def _moved(self, image: torch.Tensor, mask: torch.Tensor,
               background: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The object (every object's mask) shifted by a random offset over ``background``."""
        h, w = image.shape[-2:]
        m = self.cfg.move_max
        dy, dx = round(_uniform(self.g, -m, m) * h), round(_uniform(self.g, -m, m) * w)
        moved_img, moved_mask = torch.zeros_like(image), torch.zeros_like(mask)
        src_y, dst_y = slice(max(0, -dy), h - max(0, dy)), slice(max(0, dy), h - max(0, -dy))
        src_x, dst_x = slice(max(0, -dx), w - max(0, dx)), slice(max(0, dx), w - max(0, -dx))
        moved_img[..., dst_y, dst_x] = image[..., src_y, src_x]
        moved_mask[..., dst_y, dst_x] = mask[..., src_y, src_x]
        alpha = moved_mask.amax(dim=1, keepdim=True).clamp(0.0, 1.0)
        return background * (1 - alpha) + moved_img * alpha, moved_mask

    def _window(
        self, image: torch.Tensor, mask: torch.Tensor, window: tuple[int, int]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """A zoomed-in variant (scale above 1) is cut to a window of the scale-1.0 size around a random
        pixel of the object, so that every zoomed sample shows (part of) it."""
        h, w = image.shape[-2:]
        wh, ww = min(h, window[0]), min(w, window[1])
        if (wh, ww) == (h, w):
            return image, mask
        y0, x0 = _crop_origin(mask[0, :self.channels].amax(0), (h, w), (wh, ww), self.g)  # around any object
        return image[..., y0:y0 + wh, x0:x0 + ww], mask[..., y0:y0 + wh, x0:x0 + ww]
