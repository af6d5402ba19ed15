"""Reading plates with OpenImageIO: header, pixels, windows, colour, and up-front validation.

A plate is read as the network wants it: float32 RGB (H, W, 3), display-referred sRGB in [0, 1],
at display-window size (the data window pasted in, zeros outside), so every frame of a shot has the
same shape even when the data window changes from frame to frame (Nuke auto-crop). With
``overscan=True`` (what a render's inference reads, see ``PreparedPlates``) it covers the plate's
canvas instead: the bounding box of the display and data windows (``PlateInfo.canvas_window``), so a
data window reaching beyond the display window (overscan) is seen, and matted, whole. For the usual
plate, whose data window lies inside its display window, the canvas is the display window.

What is read from a file:

* the subimage (EXR part) that holds colour: plain ``R,G,B`` first, then a layer's ``<layer>.R/G/B``
  (``rgba``/``beauty``/``combined`` preferred), then luminance ``Y``, else the first channel(s);
* only those channels, as float, with alpha left un-premultiplied (``oiio:UnassociatedAlpha``) so
  the RGB values are the file's own;
* the header metadata worth carrying over to the matte (see ``PlateInfo.metadata``).
"""

from __future__ import annotations

import logging
import os
import re
import time
from collections.abc import Callable, Collection
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import OpenImageIO as oiio
import torch

from ..imaging import fit_long_side
from .colour import ColourSettings, auto_colorspace, to_display_srgb
from .errors import CheckStopped, FrameProblem, PlateError, file_kind
from .sequence import format_runs, frame_runs, unique_frames

log = logging.getLogger(__name__)

__all__ = [
    "PlateInfo",
    "Plate",
    "read_plate",
    "read_plate_info",
    "read_source_rgb",
    "prepare_plate",
    "validate_plates",
    "check_frames_exist",
    "paste_to_display",
    "crop_to_data_window",
    "to_window",
    "MAX_IMAGE_PIXELS",
    "MAX_IMAGE_SIDE",
]

Window = tuple[int, int, int, int]  # x, y, width, height

# Header attributes that describe the file encoding rather than the image: never carried over.
_ENCODING_ATTRS = frozenset(
    {
        "compression",
        "planarconfig",
        "DateTime",
        "Software",
        "name",
        "Orientation",
        "openexr:lineOrder",
        "openexr:chunkCount",
        "openexr:dwaCompressionLevel",
        "jpeg:subsampling",
        "tiff:Compression",
        "tiff:PhotometricInterpretation",
        "tiff:PlanarConfiguration",
        "tiff:RowsPerStrip",
        "dpx:Packing",
        "dpx:EndOfLinePadding",
        "dpx:EndOfImagePadding",
        "dpx:ImageDescriptor",
        "dpx:DittoKey",
    }
)
_PREFERRED_LAYERS = ("rgba", "beauty", "combined", "main", "color", "colour")
_MAX_SUBIMAGES = 256

#: Largest data or display window read, in pixels: 16384x16384. A header claiming more is refused before
#: any pixel is read: a corrupt or hostile header (a 1 KB EXR whose display window says 60000x60000) would
#: otherwise have the reader allocate tens of GB. A float RGB buffer at this limit is 3 GiB.
MAX_IMAGE_PIXELS = 2**28
#: Longest side of a data or display window read (a 100000x10 strip is no plate either), for the same reason.
MAX_IMAGE_SIDE = 65536
_HUGE_FIX = (
    "the header is probably corrupt: re-render or re-copy the file; if the image really is that large, "
    "reduce it first (Nuke: Reformat)"
)

#: Most per-frame problem lines in a ``validate_plates`` message; the rest are summarised as frame ranges.
MAX_LISTED_PROBLEMS = 20
_MISSING = "the file does not exist"
_MISSING_FIX = "render or copy the missing frame, or restrict the frame range to frames that exist"
_CONFIRM_MISSING = 1000  # up to this many names absent from a listing are stat'ed too (case-insensitive volumes)


