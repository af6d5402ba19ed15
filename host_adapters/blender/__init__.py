"""OSVOS Matte for Blender: paint the object on one frame (a Mask datablock or an image), get a matte
for every frame of the clip, wired into the compositor.

The add-on depends on bpy alone: the engine (torch, numpy 2, OpenImageIO) cannot load into Blender's
Python, so it runs out of process as ``osvos-render`` (set its path in the add-on preferences, or put
it on PATH) and reports its progress as JSON lines that the operator reads.

The modules shared with the Nuke adapter (osvos_manifest, osvos_render_process) live in
host_adapters/common. build_zip.py copies them into the add-on, beside this file; run from a checkout
instead (this folder linked into Blender's add-ons), the package also looks for its submodules there.
"""

from __future__ import annotations

import os as _os

bl_info = {
    "name": "OSVOS Matte",
    "author": "osvos-plugin",
    "version": (0, 1, 0),
    "blender": (4, 2, 0),
    "location": "Movie Clip Editor / Compositor > Sidebar (N) > OSVOS",
    "description": "One-shot video object segmentation: a matte for every frame from one painted frame",
    "category": "Compositing",
    "doc_url": "",
}

_COMMON = _os.path.join(_os.path.dirname(_os.path.dirname(_os.path.realpath(__file__))), "common")
if not _os.path.isfile(_os.path.join(_os.path.dirname(__file__), "osvos_manifest.py")) and _os.path.isdir(_COMMON):
    __path__.append(_COMMON)  # the shared modules become submodules of this package

from . import operators, panels, preferences, properties  # noqa: E402  (bl_info must come first)

_modules = (preferences, properties, operators, panels)


def register() -> None:
    for module in _modules:
        module.register()


def unregister() -> None:
    for module in reversed(_modules):
        module.unregister()
