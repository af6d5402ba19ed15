"""The painted frame: the artist's mask of the object, as float32 (H, W) in [0, 1].

Which values are the mask:

* the alpha channel when the file has one (``A``, ``<layer>.A``, or the alpha of a grey+alpha PNG)
  - unless the alpha is opaque everywhere while the colour channels vary: a paint package exported the mask
  in RGB with an opaque alpha, so the colour is used;
* else luminance: a grey image (``Y``, or R=G=B) as is, with soft edges kept;
* a coloured label image (e.g. a DAVIS palette PNG, object = dark red) uses max(R, G, B) scaled so
  its brightest pixel is 1.0.

An alpha that is empty while the colour channels hold the shape is refused with a message that says so
(the artist painted in RGB and the paint package saved a transparent alpha); it is not guessed around,
since a transparent alpha can also be a real, empty matte.

Mask values are data: no colour conversion is applied.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import cv2
import numpy as np

from .errors import MaskError
from .plates import choose_subimage, open_image, paste_to_display, pick_channels, read_channels, refuse_huge

log = logging.getLogger(__name__)

__all__ = ["read_mask"]

_LUMA = np.array([0.2126, 0.7152, 0.0722], dtype=np.float32)  # Rec.709
_UNIFORM = 1e-6
_GREY_TOLERANCE = 2.0 / 255.0


def _colour_values(colour: np.ndarray, path: Path) -> np.ndarray:
    """The mask held by the colour channels (h, w, 3): luminance when grey, else max(R,G,B) by its peak."""
    spread = np.max(colour, axis=-1) - np.min(colour, axis=-1)
    if float(spread.max(initial=0.0)) <= _GREY_TOLERANCE:
        return colour @ _LUMA
    values = np.max(colour, axis=-1)
    peak = float(values.max(initial=0.0))
    if peak > 0.0:
        values = values / peak
    log.info("mask %s is coloured: using max(R,G,B) scaled by its peak %.3f", path, peak)
    return values


def _mask_values(path: Path) -> tuple[np.ndarray, np.ndarray | None]:
    """The mask's values at display size, and, when they came from the alpha, what the colour channels hold
    (so an empty alpha over a painted RGB can be told apart from an unpainted mask)."""
    inp = open_image(path, error=MaskError, what="mask")
    try:
        subimage, spec = choose_subimage(inp, path, error=MaskError)
        refuse_huge(path, spec, error=MaskError, what="mask")
        names = tuple(spec.channelnames)
        rgb_idx, alpha_idx, _ = pick_channels(names, spec.alpha_channel)
        wanted = sorted(set(rgb_idx) | ({alpha_idx} if alpha_idx >= 0 else set()))
        pixels = read_channels(inp, path, subimage, spec, wanted, error=MaskError)
        data_window = (spec.x, spec.y, spec.width, spec.height)
        display_window = (spec.full_x, spec.full_y, spec.full_width, spec.full_height)
    finally:
        inp.close()

    def channel(i: int) -> np.ndarray:
        return pixels[:, :, wanted.index(i)]

    colour = np.stack([channel(i) for i in rgb_idx], axis=-1)
    if np.isnan(pixels).any() or np.isinf(pixels).any():
        bad = int(np.count_nonzero(~np.isfinite(pixels)))
        raise MaskError(
            f"mask {path} has {bad} NaN/Inf values; repaint or re-export it (a mask holds 0..1 values only)."
        )
    if alpha_idx >= 0:
        alpha = channel(alpha_idx)
        alpha_opaque = float(alpha.min()) >= 1.0 - _GREY_TOLERANCE  # uniformly opaque: not a painted alpha
        colour_varies = alpha_idx not in rgb_idx and float(colour.max() - colour.min()) > _UNIFORM
        if not (alpha_opaque and colour_varies):
            other = colour if alpha_idx not in rgb_idx else None
            return paste_to_display(alpha, data_window, display_window), other
        log.info("mask %s: alpha is opaque everywhere, using the colour channels instead", path)
    values = _colour_values(colour, path)
    return paste_to_display(values.astype(np.float32), data_window, display_window), None


def _holds_shape(values: np.ndarray) -> bool:
    """Whether mask values have some foreground and some background: a painted object."""
    foreground = values >= 0.5
    return bool(foreground.any()) and not bool(foreground.all())


def read_mask(
    path: str | os.PathLike,
    expected_size: tuple[int, int] | None = None,
    resize: bool = False,
    *,
    allow_empty: bool = False,
) -> np.ndarray:
    """Read a painted mask as float32 (H, W) in [0, 1], soft edges kept.

    ``expected_size`` is the plate's (width, height): a mask of another size is an error unless
    ``resize`` (then it is resampled with area filtering when shrinking, bicubic when enlarging).
    A mask with no foreground (no value >= 0.5) or nothing but foreground is an error, since
    fine-tuning on it would teach the network nothing; ``allow_empty`` skips that check (for
    reading back mattes, e.g. to score them).
    """
    path = Path(path)
    values, colour = _mask_values(path)
    if not allow_empty and colour is not None and not _holds_shape(values) and _holds_shape(
        np.clip(_colour_values(colour, path), 0.0, 1.0)
    ):
        state = "empty" if float(values.max(initial=0.0)) < 0.5 else "full (opaque everywhere)"
        raise MaskError(
            f"mask {path}: the mask's alpha is {state} but its RGB holds a painted shape; paint into the alpha, "
            "or save the mask without alpha so its luminance is used."
        )
    height, width = values.shape
    if expected_size is not None and (width, height) != tuple(expected_size):
        want_w, want_h = int(expected_size[0]), int(expected_size[1])
        if not resize:
            raise MaskError(
                f"mask {path} is {width}x{height} but the plate is {want_w}x{want_h}; paint the mask on the "
                f"plate at its own resolution, or allow resizing (resize=True / --resize-mask)."
            )
        if abs(width / height - want_w / want_h) > 0.01:
            log.warning(
                "mask %s (%dx%d) has another aspect ratio than the plate (%dx%d): stretched",
                path,
                width,
                height,
                want_w,
                want_h,
            )
        shrinking = want_w * want_h < width * height
        values = cv2.resize(
            values, (want_w, want_h), interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_CUBIC
        )
    values = np.clip(values, 0.0, 1.0).astype(np.float32, copy=False)
    if not allow_empty:
        if not (values >= 0.5).any():
            raise MaskError(
                f"mask {path} has no foreground (no pixel reaches 0.5; brightest is "
                f"{float(values.max()):.3f}); paint the object in white (or in the alpha channel) on black."
            )
        if (values >= 0.5).all():
            raise MaskError(
                f"mask {path} is foreground everywhere; paint only the object in white (or alpha) on a black "
                f"background."
            )
    return np.ascontiguousarray(values)


def read_labels(path: str | os.PathLike) -> np.ndarray | None:
    """An indexed-colour (palette) PNG with two or more non-zero indices, as DAVIS-2017 annotations are:
    its indices (H, W), each non-zero index one object. None for any other mask (read it with
    ``read_mask``: a palette image of one object keeps working as a single mask)."""
    path = Path(path)
    if path.suffix.lower() != ".png":
        return None
    try:
        from PIL import Image

        with Image.open(path) as img:
            if img.mode != "P":
                return None
            labels = np.asarray(img, dtype=np.uint8)
    except (OSError, ValueError):
        return None
    return labels if len(set(np.unique(labels).tolist()) - {0}) >= 2 else None

