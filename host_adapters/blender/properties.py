"""The add-on's settings: one Blender property per plugin.json parameter, plus what Blender picks.

The node parameters are generated from the manifest at register time (labels, help, defaults, ranges,
choices), so a parameter added to plugin.json appears in the panel without touching the add-on.
The Blender-side choices (which clip, which mask, where the mattes go) are declared here.
"""

from __future__ import annotations

import math
from typing import Any

import bpy
from bpy.props import (
    BoolProperty,
    EnumProperty,
    FloatProperty,
    IntProperty,
    PointerProperty,
    StringProperty,
)

from .osvos_contract.manifest import Manifest, Parameter, load_manifest

# Parameters the add-on decides instead of the artist: the compositor wiring reads single-channel EXR.
FIXED_VALUES = {"output_format": "exr"}
# Parameters whose value Blender knows better than a number field (the mask frame is the frame the Mask
# datablock is rasterised at): drawn by the panel next to the mask, not in the parameter groups.
DRAWN_WITH_INPUTS = ("mask_frame",)
INT_LIMIT = 2**31 - 1


def use_flag(name: str) -> str:
    """The toggle that says an optional parameter (manifest default null) has a value."""
    return f"use_{name}"


def _float_precision(p: Parameter) -> int:
    """Enough decimals to show the default and the smallest value (a learning rate of 1e-4 is not 0.000)."""
    smallest = [abs(v) for v in (p.default, p.min) if isinstance(v, int | float) and v]
    if not smallest:
        return 3
    return int(min(6, max(3, math.ceil(-math.log10(min(smallest))) + 1)))


def parameter_property(p: Parameter) -> Any:
    """The bpy property for one manifest parameter."""
    common = {"name": p.label, "description": p.help}
    if p.type == "int":
        kwargs = {**common, "default": 0 if p.default is None else int(p.default)}
        kwargs["min"] = int(p.min) if p.min is not None else -INT_LIMIT
        kwargs["max"] = int(p.max) if p.max is not None else INT_LIMIT
        return IntProperty(**kwargs)
    if p.type == "float":
        kwargs = {**common, "default": 0.0 if p.default is None else float(p.default),
                  "precision": _float_precision(p)}
        if p.min is not None:
            kwargs["min"] = float(p.min)
        if p.max is not None:
            kwargs["max"] = float(p.max)
        return FloatProperty(**kwargs)
    if p.type == "bool":
        return BoolProperty(**common, default=bool(p.default))
    if p.type == "choice":
        items = [(c, c.upper() if len(c) <= 4 else c.replace("_", " ").title(), "") for c in p.choices]
        return EnumProperty(**common, items=items, default=p.default)
    return StringProperty(**common, default="" if p.default is None else str(p.default))


def manifest_annotations(manifest: Manifest) -> dict[str, Any]:
    """Property annotations for every manifest parameter the artist sets (with ``use_`` toggles)."""
    ann: dict[str, Any] = {}
    for p in manifest.parameters:
        if p.name in FIXED_VALUES:
            continue
        ann[p.name] = parameter_property(p)
        if p.optional:
            ann[use_flag(p.name)] = BoolProperty(
                name=f"Set {p.label}", default=False,
                description=f"Use the value below; otherwise: {p.help}",
            )
    return ann


def parameter_values(settings: Any, manifest: Manifest) -> dict[str, Any]:
    """name -> value for osvos-render from the settings (optional ones only when switched on)."""
    values: dict[str, Any] = dict(FIXED_VALUES)
    for p in manifest.parameters:
        if p.name in FIXED_VALUES or p.name in DRAWN_WITH_INPUTS:
            continue
        if p.optional and not getattr(settings, use_flag(p.name)):
            continue
        values[p.name] = getattr(settings, p.name)
    return values


def _poll_sequence_clip(_self, clip: bpy.types.MovieClip) -> bool:
    return clip.source == "SEQUENCE"


