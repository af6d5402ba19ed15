"""Writing mattes that line up with the plate, atomically, and checking that they read back whole.

Formats (``fmt``):

* ``'exr'`` (default): one half-float channel named ``A``, ZIP compression, the plate's display and
  data windows and its header metadata (timecode, pixel aspect, camera matrices...), so a Read node
  in Nuke puts the matte exactly over the plate. The matte is cut to the plate's data window: given at
  the plate's canvas size (``PlateInfo.canvas_window``, as a render computes it) it covers the overscan
  too; given at display size, it is zero where the data window reaches outside the display window.
* ``'png8'`` / ``'png16'``: a single-channel greyscale PNG at display-window size (PNG has no windows).
* ``'rgba'``: the plate's own RGB (not the sRGB the network saw) with the matte as alpha, in the format
  given by the output path's extension (EXR keeps the windows). Each file follows its format's
  convention, so a compositor reads it right without a switch:

  - EXR is premultiplied (OpenEXR's convention): RGB is multiplied by the matte, so a Merge over shows
    only the object;
  - PNG is unassociated (PNG's spec) and display-encoded, as its sRGB tag says: a scene-linear or log
    plate is converted with ``colour.to_display_srgb``; an sRGB plate passes through unchanged;
  - other formats (TIFF, DPX...) hold the plate's values as they are, with unassociated alpha.

Header: the plate's metadata is carried over except attributes private to another file format and
Nuke's own (``nuke/*``: node hash and the like, which would describe the wrong node). Every matte names
the engine: ``Software`` = ``osvos-plugin <version>`` and ``osvos:version`` = ``<version>``.

Metadata (``write_matte(metadata=...)``, :func:`read_matte_metadata`): keys are given and returned
*without* the ``osvos:`` prefix; ``version`` is the engine's and reserved. Where they are stored:

* EXR: one string header attribute ``osvos:<key>`` per item;
* PNG: one text chunk with the keyword ``osvos:<key>`` per item (OIIO's PNG writer and reader carry
  any string attribute as a text chunk);
* TIFF: OIIO's TIFF writer drops unknown attribute names, so all items go as one JSON object
  ``{"osvos:<key>": value, ...}`` into the ``ImageDescription`` tag (replacing the plate's description);
* other formats (DPX, Targa...) have no room for them: only ``Software`` is written, and
  ``read_matte_metadata`` returns an empty dict.

Every matte is written with ``files.atomic_write``: OIIO's error state is checked after each call (a
PNG write to a full disk "succeeds" and only leaves a message behind), the temporary file is read
back whole (header, every pixel, the metadata) before it is renamed into place, so a full disk or a
killed render never leaves a truncated frame behind, and a failing write leaves any previous frame at
that path untouched.
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Mapping, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Literal

import numpy as np
import OpenImageIO as oiio

from ..errors import OSVOSError
from ..files import atomic_write
from .colour import ColourSettings, auto_colorspace, to_display_srgb
from .errors import OutputError
from .plates import Plate, PlateInfo, Window, crop_to_data_window, paste_to_display, read_source_rgb, to_window

log = logging.getLogger(__name__)

__all__ = ["check_matte_path", "write_matte", "read_matte_metadata", "MATTE_FORMATS"]

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

PREFIX = "osvos:"
_NAMED_ATTRIBUTE_FORMATS = frozenset({"openexr", "png"})  # carry any string attribute by its name
_DESCRIPTION_FORMATS = frozenset({"tiff"})  # carry the items as JSON in ImageDescription
_DESCRIPTION = "ImageDescription"
_KEY = re.compile(r"[A-Za-z0-9_.-]{1,48}")  # "osvos:" + 48 stays within PNG's 79-byte keyword limit
_PNG_END = b"\x00\x00\x00\x00IEND\xaeB`\x82"  # the IEND chunk every whole PNG ends with
# Messages OIIO leaves after a write that did succeed: its TIFF writer (3.2) reports a failed Exif
# directory for every file without Exif tags. The read-back check still catches a real failure.
_BENIGN_MESSAGES = ("TIFFWriteCustomDirectory() of the Exif data",)


class _NotWhole(Exception):
    """A file that does not read back whole; the message says why."""


@lru_cache(maxsize=1)
def _engine_version() -> str:
    try:
        from .. import __version__  # at call time: no import circle with the package __init__

        return str(__version__)
    except ImportError:  # the package is still being initialised: ask the installed distribution
        from importlib.metadata import PackageNotFoundError, version

        try:
            return version("osvos-plugin")
        except PackageNotFoundError:
            return "unknown"


def _oiio_error(out: oiio.ImageOutput | oiio.ImageInput | None = None) -> str:
    """The pending error messages of ``out`` and of OIIO (both cleared), as one line."""
    messages = [out.geterror() if out is not None else "", oiio.geterror()]
    lines = [
        line.strip()
        for text in messages
        for line in text.splitlines()
        if line.strip() and not any(benign in line for benign in _BENIGN_MESSAGES)
    ]
    if not lines:
        return ""
    return lines[0] + (f" (and {len(lines) - 1} more messages)" if len(lines) > 1 else "")


def _write_pixels(
    tmp: Path, format_name: str, spec: oiio.ImageSpec, pixels: np.ndarray, dest: Path | None = None
) -> None:
    """Encode ``pixels`` to ``tmp`` with OIIO's ``format_name`` writer (the extension of tmp is ignored).

    A call that returns True but leaves an error message behind has failed too: libpng's write errors
    (a full disk) only show up there.
    """
    name = dest or tmp
    oiio.geterror()  # an old message left in this thread must not fail this write
    out = oiio.ImageOutput.create(format_name)
    if out is None:
        raise OutputError(f"OpenImageIO cannot write {format_name} files here ({_oiio_error()}).")
    opened = out.open(str(tmp), spec)
    error = _oiio_error(out)
    if not opened or error:
        if opened:
            out.close()
            _oiio_error(out)
        raise OutputError(
            f"cannot open {name} for writing ({error or 'unknown error'}); check the path and its permissions."
        )
    ok = out.write_image(np.ascontiguousarray(pixels, dtype=np.float32))
    error = _oiio_error(out)
    closed = out.close()
    error = error or _oiio_error(out)
    if not ok or closed is False or error:
        raise OutputError(f"writing {name} failed ({error or 'unknown error'}); check free disk space.")


def _read_whole(path: Path) -> tuple[str, oiio.ImageSpec]:
    """(OIIO format name, header) of a file whose every pixel decodes; ``_NotWhole`` says why not."""
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise _NotWhole(f"it cannot be read ({exc.strerror or exc})") from exc
    if size == 0:
        raise _NotWhole("the file is empty (0 bytes)")
    oiio.geterror()
    inp = oiio.ImageInput.open(str(path))  # by content when the name does not tell (a .tmp file)
    if inp is None:
        raise _NotWhole(f"it cannot be opened as an image ({_oiio_error() or 'unknown format'})")
    try:
        _oiio_error()  # formats tried before the right one leave messages behind
        format_name = inp.format_name()
        spec = oiio.ImageSpec(inp.spec())
        pixels = inp.read_image(0, 0, 0, spec.nchannels, str(spec.format))
        error = _oiio_error(inp)
        if pixels is None or error:
            raise _NotWhole(f"its pixels cannot be read, it is truncated or corrupt ({error or 'read failed'})")
    finally:
        inp.close()
        _oiio_error(inp)
    if format_name == "png":  # libpng decodes every row without reaching the end of the file
        with open(path, "rb") as f:
            f.seek(max(0, size - len(_PNG_END)))
            if f.read() != _PNG_END:
                raise _NotWhole("it ends before the PNG's final IEND chunk (truncated)")
    return format_name, spec


def _osvos_items(spec: oiio.ImageSpec, format_name: str) -> dict[str, str]:
    """The ``osvos:*`` string items of a header, keys without the prefix."""
    items: dict[str, str] = {}
    if format_name in _DESCRIPTION_FORMATS:
        try:
            packed = json.loads(spec.get_string_attribute(_DESCRIPTION) or "null")
        except ValueError:
            packed = None
        if isinstance(packed, dict):
            items.update(
                {k[len(PREFIX):]: v for k, v in packed.items() if k.startswith(PREFIX) and isinstance(v, str)}
            )
    for param in spec.extra_attribs:
        if param.name.startswith(PREFIX) and str(param.type) == "string":
            items[param.name[len(PREFIX):]] = spec.get_string_attribute(param.name)
    return items


def read_matte_metadata(path: str | os.PathLike) -> dict[str, str] | None:
    """The ``osvos:*`` items of the matte at ``path`` (keys without the prefix), or None if it is not whole.

    None when the file is missing, empty, truncated or unreadable: every pixel is decoded, so a frame
    that a full disk or a killed copy cut short is never taken for a finished one. A whole image
    without the items (another tool's, or a format that cannot hold them) gives an empty dict.
    """
    try:
        format_name, spec = _read_whole(Path(path))
    except _NotWhole as exc:
        log.debug("%s does not read back whole: %s", path, exc)
        return None
    return _osvos_items(spec, format_name)


def _verify(tmp: Path, dest: Path, format_name: str, spec: oiio.ImageSpec, items: dict[str, str]) -> None:
    """Raise ``OutputError`` unless ``tmp`` reads back whole, as written, before it becomes ``dest``."""
    try:
        got_format, got = _read_whole(tmp)
    except _NotWhole as exc:
        raise OutputError(
            f"the matte {dest} did not read back whole after writing: {exc}; check free disk space on "
            f"its volume."
        ) from exc
    written = (format_name, spec.width, spec.height, spec.nchannels)
    read = (got_format, got.width, got.height, got.nchannels)
    if read != written:
        raise OutputError(
            f"the matte {dest} reads back as {got_format} {got.width}x{got.height} with {got.nchannels} "
            f"channels, not the {format_name} {spec.width}x{spec.height} with {spec.nchannels} written."
        )
    if format_name in _NAMED_ATTRIBUTE_FORMATS | _DESCRIPTION_FORMATS:
        back = _osvos_items(got, got_format)
        if back != items:
            raise OutputError(
                f"the matte {dest} does not read back the metadata written into it ({back} instead of "
                f"{items}); this is a bug of the writer."
            )


def _check_items(path: Path, metadata: Mapping[str, str] | None) -> dict[str, str]:
    """The caller's items plus the engine version; refuses what a format would drop or mangle."""
    items = dict(metadata or {})
    for key, value in items.items():
        if not isinstance(key, str) or not _KEY.fullmatch(key):
            raise OutputError(
                f"matte metadata key {key!r} for {path} is not 1-48 letters, digits, '_', '.' or '-' "
                f"(and without the {PREFIX!r} prefix); this is a bug upstream of the writer."
            )
        if key == "version":
            raise OutputError(
                f"matte metadata key 'version' for {path} is the engine's own; this is a bug upstream of "
                f"the writer."
            )
        if not isinstance(value, str) or not value:
            # EXR drops empty strings: an empty value could not be told from a missing one.
            raise OutputError(
                f"matte metadata {key!r} for {path} must be a non-empty string, not {value!r}; this is a "
                f"bug upstream of the writer."
            )
    items["version"] = _engine_version()
    return items


def _stamp(spec: oiio.ImageSpec, format_name: str, items: dict[str, str]) -> None:
    spec.attribute("Software", f"osvos-plugin {_engine_version()}")
    if format_name in _NAMED_ATTRIBUTE_FORMATS:
        for key, value in items.items():
            spec.attribute(PREFIX + key, value)
    elif format_name in _DESCRIPTION_FORMATS:
        packed = {PREFIX + key: value for key, value in items.items()}
        spec.attribute(_DESCRIPTION, json.dumps(packed, sort_keys=True))


def _carry_metadata(spec: oiio.ImageSpec, like: PlateInfo, format_name: str) -> None:
    for name, value in like.metadata.items():
        prefix = name.split(":", 1)[0] if ":" in name else ""
        if prefix in _FORMAT_PREFIXES and prefix != format_name:
            continue
        if name.lower().startswith("nuke/") or name.startswith(PREFIX):
            continue  # Nuke's node hash describes the plate's node; osvos:* items are the matte's own
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


def _source_rgb(like: PlateInfo, plate_rgb: np.ndarray | Plate | None) -> tuple[np.ndarray, bool, str]:
    """(original RGB, is_display_size, its colour space) of the plate for the 'rgba' format."""
    if plate_rgb is None or isinstance(plate_rgb, Plate):
        # A Plate's rgb is what the network saw (sRGB): re-read the file's own values instead.
        source = plate_rgb.info if isinstance(plate_rgb, Plate) else like
        return read_source_rgb(source), False, source.colorspace
    rgb = np.asarray(plate_rgb, dtype=np.float32)
    if rgb.ndim == 3 and rgb.shape[2] >= 3:
        if rgb.shape[:2] == (like.height, like.width):
            return rgb[:, :, :3], True, like.colorspace
        if rgb.shape[:2] == (like.data_window[3], like.data_window[2]):
            return rgb[:, :, :3], False, like.colorspace
    raise OutputError(
        f"plate_rgb of shape {rgb.shape} matches neither the display window "
        f"({like.height}, {like.width}, 3) nor the data window "
        f"({like.data_window[3]}, {like.data_window[2]}, 3) of {like.path}."
    )


def _plan_rgba(
    path: Path,
    matte: np.ndarray,
    matte_window: Window,
    like: PlateInfo,
    plate_rgb: np.ndarray | Plate | None,
    colour: ColourSettings | None,
) -> tuple[str, oiio.ImageSpec, np.ndarray]:
    probe = _rgba_writer(path)
    format_name = probe.format_name()
    windowed = (
        bool(probe.supports("displaywindow"))
        and bool(probe.supports("origin"))
        and (bool(probe.supports("negativeorigin")) or min(like.data_window[:2]) >= 0)
    )
    rgb, rgb_is_display, space = _source_rgb(like, plate_rgb)
    if format_name == "png":
        # PNG says sRGB: a scene-linear (or log) plate is encoded for display; sRGB passes through.
        if space in (None, "", "auto"):
            space = auto_colorspace(like.file_format, like.pixel_format, like.metadata)
        if space.lower() != "srgb":
            rgb = to_display_srgb(rgb, space, colour)
    if windowed:
        if rgb_is_display:
            rgb = crop_to_data_window(rgb, like.data_window, like.display_window)
        alpha = to_window(matte, matte_window, like.data_window)
        height, width = like.data_window[3], like.data_window[2]
    else:
        if not rgb_is_display:
            rgb = paste_to_display(rgb, like.data_window, like.display_window)
        alpha = to_window(matte, matte_window, like.display_window)
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
    if format_name == "openexr":
        rgb = rgb * alpha[:, :, None]  # OpenEXR is premultiplied: a Merge over shows only the object
        spec.attribute("compression", "zip")
    else:
        spec.attribute("oiio:UnassociatedAlpha", 1)  # RGB is the plate as is, not premultiplied by the matte
    pixels = np.concatenate([rgb, alpha[:, :, None]], axis=-1)
    return format_name, spec, pixels


def check_matte_path(path: str | os.PathLike, fmt: str) -> None:
    """OutputError unless ``fmt`` can be written under ``path``'s extension: checked before a render
    reads its plates, so that a wrong extension does not cost a fine-tune."""
    path = Path(path)
    if fmt not in MATTE_FORMATS:
        raise OutputError(f"unknown matte format {fmt!r} for {path}; use one of {', '.join(MATTE_FORMATS)}.")
    if fmt in _EXTENSIONS and path.suffix.lower() not in _EXTENSIONS[fmt]:
        raise OutputError(
            f"output {path} has the extension {path.suffix!r} but the format is {fmt!r}; name it "
            f"{path.with_suffix(_EXTENSIONS[fmt][0]).name} or choose the matching format."
        )
    if fmt == "rgba":
        _rgba_writer(path)


def _rgba_writer(path: Path) -> oiio.ImageOutput:
    probe = oiio.ImageOutput.create(str(path))
    if probe is None:
        oiio.geterror()
        raise OutputError(
            f"cannot write {path}: OpenImageIO knows no format for the extension "
            f"{path.suffix!r}; use .exr, .tif, .png or .dpx for the 'rgba' output."
        )
    if not probe.supports("alpha"):
        raise OutputError(
            f"cannot write {path}: {probe.format_name()} files have no alpha channel; use .exr, .tif, .png "
            f"or .dpx for the 'rgba' output."
        )
    return probe


def _matte_window(matte: np.ndarray, like: PlateInfo) -> Window | None:
    """The window a matte of this shape covers: the plate's display window or its canvas; None if neither."""
    if matte.shape == (like.height, like.width):
        return like.display_window
    canvas = like.canvas_window
    return canvas if matte.shape == (canvas[3], canvas[2]) else None


_LAYER = re.compile(r"[A-Za-z_][A-Za-z0-9_-]{0,63}")  # an EXR layer (and PNG file) name an artist can type


def write_matte(
    path: str | os.PathLike,
    matte: np.ndarray,
    like: PlateInfo,
    fmt: MatteFormat = "exr",
    plate_rgb: np.ndarray | Plate | None = None,
    metadata: Mapping[str, str] | None = None,
    *,
    colour: ColourSettings | None = None,
    layers: Sequence[tuple[str, np.ndarray]] = (),
) -> Path:
    """Write one matte frame next to its plate, atomically and read back whole; returns the path written.

    ``matte`` is float32 (H, W) in [0, 1] at the plate's display-window size, or at its canvas size
    (``like.canvas_window``: the display window grown to hold the data window), which gives the overscan its
    matte in the formats with windows; the others get the display window cut from it. ``plate_rgb`` only
    matters for ``fmt='rgba'``: the plate's original RGB at display- or data-window size, in
    ``like.colorspace``; None (or a ``Plate``, whose rgb is colour-converted) re-reads it from the file.
    ``metadata``: string items stored as ``osvos:<key>`` (keys without the prefix, see the module doc);
    :func:`read_matte_metadata` returns them with ``version``. ``colour``: the OCIO settings used to
    encode a scene-linear plate for an 'rgba' PNG (default: as for the network). ``layers``: (name, matte)
    per object, EXR only: written as channels ``<name>.A`` after ``A`` (which then holds all objects), the
    way Nuke's Shuffle and Cryptomatte-style tools pick one by name.
    """
    path = Path(path)
    check_matte_path(path, fmt)
    items = _check_items(path, metadata)
    matte = np.asarray(matte, dtype=np.float32)
    if matte.ndim == 3 and matte.shape[2] == 1:
        matte = matte[:, :, 0]
    matte_window = _matte_window(matte, like)
    if matte_window is None:
        canvas = like.canvas_window
        extra = "" if canvas == like.display_window else f" or its canvas size {canvas[2]}x{canvas[3]}"
        raise OutputError(
            f"matte for {path} is {matte.shape[1] if matte.ndim > 1 else '?'}x{matte.shape[0]} but "
            f"the plate {like.path} is {like.width}x{like.height}; the matte must be at the plate's "
            f"display-window size{extra}."
        )
    if not np.isfinite(matte).all():
        raise OutputError(f"matte for {path} contains NaN/Inf values; this is a bug upstream of the writer.")
    matte = np.clip(matte, 0.0, 1.0)
    if layers and fmt != "exr":
        raise OutputError(f"{path}: one layer per object needs an EXR matte; this is a bug upstream of the writer.")
    for name, layer in layers:
        if not _LAYER.fullmatch(name) or np.shape(layer) != matte.shape or not np.isfinite(layer).all():
            raise OutputError(f"{path}: the layer {name!r} is not a valid matte of the frame's size; this is a bug "
                              "upstream of the writer.")

    spec: oiio.ImageSpec
    if fmt == "exr":
        format_name = "openexr"
        planes = [matte] + [np.clip(np.asarray(layer, np.float32), 0.0, 1.0) for _, layer in layers]
        pixels = np.stack([to_window(m, matte_window, like.data_window) for m in planes], axis=-1)
        spec = oiio.ImageSpec(like.data_window[2], like.data_window[3], len(planes), "half")
        spec.channelnames = ("A", *(f"{name}.A" for name, _ in layers))
        spec.alpha_channel = 0
        _set_windows(spec, like)
        _carry_metadata(spec, like, format_name)
        spec.attribute("compression", "zip")
    elif fmt in ("png8", "png16"):
        format_name = "png"
        pixels = to_window(matte, matte_window, like.display_window)[:, :, None]
        spec = oiio.ImageSpec(like.width, like.height, 1, "uint8" if fmt == "png8" else "uint16")
        spec.channelnames = ("Y",)
        _carry_metadata(spec, like, format_name)
    else:
        try:
            format_name, spec, pixels = _plan_rgba(path, matte, matte_window, like, plate_rgb, colour)
        except OutputError:
            raise
        except OSVOSError as exc:  # the plate could not be re-read
            raise OutputError(f"cannot write {path}: the plate's RGB could not be re-read ({exc})") from exc
    _stamp(spec, format_name, items)

    def write(tmp: Path) -> None:
        _write_pixels(tmp, format_name, spec, pixels, path)

    def verify(tmp: Path) -> None:
        _verify(tmp, path, format_name, spec, items)

    atomic_write(path, write, verify)
    log.debug("wrote %s (%s)", path, fmt)
    return path
