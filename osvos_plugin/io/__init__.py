"""Plate I/O: sequences, colour, plates, masks, mattes and background prefetch/write.

Everything a render needs to get pixels in and mattes out, with every problem reported up front
in one clear message (see ``errors``).
"""

from __future__ import annotations

from ..files import atomic_write
from .colour import ColourSettings, auto_colorspace, to_display_srgb
from .errors import CheckStopped, FrameProblem, MaskError, OutputError, PlateError
from .keyframes import load_keyframes, load_object_keyframes, object_names, painted_share
from .masks import read_mask
from .mattes import MATTE_FORMATS, check_matte_path, read_matte_metadata, write_matte
from .plates import (
    Plate,
    PlateInfo,
    check_frames_exist,
    prepare_plate,
    read_plate,
    read_plate_info,
    read_source_rgb,
    validate_plates,
)
from .prefetch import AsyncWriter, PrefetchReader
from .prepared import PreparedPlates
from .sequence import format_frame_path, parse_frame_range, resolve_sequence
from .threads import io_thread_budget

__all__ = [
    "PlateInfo",
    "Plate",
    "resolve_sequence",
    "parse_frame_range",
    "format_frame_path",
    "read_plate",
    "prepare_plate",
    "read_plate_info",
    "read_source_rgb",
    "validate_plates",
    "check_frames_exist",
    "CheckStopped",
    "read_mask",
    "load_keyframes",
    "load_object_keyframes",
    "object_names",
    "painted_share",
    "write_matte",
    "read_matte_metadata",
    "check_matte_path",
    "atomic_write",
    "MATTE_FORMATS",
    "PrefetchReader",
    "AsyncWriter",
    "PreparedPlates",
    "io_thread_budget",
    "ColourSettings",
    "auto_colorspace",
    "to_display_srgb",
    "PlateError",
    "MaskError",
    "OutputError",
    "FrameProblem",
]