ADAPTER_ANNOTATIONS: dict[str, Any] = {
    "source_type": EnumProperty(
        name="Source", description="Where the plate comes from",
        items=[("CLIP", "Movie Clip", "An image-sequence movie clip (as tracked in the Movie Clip editor)",
                "SEQUENCE", 0),
               ("IMAGE", "Image Sequence", "An image datablock whose source is an image sequence; its file "
                "numbers are scene frames", "IMAGE_DATA", 1)],
        default="CLIP",
    ),
    "clip": PointerProperty(type=bpy.types.MovieClip, name="Clip", poll=_poll_sequence_clip,
                            description="The plate (an image sequence; empty: the clip of the editor)"),
    "image": PointerProperty(type=bpy.types.Image, name="Plate Image",
                             description="The plate as an image sequence datablock"),
    "mask_type": EnumProperty(
        name="Painted Frame", description="Where the painted object comes from",
        items=[("MASK", "Mask", "A Mask datablock, rasterised at the mask frame", "MOD_MASK", 0),
               ("IMAGE", "Image", "A painted image: white object on black, or in its alpha", "IMAGE_DATA", 1)],
        default="MASK",
    ),
    "mask": PointerProperty(type=bpy.types.Mask, name="Mask",
                            description="The Mask datablock painted on the object (empty: the editor's mask)"),
    "mask_image": PointerProperty(type=bpy.types.Image, name="Mask Image",
                                  description="The painted mask image, aligned with the plate"),
    "output_dir": StringProperty(
        name="Output Folder", subtype="DIR_PATH", default="",
        description="Where the matte EXRs go; empty: an 'osvos' folder next to the blend file",
    ),
    "overwrite": BoolProperty(
        name="Render All Frames Again", default=False,
        description="Render every frame again. Otherwise a frame already written is kept only when it is whole "
        "and was made with the same model and settings (resume); the others are rendered again anyway",
    ),
    "review": StringProperty(
        name="Frames to Check", default="", options={"SKIP_SAVE"},
        description="What the last render's report says about frames where the matte is probably wrong",
    ),
    "wire_compositor": BoolProperty(
        name="Wire Compositor", default=True,
        description="Add the mattes to the compositor as an Image node and set them as the plate's alpha",
    ),
}


def status_annotations() -> dict[str, Any]:
    """Window-manager properties a running render reports through (panels read them)."""
    return {
        "osvos_running": BoolProperty(default=False, options={"SKIP_SAVE"}),
        "osvos_progress": FloatProperty(default=0.0, min=0.0, max=100.0, subtype="PERCENTAGE",
                                        options={"SKIP_SAVE"}),
        "osvos_status": StringProperty(default="", options={"SKIP_SAVE"}),
    }


_classes: list[type] = []
_registered: list[Manifest] = []


def registered_manifest() -> Manifest:
    """The manifest the settings were built from at register time: the panel draws from it without
    reading plugin.json on every redraw (and matches the properties that exist)."""
    return _registered[0] if _registered else load_manifest()


def register() -> None:
    manifest = load_manifest()
    _registered[:] = [manifest]
    annotations = {**ADAPTER_ANNOTATIONS, **manifest_annotations(manifest)}
    settings_cls = type("OSVOSSettings", (bpy.types.PropertyGroup,), {
        "__annotations__": annotations,
        "__doc__": f"{manifest.label} {manifest.version} settings of a scene",
    })
    bpy.utils.register_class(settings_cls)
    _classes.append(settings_cls)
    bpy.types.Scene.osvos = PointerProperty(type=settings_cls)
    for name, prop in status_annotations().items():
        setattr(bpy.types.WindowManager, name, prop)


def unregister() -> None:
    for name in status_annotations():
        if hasattr(bpy.types.WindowManager, name):
            delattr(bpy.types.WindowManager, name)
    if hasattr(bpy.types.Scene, "osvos"):
        del bpy.types.Scene.osvos
    while _classes:
        bpy.utils.unregister_class(_classes.pop())
    _registered.clear()
