"""Colour management: plates go to the network as display-referred sRGB in [0, 1].

The network was trained on sRGB photographs (DAVIS JPEGs), so a scene-linear EXR must be encoded
the way it would look on an sRGB monitor before it is segmented. This is done with OpenColorIO:

* config: ``ColourSettings.config`` if given, else the studio config in ``$OCIO``, else OCIO 2's
  built-in ``ocio://default`` (the CG config).
* input colour space ``'auto'`` (decided per file by :func:`auto_colorspace`):

  - half/float pixels (any format, EXR always): ``'linear'``. With the built-in config that is
    linear Rec.709 (Nuke's and Blender's default working space); with a studio config it is the
    config's ``scene_linear`` role.
  - 8/16-bit PNG, JPEG, TIFF: ``'srgb'`` (already display-referred: no conversion).
  - DPX/Cineon: ``'srgb'`` (video) unless the header's transfer says printing density /
    logarithmic (or the file is a .cin): ``'log'``, decoded with the standard Cineon formula
    (ref white 685, ref black 95, 0.6 gamma) to linear Rec.709. Keep it simple: for anything
    fancier (ARRI LogC, ACEScct...) pass the OCIO colour space name explicitly.

  Any OCIO colour space name (or alias) of the config is accepted too, as are ``'raw'``/``'data'``
  (no conversion at all).
* output: the config's sRGB-encoded Rec.709 colour space (``srgb_rec709_scene`` / ``sRGB - Texture``
  and their usual aliases: a plain sRGB encoding, so linear 0.18 grey becomes ~0.46). A config
  without one falls back to its default display/view transform; ``ColourSettings.target`` or
  ``display``/``view`` choose explicitly.

Highlights: after the transform, encoded values above ``highlight_knee`` are rolled off smoothly
towards 1.0 (a tanh shoulder, C1-continuous at the knee) instead of being clipped hard, so a sun
glint at linear 50.0 becomes ~1.0 while the mid-tones stay untouched. NaN and -Inf become 0 and +Inf
the brightest value before anything else, so they never propagate into the network.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np
import PyOpenColorIO as ocio

from .errors import PlateError

log = logging.getLogger(__name__)

__all__ = [
    "ColourSettings",
    "auto_colorspace",
    "to_display_srgb",
    "soft_clip",
    "cineon_to_linear",
    "load_ocio_config",
]

BUILTIN_CONFIG = "ocio://default"

_LINEAR_CANDIDATES = (
    "lin_rec709_scene",
    "Linear Rec.709 (sRGB)",
    "lin_rec709",
    "Utility - Linear - sRGB",
    "linear",
)
_SRGB_CANDIDATES = (
    "srgb_rec709_scene",
    "sRGB Encoded Rec.709 (sRGB)",
    "srgb_tx",
    "sRGB - Texture",
    "Utility - sRGB - Texture",
    "Output - sRGB",
    "srgb_texture",
    "sRGB",
)
_PSEUDO = {"auto", "linear", "scene_linear", "srgb", "log", "cineon", "raw", "data"}
_FLOAT_FORMATS = {"half", "float", "double"}
_HALF_MAX = 65504.0


@dataclass(frozen=True)
class ColourSettings:
    """How plates are converted to the network's display-referred sRGB."""

    config: str | None = None  # OCIO config path or ocio:// URI; None: $OCIO, else ocio://default
    linear: str | None = None  # colour space meant by 'linear'; None: see module doc
    target: str | None = None  # output colour space; None: the config's sRGB encoding
    display: str | None = None  # display/view used when the config has no sRGB colour space
    view: str | None = None
    highlight_knee: float = 0.9  # encoded values above this are rolled off towards 1.0

    def config_name(self) -> str:
        return self.config or os.environ.get("OCIO") or BUILTIN_CONFIG


@lru_cache(maxsize=8)
def load_ocio_config(name: str) -> ocio.Config:
    """The OCIO config at ``name`` (a file or an ``ocio://`` URI), loaded once per process."""
    try:
        config = ocio.Config.CreateFromFile(name)
    except Exception as exc:  # OCIO raises its own Exception type for every problem
        raise PlateError(
            f"OpenColorIO config {name!r} could not be loaded ({exc}); check $OCIO or the config path "
            f"(unset $OCIO to use the built-in {BUILTIN_CONFIG})."
        ) from exc
    try:
        config.validate()
    except Exception as exc:  # many studio configs have harmless issues: the transforms we use may be fine
        log.warning("OCIO config %s does not validate (%s); using it anyway", name, exc)
    log.debug("OCIO config %s loaded (%s)", name, config.getName())
    return config


def auto_colorspace(file_format: str, pixel_format: str, metadata: dict[str, Any] | None = None) -> str:
    """'linear', 'log' or 'srgb' for a file, from its format, pixel type and header.

    Float data is scene-linear in practice (EXR, float TIFF, HDR); integer data is display-referred
    sRGB except DPX/Cineon whose header declares a logarithmic (printing density) transfer.
    """
    file_format = (file_format or "").lower()
    if (pixel_format or "").lower() in _FLOAT_FORMATS or file_format in ("openexr", "hdr"):
        return "linear"
    if file_format == "cineon":
        return "log"
    if file_format == "dpx":
        transfer = str((metadata or {}).get("dpx:Transfer", "")).lower()
        if "log" in transfer or "printing density" in transfer:
            return "log"
    return "srgb"


def cineon_to_linear(
    code: np.ndarray, ref_white: float = 685.0, ref_black: float = 95.0, gamma: float = 0.6
) -> np.ndarray:
    """Standard Cineon/Kodak log decode of normalised 10-bit code values to scene-linear."""
    black = 10.0 ** ((ref_black - ref_white) * 0.002 / gamma)
    lin = (np.power(10.0, (code.astype(np.float64) * 1023.0 - ref_white) * 0.002 / gamma) - black) / (
        1.0 - black
    )
    return lin.astype(np.float32)