@dataclass
class PlateInfo:
    """What the header says about one plate frame (no pixels)."""

    path: Path
    frame: int | None
    width: int  # display window
    height: int
    data_window: Window  # x, y, w, h in pixel coordinates (y down, as in EXR/Nuke-from-top)
    display_window: Window
    channels: tuple[str, ...]  # every channel of the chosen subimage
    colorspace: str  # input colour space: 'auto' resolved from the header, or the one used to read
    metadata: dict[str, Any] = field(default_factory=dict)  # header attributes to carry over
    file_format: str = ""  # OIIO format name: openexr, png, jpeg, tiff, dpx...
    pixel_format: str = "float"  # stored pixel type: half, float, uint8, uint16...
    subimage: int = 0  # EXR part / subimage the colour was read from
    metadata_types: dict[str, str] = field(default_factory=dict)  # OIIO TypeDesc of each metadata value

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) of the display window."""
        return self.width, self.height

    @property
    def canvas_window(self) -> Window:
        """The bounding box of the display and data windows (x, y, w, h): what the network sees, so that the
        matte covers every data-window pixel, overscan included. The display window itself unless the data
        window reaches outside it (an empty data window adds nothing)."""
        dx, dy, dw, dh = self.data_window
        fx, fy, fw, fh = self.display_window
        if dw <= 0 or dh <= 0:
            return self.display_window
        x0, y0 = min(dx, fx), min(dy, fy)
        x1, y1 = max(dx + dw, fx + fw), max(dy + dh, fy + fh)
        return x0, y0, x1 - x0, y1 - y0


@dataclass
class Plate:
    """One frame ready for the network."""

    info: PlateInfo
    rgb: np.ndarray  # float32 (H, W, 3), display-referred sRGB in [0, 1], display-window (or canvas) size


# --------------------------------------------------------------------------------------------------
# Low-level helpers shared with masks.py and mattes.py


def open_image(path: str | os.PathLike, *, error=PlateError, what: str = "plate") -> oiio.ImageInput:
    """Open ``path`` with alpha left un-premultiplied; raise ``error`` naming the file on failure.

    Only a regular file is opened: opening a FIFO would block until something writes to it.
    """
    path = Path(path)
    try:
        mode = path.stat().st_mode
    except (FileNotFoundError, NotADirectoryError):
        raise error(f"{what} {path} does not exist; check the path and the frame number.") from None
    except OSError as exc:
        raise error(
            f"{what} {path} cannot be read ({exc.strerror}); check its permissions and that the storage is "
            "mounted on this machine."
        ) from None
    kind = file_kind(mode)
    if kind is not None:
        raise error(
            f"{what} {path} is {kind}, not a regular file; give a regular image file (EXR, DPX, TIFF, PNG or JPEG)."
        )
    config = oiio.ImageSpec()
    config.attribute("oiio:UnassociatedAlpha", 1)
    inp = oiio.ImageInput.open(str(path), config)
    if inp is None:
        reason = (oiio.geterror() or "unknown format").strip().replace("\n", " ")
        exc = error(
            f"{what} {path} cannot be opened as an image ({reason}); "
            "re-export it as EXR, DPX, TIFF, PNG or JPEG."
        )
        exc.reason = reason
        raise exc
    return inp


def pick_channels(
    names: tuple[str, ...] | list[str], alpha_hint: int = -1
) -> tuple[tuple[int, int, int], int, int]:
    """(R, G, B indices, alpha index or -1, score) for a channel list; higher score = better colour."""
    lower = [n.lower() for n in names]

    def index(name: str) -> int:
        return lower.index(name) if name in lower else -1

    r, g, b = index("r"), index("g"), index("b")
    if min(r, g, b) >= 0:
        a = index("a")
        return (r, g, b), (a if a >= 0 else alpha_hint), 3
    layers: list[str] = []
    for n in lower:
        if n.endswith(".r") and n[:-2] not in layers:
            layers.append(n[:-2])
    layers.sort(
        key=lambda layer: (
            _PREFERRED_LAYERS.index(layer.split(".")[-1])
            if layer.split(".")[-1] in _PREFERRED_LAYERS
            else len(_PREFERRED_LAYERS)
        )
    )
    for layer in layers:
        r, g, b = index(f"{layer}.r"), index(f"{layer}.g"), index(f"{layer}.b")
        if min(r, g, b) >= 0:
            return (r, g, b), index(f"{layer}.a"), 2
    y = index("y")
    if y >= 0:
        return (y, y, y), index("a") if index("a") >= 0 else alpha_hint, 1
    if not names:
        return (0, 0, 0), -1, -1
    if len(names) >= 3:
        return (0, 1, 2), alpha_hint, 0
    # one channel (grey) or two (grey + alpha)
    alpha = alpha_hint if alpha_hint >= 0 else (1 if len(names) == 2 else -1)
    return (0, 0, 0), alpha, 0


def choose_subimage(inp: oiio.ImageInput, path: Path, error=PlateError) -> tuple[int, oiio.ImageSpec]:
    """The subimage (EXR part) that holds the colour channels."""
    best: tuple[int, int, oiio.ImageSpec] | None = None
    index = 0
    while index < _MAX_SUBIMAGES and inp.seek_subimage(index, 0):
        spec = inp.spec()
        if not spec.deep:
            _, _, score = pick_channels(spec.channelnames, spec.alpha_channel)
            if best is None or score > best[1]:
                best = (index, score, spec)
            if score == 3:
                break
        index += 1
    inp.geterror()  # the failed seek past the last subimage leaves an error message behind: clear it
    if best is None:
        raise error(f"{path} holds no flat (non-deep) image; write the plate as a regular image.")
    inp.seek_subimage(best[0], 0)
    return best[0], best[2]


def size_problem(spec: oiio.ImageSpec) -> str | None:
    """What is wrong with the size a header claims (see ``MAX_IMAGE_PIXELS``), or None: read from the header,
    so a file is refused before its pixels are allocated."""
    for window, width, height in (
        ("display window", int(spec.full_width), int(spec.full_height)),
        ("data window", int(spec.width), int(spec.height)),
    ):
        if max(width, height) > MAX_IMAGE_SIDE or width * height > MAX_IMAGE_PIXELS:
            return (
                f"its header claims a {width}x{height} {window}, more than this tool reads "
                f"({MAX_IMAGE_PIXELS} pixels, at most {MAX_IMAGE_SIDE} on a side)"
            )
    return None


def refuse_huge(path: Path, spec: oiio.ImageSpec, *, error=PlateError, what: str = "plate") -> None:
    """Raise ``error`` when the header claims an image too large to read (see ``size_problem``)."""
    problem = size_problem(spec)
    if problem is not None:
        raise error(f"{what} {path}: {problem}; {_HUGE_FIX}.")


def read_channels(
    inp: oiio.ImageInput,
    path: Path,
    subimage: int,
    spec: oiio.ImageSpec,
    indices: list[int],
    error=PlateError,
) -> np.ndarray:
    """Float32 (h, w, len(indices)) pixels of the data window; a truncated file raises ``error``.

    Half-float channels are read as half and widened here: OIIO's own half-to-float conversion is much
    slower than torch's (BENCHMARKS.md), and the values are the same (every half is exact in float32).
    """
    lo, hi = min(indices), max(indices) + 1
    formats = list(spec.channelformats) or [spec.format] * spec.nchannels
    as_half = all(str(f) == "half" for f in formats[lo:hi])
    pixels = inp.read_image(subimage, 0, lo, hi, "half" if as_half else "float")
    # JPEG returns (garbage-padded) pixels *and* flags an error when truncated: trust the error flag.
    if pixels is None or inp.has_error:
        reason = (inp.geterror() or oiio.geterror() or "read failed").strip().replace("\n", " ")
        exc = error(
            f"{path}: the pixels cannot be read, the file is truncated or corrupt ({reason}); "
            f"re-render or re-copy it (check that the transfer completed)."
        )
        exc.reason = reason
        raise exc
    if as_half:
        pixels = torch.from_numpy(np.ascontiguousarray(pixels)).float().numpy()
    pixels = np.asarray(pixels, dtype=np.float32)
    if pixels.ndim == 2:
        pixels = pixels[:, :, None]
    elif pixels.ndim == 4:  # volumetric: (d, h, w, c) - take the first slice
        pixels = pixels[0]
    if list(indices) == list(range(lo, hi)):
        return pixels  # already in order: no copy
    return pixels[:, :, [i - lo for i in indices]]


def _metadata(spec: oiio.ImageSpec) -> tuple[dict[str, Any], dict[str, str]]:
    values: dict[str, Any] = {}
    types: dict[str, str] = {}
    for param in spec.extra_attribs:
        name = param.name
        if name.startswith("oiio:") or name in _ENCODING_ATTRS:
            continue
        try:
            values[name] = param.value
        except Exception:  # an attribute type the Python bindings cannot convert: not worth failing for
            continue
        types[name] = str(param.type)
    return values, types


def _info(
    path: Path, frame: int | None, inp: oiio.ImageInput, subimage: int, spec: oiio.ImageSpec
) -> PlateInfo:
    metadata, types = _metadata(spec)
    file_format = inp.format_name()
    pixel_format = str(spec.format)
    return PlateInfo(
        path=path,
        frame=frame,
        width=int(spec.full_width),
        height=int(spec.full_height),
        data_window=(int(spec.x), int(spec.y), int(spec.width), int(spec.height)),
        display_window=(int(spec.full_x), int(spec.full_y), int(spec.full_width), int(spec.full_height)),
        channels=tuple(spec.channelnames),
        colorspace=auto_colorspace(file_format, pixel_format, metadata),
        metadata=metadata,
        file_format=file_format,
        pixel_format=pixel_format,
        subimage=subimage,
        metadata_types=types,
    )


def _overlap(data_window: Window, display_window: Window) -> tuple[slice, slice, slice, slice] | None:
    """(display rows, display cols, data rows, data cols) of the windows' intersection."""
    dx, dy, dw, dh = data_window
    fx, fy, fw, fh = display_window
    x0, y0 = max(dx, fx), max(dy, fy)
    x1, y1 = min(dx + dw, fx + fw), min(dy + dh, fy + fh)
    if x1 <= x0 or y1 <= y0:
        return None
    return (
        slice(y0 - fy, y1 - fy),
        slice(x0 - fx, x1 - fx),
        slice(y0 - dy, y1 - dy),
        slice(x0 - dx, x1 - dx),
    )


