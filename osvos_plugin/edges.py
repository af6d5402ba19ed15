"""Compositing-grade edges: the matte's edge decided at the plate's resolution, and a real alpha.

The network runs at the processing size, so its probability upsampled bilinearly puts the edge wherever
the blow-up smears it. ``guided_upsample`` lets the full-resolution plate decide where the edge goes (a
fast guided filter), and ``alpha_from_probability`` turns a probability into an alpha that is exactly 1 in
the object's core, exactly 0 outside and ramps only across the edge, which can be grown, shrunk, feathered
or anti-aliased. Both are pure per-frame functions (no temporal state), so they add no flicker beyond the
network's own. The guided filter has a numpy/OpenCV form (the fastest on a CPU) and a torch one for a
batch on the network's device (a GPU), which agree to within float32.
"""

from __future__ import annotations

import cv2
import numpy as np
import torch
import torch.nn.functional as F


def _box(x: np.ndarray, r: int) -> np.ndarray:
    """Mean over a (2r+1)^2 window, edges mirrored (so the border is not pulled towards 0)."""
    return cv2.boxFilter(x, -1, (2 * r + 1, 2 * r + 1), normalize=True, borderType=cv2.BORDER_REFLECT)


_PAIRS = ((0, 0), (0, 1), (0, 2), (1, 1), (1, 2), (2, 2))


def _solve3(s: dict, cx, cy, cz):  # noqa: ANN001, ANN202 - numpy arrays or torch tensors alike
    """(cov + eps) ^ -1 @ (cx, cy, cz) per pixel, the symmetric 3x3 inverse in closed form (cofactors);
    ``s``: the six distinct entries, keyed by ``_PAIRS``."""
    c00 = s[1, 1] * s[2, 2] - s[1, 2] * s[1, 2]
    c01 = s[0, 2] * s[1, 2] - s[0, 1] * s[2, 2]
    c02 = s[0, 1] * s[1, 2] - s[0, 2] * s[1, 1]
    c11 = s[0, 0] * s[2, 2] - s[0, 2] * s[0, 2]
    c12 = s[0, 1] * s[0, 2] - s[0, 0] * s[1, 2]
    c22 = s[0, 0] * s[1, 1] - s[0, 1] * s[0, 1]
    det = s[0, 0] * c00 + s[0, 1] * c01 + s[0, 2] * c02
    return ((c00 * cx + c01 * cy + c02 * cz) / det, (c01 * cx + c11 * cy + c12 * cz) / det,
            (c02 * cx + c12 * cy + c22 * cz) / det)


def guided_upsample(prob_small: np.ndarray, guide_rgb: np.ndarray, radius: float, eps: float) -> np.ndarray:
    """``prob_small`` (h, w) brought to the guide's (H, W) size with the guide deciding where its edges go.

    The fast guided filter (He et al.): the local linear model ``q = a * I + b`` is fitted at the small
    size, between the guide shrunk to it and the probability; its coefficients are smoothed, upsampled
    bilinearly and applied to the full-resolution guide, so the edge follows the plate's edge at full
    resolution while flat regions keep the probability. ``guide_rgb`` is (H, W, 3) RGB or (H, W) grey in
    [0, 1] (values outside are clipped, so scene-linear highlights do not dominate the fit); ``radius``
    is in plate pixels, ``eps`` (on the [0, 1] scale) is how much contrast the guide needs before it moves
    the edge. Returns float32 in [0, 1].
    """
    prob_small = np.asarray(prob_small, np.float32)
    h, w = prob_small.shape
    guide = np.clip(np.asarray(guide_rgb, np.float32), 0.0, 1.0)
    H, W = guide.shape[:2]
    small = guide if (H, W) == (h, w) else cv2.resize(guide, (w, h), interpolation=cv2.INTER_AREA)
    r = max(1, int(round(radius * 0.5 * (w / W + h / H))))  # the radius at the small size
    p = prob_small  # float32 throughout, as on the GPU: the variances stay far above float32's rounding
    if small.ndim == 2:
        i = small
        mean_i, mean_p = _box(i, r), _box(p, r)
        a = (_box(i * p, r) - mean_i * mean_p) / (_box(i * i, r) - mean_i * mean_i + eps)
        b = mean_p - a * mean_i
    else:
        i = small
        mean_i, mean_p = _box(i, r), _box(p, r)  # (h, w, 3), (h, w)
        cov_ip = _box(i * p[..., None], r) - mean_i * mean_p[..., None]
        # the guide's 3x3 covariance in each window (+ eps on the diagonal)
        cov_ii = {(m, n): _box(i[..., m] * i[..., n], r) - mean_i[..., m] * mean_i[..., n] + (eps if m == n else 0.0)
                  for m, n in _PAIRS}
        a = np.stack(_solve3(cov_ii, cov_ip[..., 0], cov_ip[..., 1], cov_ip[..., 2]), axis=-1)
        b = mean_p - np.sum(a * mean_i, axis=-1)
    mean_a, mean_b = _box(a, r), _box(b, r)
    if (H, W) != (h, w):
        mean_a = cv2.resize(mean_a, (W, H), interpolation=cv2.INTER_LINEAR)
        mean_b = cv2.resize(mean_b, (W, H), interpolation=cv2.INTER_LINEAR)
    if guide.ndim == 2:
        q = cv2.multiply(mean_a, guide)
    else:  # the per-channel products summed over the channels, in OpenCV (numpy's strided sum is slow here)
        q = cv2.transform(cv2.multiply(mean_a, guide), np.ones((1, 3), np.float32))
    q = cv2.add(q, mean_b)
    return np.clip(q, 0.0, 1.0, out=q).astype(np.float32, copy=False)


