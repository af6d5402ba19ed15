"""Writing mattes that line up with the plate, atomically.

Formats (``fmt``):

* ``'exr'`` (default): one half-float channel named ``A``, ZIP compression, the plate's display and
  data windows and its header metadata (timecode, pixel aspect, camera matrices...), so a Read node
  in Nuke puts the matte exactly over the plate. The display-size matte is cut to the plate's data
  window (zero where the data window reaches outside the display window).
* ``'png8'`` / ``'png16'``: a single-channel greyscale PNG at display-window size (PNG has no windows).
* ``'rgba'``: the plate's own RGB values (not the sRGB the network saw) with the matte as alpha,
  un-premultiplied, in the format given by the output path's extension (EXR keeps the windows).

Every matte is written with ``files.atomic_write``: a killed render never leaves a truncated frame
behind, and a failing write leaves any previous frame at that path untouched.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Literal

import numpy as np
import OpenImageIO as oiio

from ..errors import OSVOSError
from ..files import atomic_write
from .errors import OutputError
from .plates import Plate, PlateInfo, crop_to_data_window, paste_to_display, read_source_rgb

log = logging.getLogger(__name__)

__all__ = ["write_matte", "MATTE_FORMATS"]

MatteFormat = Literal["exr", "png8", "png16", "rgba"]
MATTE_FORMATS: tuple[str, ...] = ("exr", "png8", "png16", "rgba")

# Attribute prefixes private to one file format: only carried into a file of that same format.
_FORMAT_PREFIXES = {
    "openexr": "openexr",
    "dpx": "dpx",
    "tiff": "tiff",
    "png": "png",
    "jpeg": "jpeg",
    "cineon": "cineon",
    "targa": "targa",
    "bmp": "bmp",
    "webp": "webp",
    "jpeg2000": "jpeg2000",
}
_EXTENSIONS = {"exr": (".exr", ".sxr", ".mxr"), "png8": (".png",), "png16": (".png",)}




def _write_pixels(tmp: Path, format_name: str, spec: oiio.ImageSpec, pixels: np.ndarray) -> None:
    """Encode ``pixels`` to ``tmp`` with OIIO's ``format_name`` writer (the extension of tmp is ignored)."""
    out = oiio.ImageOutput.create(format_name)
    if out is None:
        raise OutputError(f"OpenImageIO cannot write {format_name} files here ({oiio.geterror()}).")
    if not out.open(str(tmp), spec):
        raise OutputError(f"cannot open {tmp} for writing ({out.geterror()}).")
    ok = out.write_image(np.ascontiguousarray(pixels, dtype=np.float32))
    error = out.geterror() if not ok else ""
    closed = out.close()
    if not ok or closed is False:
        raise OutputError(
            f"writing {tmp} failed ({error or out.geterror() or 'unknown error'}); check free disk space."
        )


def _carry_metadata(spec: oiio.ImageSpec, like: PlateInfo, format_name: str) -> None:
    for name, value in like.metadata.items():
        prefix = name.split(":", 1)[0] if ":" in name else ""
        if prefix in _FORMAT_PREFIXES and prefix != format_name:
            continue
        type_name = like.metadata_types.get(name)
        try:
            if type_name:
                spec.attribute(name, oiio.TypeDesc(type_name), value)
            else:
                spec.attribute(name, value)
        except Exception as exc:  # an odd attribute must not cost the frame
            log.debug("metadata %s of %s not carried over: %s", name, like.path, exc)


def _set_windows(spec: oiio.ImageSpec, like: PlateInfo) -> None:
    spec.x, spec.y = like.data_window[0], like.data_window[1]
    spec.full_x, spec.full_y, spec.full_width, spec.full_height = like.display_window


def _source_rgb(like: PlateInfo, plate_rgb: np.ndarray | Plate | None) -> tuple[np.ndarray, bool]:
    """(original RGB, is_display_size) of the plate for the 'rgba' format."""
    if plate_rgb is None or isinstance(plate_rgb, Plate):
        # A Plate's rgb is what the network saw (sRGB): re-read the file's own values instead.
        source = plate_rgb.info if isinstance(plate_rgb, Plate) else like
        return read_source_rgb(source), False
    rgb = np.asarray(plate_rgb, dtype=np.float32)
    if rgb.ndim == 3 and rgb.shape[2] >= 3:
        if rgb.shape[:2] == (like.height, like.width):
            return rgb[:, :, :3], True
        if rgb.shape[:2] == (like.data_window[3], like.data_window[2]):
            return rgb[:, :, :3], False
    raise OutputError(
        f"plate_rgb of shape {rgb.shape} matches neither the display window "
        f"({like.height}, {like.width}, 3) nor the data window "
        f"({like.data_window[3]}, {like.data_window[2]}, 3) of {like.path}."
    )