def to_window(pixels: np.ndarray, pixels_window: Window, window: Window) -> np.ndarray:
    """``pixels``, which cover ``pixels_window``, placed on a zero image covering ``window``: what lies
    outside ``window`` is dropped, what ``pixels`` do not cover is zero."""
    if pixels_window == window:
        return np.ascontiguousarray(pixels)
    out = np.zeros((window[3], window[2]) + pixels.shape[2:], dtype=pixels.dtype)
    cut = _overlap(pixels_window, window)
    if cut is not None:
        out[cut[0], cut[1]] = pixels[cut[2], cut[3]]
    return out


def paste_to_display(data: np.ndarray, data_window: Window, display_window: Window) -> np.ndarray:
    """Data-window pixels placed on a zero display-window canvas (overscan outside is dropped)."""
    return to_window(data, data_window, display_window)


def crop_to_data_window(image: np.ndarray, data_window: Window, display_window: Window) -> np.ndarray:
    """Inverse of :func:`paste_to_display`: display-size pixels cut (or zero-padded) to the data window."""
    return to_window(image, display_window, data_window)


# --------------------------------------------------------------------------------------------------
# Public API


def read_plate_info(path: str | os.PathLike, frame: int | None = None) -> PlateInfo:
    """Header only: sizes, windows, channels, format, metadata. Cheap (no pixel decode)."""
    path = Path(path)
    inp = open_image(path)
    try:
        subimage, spec = choose_subimage(inp, path)
        refuse_huge(path, spec)
        return _info(path, frame, inp, subimage, spec)
    finally:
        inp.close()


