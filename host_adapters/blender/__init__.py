"""OSVOS Matte for Blender: paint the object on one frame (a Mask datablock or an image), get a matte
for every frame of the clip, wired into the compositor.

The add-on depends on bpy alone: the engine (torch, numpy 2, OpenImageIO) cannot load into Blender's
Python, so it runs out of process as ``osvos-render`` (set its path in the add-on preferences, or put
it on PATH) and reports its progress as JSON lines that the operator reads.

The contract shared with the engine and the Nuke adapter (plugin.json's reader, the progress protocol,
frame patterns, running osvos-render) is the ``osvos_contract`` package at the repository root. build_zip.py
bundles it into the add-on as a subpackage (``osvos_matte.osvos_contract``, with plugin.json inside it); run
from a checkout instead (this folder linked into Blender's add-ons), the package also looks for its
submodules at the repository root, two folders up, so ``from .osvos_contract ...`` finds the same package.
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

_CONTRACT = "osvos_contract"
_REPO = _os.path.dirname(_os.path.dirname(_os.path.dirname(_os.path.realpath(__file__))))
if not _os.path.isdir(_os.path.join(_os.path.dirname(__file__), _CONTRACT)) and _os.path.isfile(
        _os.path.join(_REPO, _CONTRACT, "__init__.py")):
    __path__.append(_REPO)  # a checkout: the repository's osvos_contract becomes a subpackage of this one

from . import operators, panels, preferences, properties  # noqa: E402  (bl_info must come first)

_modules = (preferences, properties, operators, panels)


def register() -> None:
    for module in _modules:
        module.register()


def unregister() -> None:
    for module in reversed(_modules):
        module.unregister()