def _plan_rgba(
    path: Path, matte: np.ndarray, like: PlateInfo, plate_rgb: np.ndarray | Plate | None
) -> tuple[str, oiio.ImageSpec, np.ndarray]:
    probe = oiio.ImageOutput.create(str(path))
    if probe is None:
        raise OutputError(
            f"cannot write {path}: OpenImageIO knows no format for the extension "
            f"{path.suffix!r}; use .exr, .tif, .png or .dpx for the 'rgba' output."
        )
    format_name = probe.format_name()
    if not probe.supports("alpha"):
        raise OutputError(
            f"cannot write {path}: {format_name} files have no alpha channel; use .exr, .tif, .png "
            f"or .dpx for the 'rgba' output."
        )
    windowed = (
        bool(probe.supports("displaywindow"))
        and bool(probe.supports("origin"))
        and (bool(probe.supports("negativeorigin")) or min(like.data_window[:2]) >= 0)
    )
    rgb, rgb_is_display = _source_rgb(like, plate_rgb)
    if windowed:
        if rgb_is_display:
            rgb = crop_to_data_window(rgb, like.data_window, like.display_window)
        alpha = crop_to_data_window(matte, like.data_window, like.display_window)
        height, width = like.data_window[3], like.data_window[2]
    else:
        if not rgb_is_display:
            rgb = paste_to_display(rgb, like.data_window, like.display_window)
        alpha = matte
        height, width = like.height, like.width
    pixel_format = (
        like.pixel_format
        if like.file_format == format_name
        else ("half" if format_name == "openexr" else "uint16")
    )
    spec = oiio.ImageSpec(width, height, 4, pixel_format or "float")
    spec.channelnames = ("R", "G", "B", "A")
    spec.alpha_channel = 3
    if windowed:
        _set_windows(spec, like)
    _carry_metadata(spec, like, format_name)
    spec.attribute("oiio:UnassociatedAlpha", 1)  # RGB is the plate as is, not premultiplied by the matte
    if format_name == "openexr":
        spec.attribute("compression", "zip")
    pixels = np.concatenate([rgb, alpha[:, :, None]], axis=-1)
    return format_name, spec, pixels


def write_matte(
    path: str | os.PathLike,
    matte: np.ndarray,
    like: PlateInfo,
    fmt: MatteFormat = "exr",
    plate_rgb: np.ndarray | Plate | None = None,
) -> Path:
    """Write one matte frame next to its plate, atomically; returns the path written.

    ``matte`` is float32 (H, W) in [0, 1] at the plate's display-window size. ``plate_rgb`` only
    matters for ``fmt='rgba'``: the plate's original RGB at display- or data-window size; None (or a
    ``Plate``, whose rgb is colour-converted) re-reads it from ``like.path``.
    """
    path = Path(path)
    if fmt not in MATTE_FORMATS:
        raise OutputError(f"unknown matte format {fmt!r} for {path}; use one of {', '.join(MATTE_FORMATS)}.")
    if fmt in _EXTENSIONS and path.suffix.lower() not in _EXTENSIONS[fmt]:
        raise OutputError(
            f"output {path} has the extension {path.suffix!r} but the format is {fmt!r}; name it "
            f"{path.with_suffix(_EXTENSIONS[fmt][0]).name} or choose the matching format."
        )
    matte = np.asarray(matte, dtype=np.float32)
    if matte.ndim == 3 and matte.shape[2] == 1:
        matte = matte[:, :, 0]
    if matte.shape != (like.height, like.width):
        raise OutputError(
            f"matte for {path} is {matte.shape[1] if matte.ndim > 1 else '?'}x{matte.shape[0]} but "
            f"the plate {like.path} is {like.width}x{like.height}; the matte must be at the plate's "
            f"display-window size."
        )
    if not np.isfinite(matte).all():
        raise OutputError(f"matte for {path} contains NaN/Inf values; this is a bug upstream of the writer.")
    matte = np.clip(matte, 0.0, 1.0)

    spec: oiio.ImageSpec
    if fmt == "exr":
        format_name = "openexr"
        pixels = crop_to_data_window(matte, like.data_window, like.display_window)[:, :, None]
        spec = oiio.ImageSpec(like.data_window[2], like.data_window[3], 1, "half")
        spec.channelnames = ("A",)
        spec.alpha_channel = 0
        _set_windows(spec, like)
        _carry_metadata(spec, like, format_name)
        spec.attribute("compression", "zip")
    elif fmt in ("png8", "png16"):
        format_name = "png"
        pixels = matte[:, :, None]
        spec = oiio.ImageSpec(like.width, like.height, 1, "uint8" if fmt == "png8" else "uint16")
        spec.channelnames = ("Y",)
        _carry_metadata(spec, like, format_name)
    else:
        try:
            format_name, spec, pixels = _plan_rgba(path, matte, like, plate_rgb)
        except OutputError:
            raise
        except OSVOSError as exc:  # the plate could not be re-read
            raise OutputError(f"cannot write {path}: the plate's RGB could not be re-read ({exc})") from exc
    spec.attribute("Software", "osvos-plugin")

    def write(tmp: Path) -> None:
        _write_pixels(tmp, format_name, spec, pixels)

    atomic_write(path, write)
    log.debug("wrote %s (%s)", path, fmt)
    return path