def _read_raw(path: Path, frame: int | None) -> tuple[PlateInfo, np.ndarray]:
    """Header and the file's own RGB values of the data window, (h, w, 3) float32."""
    inp = open_image(path)
    try:
        subimage, spec = choose_subimage(inp, path)
        refuse_huge(path, spec)
        info = _info(path, frame, inp, subimage, spec)
        rgb_idx, _, _ = pick_channels(spec.channelnames, spec.alpha_channel)
        data = read_channels(inp, path, subimage, spec, list(rgb_idx))
    finally:
        inp.close()
    return info, data


def read_source_rgb(info: PlateInfo) -> np.ndarray:
    """The plate's original RGB values (no colour conversion) of its data window, float32 (h, w, 3).

    Used by the 'rgba' matte writer, which must hand back the plate as it was, not as the network saw it.
    """
    _, data = _read_raw(Path(info.path), info.frame)
    return data


def read_plate(
    path: str | os.PathLike,
    frame: int | None = None,
    colorspace: str = "auto",
    *,
    colour: ColourSettings | None = None,
    max_size: int | None = None,
    overscan: bool = False,
) -> Plate:
    """Read one plate frame for the network: display-referred sRGB float32 (H, W, 3) in [0, 1].

    The image covers the display window, or with ``overscan`` the canvas (``PlateInfo.canvas_window``: the
    display window grown to hold the whole data window).

    ``max_size``: when the image's long side is larger, the image is shrunk (area filter, in the
    file's own, usually linear, values) to that long side *before* the colour conversion. The network runs
    at that size anyway, and converting far fewer pixels makes reading a large EXR cheaper (BENCHMARKS.md).
    ``Plate.rgb`` is then smaller than ``Plate.info``'s size, which stays the plate's.

    ``colorspace`` is 'auto' (per file type, see ``colour.auto_colorspace``), 'linear', 'srgb', 'log',
    'raw' or an OCIO colour space name. NaN/Inf pixels are zeroed (with a warning) rather than
    passed on; ``validate_plates`` reports them before a render starts.
    """
    path = Path(path)
    info, data = _read_raw(path, frame)
    return prepare_plate(info, data, colorspace, colour=colour, max_size=max_size, overscan=overscan)


