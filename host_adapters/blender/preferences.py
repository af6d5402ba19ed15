"""Add-on preferences: where osvos-render is, and which parent network it starts from.

The engine runs out of process (its torch/numpy cannot load into Blender's Python), so the add-on only
needs the path of the ``osvos-render`` command; PATH is used when it is left empty.
"""

from __future__ import annotations

import functools
import os

import bpy
from bpy.props import StringProperty

from .osvos_contract.process import ENGINE_ENV, EngineNotFound, find_engine


class OSVOSPreferences(bpy.types.AddonPreferences):
    bl_idname = __package__

    engine_path: StringProperty(  # type: ignore[valid-type]
        name="osvos-render", subtype="FILE_PATH", default="",
        description=f"Path of the osvos-render command; empty: ${ENGINE_ENV}, then PATH",
    )
    parent_model: StringProperty(  # type: ignore[valid-type]
        name="Parent Network", subtype="FILE_PATH", default="",
        description="Parent network (.safetensors) to fine-tune from; empty: the one osvos-render ships",
    )

    def draw(self, context: bpy.types.Context) -> None:
        layout = self.layout
        layout.prop(self, "engine_path")
        layout.prop(self, "parent_model")
        found = _engine_label(bpy.path.abspath(self.engine_path), os.environ.get("PATH", ""))
        if found:
            layout.label(text=f"Using {found}", icon="CHECKMARK")
        else:
            layout.label(text="osvos-render not found: install osvos-plugin and set its path above", icon="ERROR")


@functools.lru_cache(maxsize=8)
def _engine_label(configured: str, path_env: str) -> str:
    """The engine command the preferences show, looked up once per setting and PATH (draw() runs on every
    redraw; the lookup searches PATH)."""
    try:
        return " ".join(find_engine(configured))
    except EngineNotFound:
        return ""


def get_preferences(context: bpy.types.Context | None = None) -> OSVOSPreferences | None:
    """This add-on's preferences (None when the package is imported without being enabled, e.g. tests)."""
    context = context or bpy.context
    addon = context.preferences.addons.get(__package__)
    return addon.preferences if addon is not None else None


def register() -> None:
    bpy.utils.register_class(OSVOSPreferences)


def unregister() -> None:
    bpy.utils.unregister_class(OSVOSPreferences)