def _area_matrix(n_out: int, n_in: int, device: torch.device) -> torch.Tensor:
    """(n_out, n_in) weights of an area-average shrink along one axis: each output pixel the mean of the input
    pixels it covers, fractions counted (what OpenCV's INTER_AREA does, so both paths see the same guide)."""
    s = n_in / n_out
    lo = torch.arange(n_out, dtype=torch.float64)[:, None] * s
    j = torch.arange(n_in, dtype=torch.float64)[None, :]
    overlap = (torch.minimum(lo + s, j + 1) - torch.maximum(lo, j)).clamp_min(0)
    return (overlap / s).to(device=device, dtype=torch.float32)


def _box_tensor(x: torch.Tensor, r: int) -> torch.Tensor:
    """``_box`` for (N, C, h, w) tensors: the window mean, edges mirrored with the edge pixel repeated."""
    h, w = x.shape[-2:]

    def mirrored(n: int) -> torch.Tensor:  # source index of each padded position (any r, even r >= n)
        i = torch.remainder(torch.arange(-r, n + r, device=x.device), 2 * n)
        return torch.where(i >= n, 2 * n - 1 - i, i)

    return F.avg_pool2d(x[..., mirrored(h)[:, None], mirrored(w)[None, :]], 2 * r + 1, stride=1)


def guided_upsample_tensor(prob_small: torch.Tensor, guide: torch.Tensor, radius: float, eps: float) -> torch.Tensor:
    """``guided_upsample`` for a batch, on the tensors' device: probabilities (N, K, h, w) (K objects) and
    guides (N, 3 or 1, H, W) in, (N, K, H, W) float32 in [0, 1] out, to within float32 of it. On a GPU it
    keeps the plate-resolution edge from becoming the render's bottleneck on the CPU (issue 20)."""
    n, k, h, w = prob_small.shape
    guide = guide.float().clamp(0.0, 1.0)
    c, (H, W) = guide.shape[1], guide.shape[-2:]
    small = guide if (H, W) == (h, w) else torch.einsum(
        "yh,nchw,xw->ncyx", _area_matrix(h, H, guide.device), guide, _area_matrix(w, W, guide.device))
    r = max(1, int(round(radius * 0.5 * (w / W + h / H))))
    p = prob_small.float()
    if c == 1:
        stats = _box_tensor(torch.cat([small, p, small * p, small * small], dim=1), r)
        mean_i, mean_p, m_ip, m_ii = stats[:, :1], stats[:, 1:1 + k], stats[:, 1 + k:1 + 2 * k], stats[:, -1:]
        a = ((m_ip - mean_i * mean_p) / (m_ii - mean_i * mean_i + eps))[:, :, None]  # (n, k, 1, h, w)
    else:
        ip = (small[:, None] * p[:, :, None]).reshape(n, 3 * k, h, w)
        ii = torch.stack([small[:, m] * small[:, q] for m, q in _PAIRS], dim=1)
        stats = _box_tensor(torch.cat([small, p, ip, ii], dim=1), r)
        mean_i, mean_p = stats[:, :3], stats[:, 3:3 + k]
        cov_ip = stats[:, 3 + k:3 + 4 * k].reshape(n, k, 3, h, w) - mean_i[:, None] * mean_p[:, :, None]
        cov_ii = {(m, q): (stats[:, 3 + 4 * k + j] - mean_i[:, m] * mean_i[:, q] + (eps if m == q else 0.0))[:, None]
                  for j, (m, q) in enumerate(_PAIRS)}
        a = torch.stack(_solve3(cov_ii, cov_ip[:, :, 0], cov_ip[:, :, 1], cov_ip[:, :, 2]), dim=2)
    b = mean_p - (a * mean_i[:, None]).sum(dim=2)
    ab = _box_tensor(torch.cat([a.reshape(n, k * c, h, w), b], dim=1), r)
    if (H, W) != (h, w):
        ab = F.interpolate(ab, size=(H, W), mode="bilinear", align_corners=False)
    q = (ab[:, :k * c].reshape(n, k, c, H, W) * guide[:, None]).sum(dim=2) + ab[:, k * c:]
    return q.clamp_(0.0, 1.0)