def prepare_plate(
    info: PlateInfo,
    data: np.ndarray,
    colorspace: str = "auto",
    *,
    colour: ColourSettings | None = None,
    max_size: int | None = None,
    overscan: bool = False,
) -> Plate:
    """The network's view of a frame from the file's own RGB values of its data window (see ``read_plate``).

    Split from ``read_plate`` so that ``validate_plates``, which decodes every frame anyway, can hand the
    decoded pixels on (``prepare``) instead of the render decoding each frame a second time.
    """
    space = info.colorspace if colorspace in (None, "", "auto") else colorspace
    bad = 0 if np.isfinite(data).all() else int(np.count_nonzero(~np.isfinite(data)))
    if bad:
        log.warning("frame %s (%s): %d NaN/Inf values replaced before the network", info.frame, info.path, bad)
    window = info.canvas_window if overscan else info.display_window
    if max_size and max(window[2], window[3]) > max_size:
        if bad:
            data = np.nan_to_num(data, nan=0.0, posinf=0.0, neginf=0.0)
        canvas = to_window(data, info.data_window, window)
        h, w = fit_long_side(window[3], window[2], max_size)
        rgb = to_display_srgb(cv2.resize(canvas, (w, h), interpolation=cv2.INTER_AREA), space, colour)
    else:
        rgb = to_display_srgb(data, space, colour)
        rgb = to_window(rgb, info.data_window, window)
    return Plate(replace(info, colorspace=space), np.ascontiguousarray(rgb, dtype=np.float32))


PrepareFn = Callable[[PlateInfo, np.ndarray], Any]


def _check_frame(
    frame: int, path: Path, check_pixels: bool, prepare: PrepareFn | None = None
) -> tuple[PlateInfo | None, list[FrameProblem]]:
    """The header (and pixels) of one frame: its PlateInfo, or None, and what is wrong with it.

    ``prepare(info, rgb)`` gets the decoded RGB of the data window of a frame whose pixels are clean.
    """
    try:
        status = path.stat()
    except (FileNotFoundError, NotADirectoryError):
        return None, [FrameProblem(frame, path, _MISSING, _MISSING_FIX)]
    except OSError as exc:
        return None, [
            FrameProblem(
                frame,
                path,
                f"the file cannot be read ({exc.strerror})",
                "check its permissions and that the storage is mounted on this machine",
            )
        ]
    kind = file_kind(status.st_mode)
    if kind is not None:  # checked before opening: opening a FIFO would block
        return None, [
            FrameProblem(
                frame,
                path,
                f"it is {kind}, not a regular file",
                "put the frame's image file (EXR, DPX, TIFF, PNG or JPEG) there instead",
            )
        ]
    if status.st_size == 0:
        return None, [
            FrameProblem(
                frame,
                path,
                "the file is empty (0 bytes)",
                "re-render or re-copy it (an interrupted transfer?)",
            )
        ]
    try:
        inp = open_image(path)
    except PlateError as exc:
        return None, [
            FrameProblem(
                frame,
                path,
                "it cannot be opened as an image: not an image, or truncated/corrupt "
                f"({getattr(exc, 'reason', exc)})",
                "re-render or re-copy it, or re-export it as EXR, DPX, TIFF, PNG or JPEG",
            )
        ]
    problems: list[FrameProblem] = []
    try:
        try:
            subimage, spec = choose_subimage(inp, path)
        except PlateError as exc:
            return None, [FrameProblem(frame, path, str(exc), "re-export it as a regular image")]
        huge = size_problem(spec)
        if huge is not None:  # before any pixel is read
            return None, [FrameProblem(frame, path, huge, _HUGE_FIX)]
        info = _info(path, frame, inp, subimage, spec)
        if info.width <= 0 or info.height <= 0:
            problems.append(
                FrameProblem(
                    frame,
                    path,
                    f"its display window is empty ({info.width}x{info.height})",
                    "fix the file's display window (Nuke: Reformat)",
                )
            )
        if check_pixels:
            rgb_idx, _, _ = pick_channels(spec.channelnames, spec.alpha_channel)
            channels = sorted(set(rgb_idx))
            try:
                data = read_channels(inp, path, subimage, spec, channels)
            except PlateError as exc:
                return None, [
                    FrameProblem(
                        frame,
                        path,
                        "its pixels cannot be read, the file is truncated or corrupt "
                        f"({getattr(exc, 'reason', exc)})",
                        "re-render or re-copy it (check that the transfer completed)",
                    )
                ]
            finite = bool(np.isfinite(data).all())  # one pass for the usual clean frame; count only if not
            nan = 0 if finite else int(np.count_nonzero(np.isnan(data)))
            inf = 0 if finite else int(np.count_nonzero(np.isinf(data)))
            if nan or inf:
                names = ",".join(spec.channelnames[i] for i in channels)
                problems.append(
                    FrameProblem(
                        frame,
                        path,
                        f"{nan} NaN and {inf} Inf values in channels {names}",
                        "fix the plate upstream (e.g. Nuke: Expression 'isnan(r)?0:r' or a Clamp) "
                        "and re-render it",
                    )
                )
            elif prepare is not None and not problems:
                prepare(info, data[:, :, [channels.index(i) for i in rgb_idx]] if list(rgb_idx) != channels
                        else data)
    finally:
        inp.close()
    return info, problems


