"""Helpers for the plate I/O tests: tiny real image files written with OpenImageIO."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import OpenImageIO as oiio
import pytest

W, H = 64, 48


def write_image(
    path: Path,
    pixels: np.ndarray,
    fmt: str = "float",
    *,
    channels: Sequence[str] | None = None,
    origin: tuple[int, int] = (0, 0),
    display: tuple[int, int, int, int] | None = None,
    attrs: dict | None = None,
) -> Path:
    """Write ``pixels`` (h, w[, c]) as the data window at ``origin`` of the ``display`` window."""
    pixels = np.asarray(pixels, dtype=np.float32)
    if pixels.ndim == 2:
        pixels = pixels[:, :, None]
    h, w, c = pixels.shape
    spec = oiio.ImageSpec(w, h, c, fmt)
    if channels:
        spec.channelnames = tuple(channels)
        if "A" in channels:
            spec.alpha_channel = list(channels).index("A")
    spec.x, spec.y = origin
    fx, fy, fw, fh = display if display else (origin[0], origin[1], w, h)
    spec.full_x, spec.full_y, spec.full_width, spec.full_height = fx, fy, fw, fh
    spec.attribute("oiio:UnassociatedAlpha", 1)
    for key, value in (attrs or {}).items():
        spec.attribute(key, value)
    out = oiio.ImageOutput.create(str(path))
    assert out is not None, oiio.geterror()
    assert out.open(str(path), spec), out.geterror()
    assert out.write_image(pixels), out.geterror()
    out.close()
    return path


def read_raw(path: Path, subimage: int = 0) -> tuple[oiio.ImageSpec, np.ndarray]:
    """Spec and float pixels of a file, as stored (alpha un-premultiplied)."""
    config = oiio.ImageSpec()
    config.attribute("oiio:UnassociatedAlpha", 1)
    inp = oiio.ImageInput.open(str(path), config)
    assert inp is not None, oiio.geterror()
    inp.seek_subimage(subimage, 0)
    spec = inp.spec()
    pixels = inp.read_image(subimage, 0, 0, spec.nchannels, "float")
    inp.close()
    return spec, np.asarray(pixels)


def srgb_encode(linear: np.ndarray | float) -> np.ndarray:
    """The sRGB OETF (IEC 61966-2-1), to check OCIO's conversion independently."""
    x = np.asarray(linear, dtype=np.float64)
    return np.where(x <= 0.0031308, 12.92 * x, 1.055 * np.power(np.maximum(x, 0), 1 / 2.4) - 0.055)


def gradient(w: int = W, h: int = H, seed: int = 0) -> np.ndarray:
    """A smooth RGB image in [0, 1] (JPEG-friendly) with some structure."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    rng = np.random.default_rng(seed)
    phase = rng.random(3)
    return np.stack([0.5 + 0.4 * np.sin(xx / 9 + yy / 13 + 6 * p) for p in phase], axis=-1).astype(np.float32)


class Imaging:
    """The helpers above, handed to tests by the ``img`` fixture (tests/io has no package to import from)."""

    W, H = W, H
    write = staticmethod(write_image)
    read_raw = staticmethod(read_raw)
    srgb = staticmethod(srgb_encode)
    gradient = staticmethod(gradient)


@pytest.fixture
def img() -> type[Imaging]:
    return Imaging