def _band_distance(prob: np.ndarray, threshold: float, reach: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(inside mask, flat indices of the pixels within about ``reach`` px of the contour, their signed
    distance): the work is done only in that band, the rest of the alpha is plainly 0 or 1."""
    p = np.ascontiguousarray(prob, np.float32)
    inside = p > threshold
    h, w = p.shape
    # nearest pixel across the edge (approximate, DIST_MASK_5: the distance itself is recomputed exactly)
    dist_in, lab_in = cv2.distanceTransformWithLabels(inside.view(np.uint8), cv2.DIST_L2, cv2.DIST_MASK_5,
                                                      labelType=cv2.DIST_LABEL_PIXEL)
    dist_out, lab_out = cv2.distanceTransformWithLabels((~inside).view(np.uint8), cv2.DIST_L2, cv2.DIST_MASK_5,
                                                        labelType=cv2.DIST_LABEL_PIXEL)
    dist = np.where(inside, dist_in, dist_out).ravel()
    sel = np.flatnonzero(dist <= reach)
    ins = inside.ravel()[sel]
    # the padded image, indexed flat: a pixel's 4-neighbours are +-1 and +-(w + 2) away
    wp = w + 2
    pad, pin = np.pad(p, 1, mode="edge").ravel(), np.pad(inside, 1, mode="edge").ravel()
    ys, xs = np.divmod(sel, w)
    pp = (ys + 1) * wp + xs + 1
    pv = pad[pp]
    off = np.full(sel.shape, np.inf, np.float32)  # boundary pixels: distance to the contour (<= 1 px)
    with np.errstate(divide="ignore", invalid="ignore"):
        for step in (-wp, wp, -1, 1):
            across = pin[pp + step] != ins
            off = np.where(across, np.minimum(off, (pv - threshold) / (pv - pad[pp + step])), off)
        grad = 0.5 * np.hypot(pad[pp + 1] - pad[pp - 1], pad[pp + wp] - pad[pp - wp])
        boundary = np.isfinite(off)
        off = np.where(boundary, np.minimum(off, np.abs(pv - threshold) / grad), 1.0)
    off = np.clip(off, 0.0, 1.0).astype(np.float32)
    # every other pixel: the exact distance to its nearest pixel across, less that pixel's own offset
    sd = np.empty(sel.shape, np.float32)
    for side, labels in ((ins, lab_in), (~ins, lab_out)):
        lab = labels.ravel()
        lut = np.full(int(lab.max()) + 1, -1, np.int64)  # label -> band position of the pixel it names
        lut[lab[sel[~side]]] = np.flatnonzero(~side)  # the zero pixels of this transform carry their own label
        near = lut[lab[sel[side]]]
        found = near >= 0
        d = np.hypot((ys[side] - ys[near]).astype(np.float32), (xs[side] - xs[near]).astype(np.float32))
        d = np.where(found, d - off[near], dist[sel[side]] - 0.5)
        sd[side] = d
    sd = np.where(boundary, off, sd)
    # each side keeps its sign, so a hard threshold of the distance is the hard matte
    sd = np.where(ins, np.maximum(sd, 1e-6), -np.maximum(sd, 0.0)).astype(np.float32)
    return inside, sel, sd


def signed_distance(prob: np.ndarray, threshold: float) -> np.ndarray | None:
    """Signed distance in pixels to the contour ``prob == threshold``: > 0 inside (``prob > threshold``),
    <= 0 outside; None where there is no contour (all inside or all outside).

    Sub-pixel: a pixel next to the contour (a 4-neighbour across it) takes its distance from the
    probability, linear between the two pixels and along its gradient (whichever is nearer: the first is
    right for a step, the second for an oblique ramp); every other pixel measures its Euclidean distance to
    its nearest pixel across the edge and takes off that pixel's own distance to the contour.
    """
    inside = np.asarray(prob) > threshold
    if inside.all() or not inside.any():
        return None
    _, sel, sd = _band_distance(prob, threshold, np.inf)
    out = np.empty(inside.size, np.float32)
    out[sel] = sd
    return out.reshape(inside.shape)


def alpha_from_probability(prob: np.ndarray, threshold: float, softness_px: float = 0.0, grow_px: float = 0.0,
                           antialias: bool = False) -> np.ndarray:
    """A compositing alpha from a probability: exactly 1 in the object's core, exactly 0 outside, and a
    smoothstep ramp ``softness_px`` wide centred on the threshold's contour, moved outwards by ``grow_px``
    (negative shrinks). Softness 0 is the hard matte (``prob > threshold`` when not grown); with
    ``antialias`` it is instead each pixel's coverage by the region inside the contour's sub-pixel position
    (a one-pixel linear ramp), so the edge is anti-aliased rather than stair-stepped. float32.
    """
    if softness_px < 0:
        raise ValueError(f"softness must be >= 0, got {softness_px}")
    if softness_px == 0 and not antialias and grow_px == 0:
        return (np.asarray(prob) > threshold).astype(np.float32)
    inside = np.asarray(prob) > threshold
    if inside.all() or not inside.any():  # nothing to grow from, or nothing to shrink into
        return inside.astype(np.float32)
    # beyond this distance from the contour the alpha is plainly 0 or 1 (margin for the approximate search)
    reach = 1.05 * (abs(grow_px) + 0.5 * max(softness_px, 1.0)) + 2.0
    # only the object's bounding box grown by the reach can change (the rest is outside, far from the edge)
    m = int(np.ceil(reach)) + 2
    rows, cols = np.flatnonzero(inside.any(axis=1)), np.flatnonzero(inside.any(axis=0))
    y0, y1 = max(rows[0] - m, 0), min(rows[-1] + m + 1, inside.shape[0])
    x0, x1 = max(cols[0] - m, 0), min(cols[-1] + m + 1, inside.shape[1])
    crop, sel, sd = _band_distance(np.asarray(prob)[y0:y1, x0:x1], threshold, reach)
    sd += np.float32(grow_px)
    if softness_px == 0:
        a = np.clip(sd + np.float32(0.5), 0.0, 1.0) if antialias else (sd > 0).astype(np.float32)
    else:
        x = np.clip(sd / np.float32(softness_px) + np.float32(0.5), 0.0, 1.0)
        a = x * x * (3.0 - 2.0 * x)
    box = crop.astype(np.float32)
    box.ravel()[sel] = a
    alpha = np.zeros(inside.shape, np.float32)
    alpha[y0:y1, x0:x1] = box
    return alpha


def edge_strength(rgb: np.ndarray) -> np.ndarray:
    """The plate's gradient magnitude (Sobel on its luminance; ``rgb`` (H, W, 3) in [0, 1]): where an object's
    outline can lie."""
    grey = cv2.cvtColor(np.ascontiguousarray(rgb, dtype=np.float32), cv2.COLOR_RGB2GRAY)
    return cv2.magnitude(cv2.Sobel(grey, cv2.CV_32F, 1, 0), cv2.Sobel(grey, cv2.CV_32F, 0, 1))


def outline_strength(matte: np.ndarray, strength: np.ndarray) -> float:
    """Mean ``strength`` (``edge_strength``) along the outline of the boolean ``matte`` (the pixels on either
    side of its edge; 0 for a matte without one). A matte cut short inside an object ends where the plate
    shows no edge, so its outline is weaker than that of a matte which ends where the object does."""
    outline = cv2.morphologyEx(matte.astype(np.uint8), cv2.MORPH_GRADIENT, np.ones((3, 3), np.uint8)) > 0
    return float(strength[outline].mean()) if outline.any() else 0.0