_FRAME_DIGITS_RE = re.compile(r"\d+")


def _list_folder(folder: str) -> set[str] | None:
    """The names in ``folder``: empty when it does not exist, None when it cannot be listed."""
    try:
        return set(os.listdir(folder or "."))
    except (FileNotFoundError, NotADirectoryError):
        return set()
    except OSError:
        return None


Missing = dict[str, tuple[list[int], list[str]]]  # folder -> (indices into frames, file names)


def _missing_frames(frames: list[tuple[int, Path]]) -> tuple[Missing, list[int], dict[str, set[str] | None]]:
    """The frames whose file is not on disk, by folder; the indices of the others; each folder's listing.

    One directory listing per folder rather than a ``stat`` per frame: a range of millions of frames on a
    plate of ten is answered at once. Frames in a folder that cannot be listed are left to ``_check_frame``.
    """
    listings: dict[str, set[str] | None] = {}
    missing: Missing = {}
    present: list[int] = []
    sep = os.sep
    folder: str | None = None
    names: set[str] | None = None
    absent: tuple[list[int], list[str]] = ([], [])
    for index, (_, path) in enumerate(frames):
        text = str(path)
        cut = text.rfind(sep)
        if folder is None or cut != len(folder) or not text.startswith(folder):  # not the last frame's folder
            folder = text[:cut] if cut > 0 else sep if cut == 0 else ""
            if folder not in listings:
                listings[folder] = _list_folder(folder)
            names = listings[folder]
            absent = missing.setdefault(folder, ([], []))
        name = text[cut + 1 :]
        if names is None or name in names:
            present.append(index)
        else:
            absent[0].append(index)
            absent[1].append(name)
    missing = {folder: absent for folder, absent in missing.items() if absent[0]}
    if sum(len(indices) for indices, _ in missing.values()) <= _CONFIRM_MISSING:
        # a name spelled in another case on a case-insensitive volume is there after all
        for folder_, (indices, names_) in list(missing.items()):
            there = [os.path.exists(frames[index][1]) for index in indices]
            if any(there):
                present = sorted(present + [index for index, is_there in zip(indices, there, strict=True) if is_there])
                kept = [(index, name) for index, name, is_there in zip(indices, names_, there, strict=True)
                        if not is_there]
                missing[folder_] = ([index for index, _ in kept], [name for _, name in kept])
                if not kept:
                    del missing[folder_]
    return missing, present, listings


def _split_at_frame(name: str, frame: int) -> tuple[str, str, str] | None:
    """(before, digits, after) of a file name around the last number in it that is ``frame``."""
    for m in reversed(list(_FRAME_DIGITS_RE.finditer(name))):
        digits, start = m.group(0), m.start()
        if frame < 0 and start > 0 and name[start - 1] == "-" and -int(digits) == frame:
            return name[: start - 1], "-" + digits, name[m.end():]
        if int(digits) == frame:
            return name[:start], digits, name[m.end():]
    return None


def _sequences(
    frames: list[tuple[int, Path]], indices: list[int], names: list[str]
) -> tuple[dict[tuple[str, str], tuple[list[int], int]], list[int]]:
    """The missing files of one folder by sequence: (before, after) -> (indices, padding), and the indices
    of names without their frame number in them."""
    first = _split_at_frame(names[0], frames[indices[0]][0])
    if first is not None and len(names) > 1:
        # the usual case: every name is of the first one's sequence, checked in one pass
        before, _, after = first
        one_sequence = re.compile(f"(?:{re.escape(before)}\\d+{re.escape(after)}\n)*")
        if one_sequence.fullmatch("\n".join(names) + "\n"):
            return {(before, after): (indices, min(map(len, names)) - len(before) - len(after))}, []
    groups: dict[tuple[str, str], tuple[list[int], int]] = {}
    singles: list[int] = []
    for index, name in zip(indices, names, strict=True):
        split = _split_at_frame(name, frames[index][0])
        if split is None:
            singles.append(index)
            continue
        before, digits, after = split
        members, width = groups.get((before, after), ([], len(digits)))
        members.append(index)
        groups[(before, after)] = (members, min(width, len(digits.lstrip("-"))))
    return groups, singles