def soft_clip(x: np.ndarray, knee: float = 0.9) -> np.ndarray:
    """Identity below ``knee``, a tanh shoulder from ``knee`` to 1.0 above; result in [0, 1].

    The shoulder has slope 1 at the knee (no visible kink) and never exceeds 1.0, so highlights keep
    some gradation instead of a flat clipped plateau.
    """
    x = np.nan_to_num(np.asarray(x, dtype=np.float32), nan=0.0, posinf=_HALF_MAX, neginf=0.0)
    if not 0.0 < knee < 1.0:
        return np.clip(x, 0.0, 1.0)
    span = 1.0 - knee
    over = x > knee
    if np.any(over):
        x = x.copy()
        x[over] = knee + span * np.tanh((x[over] - knee) / span)
    return np.clip(x, 0.0, 1.0)


def _find_space(config: ocio.Config, names: tuple[str, ...]) -> str | None:
    for name in names:
        space = config.getColorSpace(name)  # resolves aliases and roles
        if space is not None:
            return space.getName()
    return None


def _resolve_source(config: ocio.Config, colorspace: str, settings: ColourSettings) -> str | None:
    """OCIO colour space for a (pseudo) colour space name; None for 'srgb' handled as identity."""
    key = colorspace.lower()
    if key in ("linear", "scene_linear", "log", "cineon"):
        if settings.linear:
            name = _find_space(config, (settings.linear,))
            if name is None:
                raise PlateError(
                    f"linear colour space {settings.linear!r} is not in the OCIO config "
                    f"{settings.config_name()}; pick one of its colour spaces."
                )
            return name
        if settings.config_name() == BUILTIN_CONFIG:
            name = _find_space(config, _LINEAR_CANDIDATES)
        else:
            name = _find_space(config, ("scene_linear",)) or _find_space(config, _LINEAR_CANDIDATES)
        if name is None:
            raise PlateError(
                f"OCIO config {settings.config_name()} has no scene_linear role; "
                "pass the plate's colour space by name."
            )
        return name
    if key == "srgb":
        return _find_space(config, _SRGB_CANDIDATES)
    name = _find_space(config, (colorspace,))
    if name is None:
        known = ", ".join(sorted(_PSEUDO - {"cineon", "scene_linear", "data"}))
        raise PlateError(
            f"colour space {colorspace!r} is neither one of {known} nor a colour space of the OCIO config "
            f"{settings.config_name()}; check the spelling (ociocheck lists the config's colour spaces)."
        )
    return name


@lru_cache(maxsize=64)
def _cpu_processor(config_name: str, src: str, settings: ColourSettings) -> tuple[Any, str]:
    """(OCIO CPU processor or None for identity, description), cached: building one costs ms."""
    config = load_ocio_config(config_name)
    src_name = _resolve_source(config, src, settings)
    if settings.target:
        dst = _find_space(config, (settings.target,))
        if dst is None:
            raise PlateError(
                f"target colour space {settings.target!r} is not in the OCIO config {config_name}."
            )
    elif settings.display or settings.view:
        dst = None
    else:
        dst = _find_space(config, _SRGB_CANDIDATES)
    if src_name is None:  # 'srgb' in a config that has no sRGB space: already display-referred
        return None, "sRGB (identity)"
    if dst is not None:
        if dst == src_name:
            return None, f"{src_name} (identity)"
        processor = config.getProcessor(src_name, dst)
        return processor.getDefaultCPUProcessor(), f"{src_name} -> {dst}"
    display = settings.display or _srgb_display(config) or config.getDefaultDisplay()
    view = settings.view or config.getDefaultView(display)
    transform = ocio.DisplayViewTransform(src=src_name, display=display, view=view)
    processor = config.getProcessor(transform)
    return processor.getDefaultCPUProcessor(), f"{src_name} -> {display}/{view}"


def _srgb_display(config: ocio.Config) -> str | None:
    for display in config.getDisplays():
        if "srgb" in display.lower():
            return display
    return None


def to_display_srgb(rgb: np.ndarray, colorspace: str, settings: ColourSettings | None = None) -> np.ndarray:
    """Convert (H, W, 3) pixels in ``colorspace`` to display-referred sRGB float32 in [0, 1].

    ``colorspace`` is 'linear', 'log', 'srgb', 'raw' or an OCIO colour space name (not 'auto':
    resolve that first with :func:`auto_colorspace`).
    """
    settings = settings or ColourSettings()
    key = colorspace.lower()
    # nan_to_num copies: OCIO below works in place and must never touch the caller's array
    pixels = np.nan_to_num(np.asarray(rgb, dtype=np.float32), nan=0.0, posinf=_HALF_MAX, neginf=0.0)
    if key in ("raw", "data"):
        return np.clip(pixels, 0.0, 1.0)
    if key in ("log", "cineon"):
        pixels = cineon_to_linear(pixels)
    pixels = np.ascontiguousarray(pixels, dtype=np.float32)
    processor, description = _cpu_processor(
        settings.config_name(), key if key in _PSEUDO else colorspace, settings
    )
    log.debug("colour conversion %s", description)
    if processor is not None:
        flat = pixels.reshape(-1, 3)
        processor.applyRGB(flat)
        pixels = flat.reshape(pixels.shape)
    if key == "srgb" and processor is None:
        return np.clip(np.nan_to_num(pixels, nan=0.0, posinf=1.0, neginf=0.0), 0.0, 1.0)
    return soft_clip(pixels, settings.highlight_knee)