def _missing_lines(
    frames: list[tuple[int, Path]], missing: Missing, listings: dict[str, set[str] | None]
) -> list[tuple[int, np.ndarray, str]]:
    """(first frame, frames, message line) per sequence of missing frames: ranges, not a line per frame.

    A sequence is the frames' folder and file name around the frame number; the line says which frames of
    it are on disk, so a range typed for another shot or padding is recognised at a glance. A sequence
    with a single missing frame gets the frame's own line, which names the file.
    """

    def own_line(index: int) -> tuple[int, np.ndarray, str]:
        frame, path = frames[index]
        return frame, np.array([frame], np.int64), FrameProblem(frame, path, _MISSING, _MISSING_FIX).describe()

    lines: list[tuple[int, np.ndarray, str]] = []
    for folder, (folder_indices, names) in missing.items():
        groups, singles = _sequences(frames, folder_indices, names)
        lines += [own_line(index) for index in singles]
        for (before, after), (indices, width) in groups.items():
            if len(indices) == 1:
                lines.append(own_line(indices[0]))
                continue
            numbers = np.fromiter((frames[index][0] for index in indices), np.int64, len(indices))
            pattern = os.path.join(folder, f"{before}{'#' * width}{after}")
            runs = frame_runs(numbers)
            count = sum(last - first + 1 for first, last in runs)
            regex = re.compile(re.escape(before) + r"(-?\d+)" + re.escape(after) + r"\Z")
            on_disk = [
                int(m.group(1))
                for m in map(regex.match, listings.get(folder) or ())
                if m is not None and len(m.group(1).lstrip("-")) >= width
            ]
            if on_disk:
                where = f"{pattern} has frames {format_runs(frame_runs(on_disk))} on disk"
                fix = "render or copy the missing frames, or check the frame range (--frames)"
            elif os.path.isdir(folder or "."):
                where = f"no file of {pattern} is on disk"
                fix = "check the pattern, its padding (#### = 4 digits) and the frame range (--frames)"
            else:
                where = f"the folder {folder} does not exist"
                fix = "check the path, and that the storage is mounted on this machine"
            text = f"frames {format_runs(runs)} ({count} frames) are missing: {where}; {fix}."
            lines.append((runs[0][0], numbers, text))
    return lines


def _plate_error(
    frames: list[tuple[int, Path]],
    missing: Missing,
    listings: dict[str, set[str] | None],
    others: list[FrameProblem],
) -> PlateError:
    """One error for every bad frame: missing frames as ranges, other problems a line each up to a cap.

    ``PlateError.problems`` still lists every problem, built only when asked for.
    """
    entries = _missing_lines(frames, missing, listings)
    absent = unique_frames(np.concatenate([n for _, n, _ in entries])) if entries else np.array([], np.int64)
    entries += [
        (p.frame if p.frame is not None else 0, np.array([] if p.frame is None else [p.frame], np.int64), p.describe())
        for p in others
    ]
    entries.sort(key=lambda e: e[0])
    shown, hidden = entries[:MAX_LISTED_PROBLEMS], entries[MAX_LISTED_PROBLEMS:]
    lines = ["  " + text for _, _, text in shown]
    if hidden:
        rest = np.concatenate([numbers for _, numbers, _ in hidden])
        lines.append(f"  ... and {len(hidden)} more problems (frames {format_runs(frame_runs(rest))}).")
    others_bad = np.array(sorted({p.frame for p in others if p.frame is not None}), np.int64)
    bad = absent.size + int(np.count_nonzero(~np.isin(others_bad, absent)))

    def every_problem() -> list[FrameProblem]:
        problems = [
            FrameProblem(frames[index][0], frames[index][1], _MISSING, _MISSING_FIX)
            for indices, _ in missing.values()
            for index in indices
        ]
        problems += others
        problems.sort(key=lambda p: p.frame if p.frame is not None else 0)
        return problems

    body = "\n".join(lines)
    return PlateError(
        f"{bad} of {len(frames)} plate frames cannot be used, so nothing was processed. Fix these and "
        f"run again:\n{body}",
        every_problem,
    )


def _as_frames(frames: list[tuple[int, Path]]) -> list[tuple[int, Path]]:
    return [fp if type(fp[0]) is int and isinstance(fp[1], Path) else (int(fp[0]), Path(fp[1])) for fp in frames]


def check_frames_exist(frames: list[tuple[int, Path]]) -> None:
    """Raise ``validate_plates``' error for the missing frames now, from folder listings alone (no header read).

    For a caller with per-frame work to do before the plate check (output paths, resume): a frame range far
    beyond the plate then fails at once, rather than after that work. The other problems wait for
    ``validate_plates``.
    """
    frames = _as_frames(frames)
    missing, _, listings = _missing_frames(frames)
    if missing:
        raise _plate_error(frames, missing, listings, [])


def validate_plates(
    frames: list[tuple[int, Path]],
    check_pixels: bool = True,
    *,
    workers: int | None = None,
    pixel_frames: Collection[int] | None = None,
    prepare: PrepareFn | None = None,
    on_checked: Callable[[int, int], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> list[PlateInfo]:
    """Check every frame of a shot before any fine-tuning; one ``PlateError`` lists every bad frame.

    Finds missing, empty, unreadable, non-regular (FIFO, directory...) and truncated files, headers claiming
    an absurd size, display sizes differing from the first frame's, and (``check_pixels``) NaN/Inf in the
    colour channels. Which files exist is found first from one listing per folder, so a frame range far
    beyond the plate is reported at once, as ranges; headers are then read for every frame on disk;
    ``check_pixels`` decodes the frames in ``pixel_frames`` (default: all) fully, spread over a thread
    pool (OIIO releases the GIL while decoding); ``check_pixels=False`` reads headers only, far cheaper
    (timings: BENCHMARKS.md). ``prepare(info,
    rgb)`` receives the decoded RGB of every clean pixel-checked frame (from a pool thread), so a render
    can keep what it needs instead of decoding the shot twice (see ``PreparedPlates``). Returns the
    ``PlateInfo`` of every frame, in order.

    A long shot can take a minute to check, so ``on_checked(done, total)`` reports progress (at most
    every 0.2 s, and once at the end), and ``should_stop()`` is polled before each frame: when it turns
    true, the frames not yet started are skipped and ``CheckStopped`` is raised.
    """
    frames = _as_frames(frames)
    decode = None if pixel_frames is None else {int(f) for f in pixel_frames}
    if not frames:
        raise PlateError(
            "no plate frames to render: the frame range is empty or no file matched the pattern."
        )
    workers = workers or max(1, min(8, os.cpu_count() or 1))
    stopped = should_stop or (lambda: False)
    missing, on_disk, listings = _missing_frames(frames)

    def check(index: int) -> tuple[PlateInfo | None, list[FrameProblem]] | None:
        if stopped():
            return None
        frame, path = frames[index]
        return _check_frame(frame, path, check_pixels and (decode is None or frame in decode), prepare)

    results: dict[int, tuple[PlateInfo | None, list[FrameProblem]]] = {}
    done = len(frames) - len(on_disk)  # the missing frames are settled by the listing
    last_report = time.monotonic()
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="osvos-validate") as pool:
        checked = pool.map(check, on_disk)
        try:
            for index, result in zip(on_disk, checked, strict=True):
                if result is None or stopped():
                    raise CheckStopped(
                        f"plate check stopped after {done} of {len(frames)} frames; nothing was written"
                    )
                results[index] = result
                done += 1
                now = time.monotonic()
                if on_checked is not None and (now - last_report >= 0.2 or done == len(frames)):
                    on_checked(done, len(frames))
                    last_report = now
        finally:
            checked.close()  # cancels the frames not yet started (on an error or an interrupt too)
    if on_checked is not None and not on_disk:
        on_checked(done, len(frames))

    problems: list[FrameProblem] = []
    reference: PlateInfo | None = None
    for index in on_disk:
        frame, path = frames[index]
        info, frame_problems = results[index]
        problems.extend(frame_problems)
        if info is None:
            continue
        if reference is None:
            reference = info
        elif info.size != reference.size:
            problems.append(
                FrameProblem(
                    frame,
                    path,
                    f"its display size is {info.width}x{info.height} but frame {reference.frame} is "
                    f"{reference.width}x{reference.height}",
                    "conform the plate so every frame has the same resolution (Nuke: Reformat)",
                )
            )
    if problems or missing:
        raise _plate_error(frames, missing, listings, problems)
    decoded = 0 if not check_pixels else len(frames) if decode is None else sum(f in decode for f, _ in frames)
    log.info("validated %d plate frames (headers; pixels of %d)", len(frames), decoded)
    return [results[i][0] for i in range(len(frames))]  # type: ignore[misc]
