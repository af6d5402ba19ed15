"""The OSVOS panel, in the sidebar (N) of the Movie Clip editor and of the compositor.

The parameter sections are drawn from plugin.json's groups, in its order, so the panel follows the
manifest; only the inputs (plate, mask, output folder) are laid out by hand.
"""

from __future__ import annotations

import bpy

from . import properties
from .osvos_contract import farm


def draw_osvos(layout: bpy.types.UILayout, context: bpy.types.Context) -> None:
    settings = context.scene.osvos
    wm = context.window_manager

    col = layout.column(align=True)
    col.prop(settings, "source_type", text="")
    if settings.source_type == "CLIP":
        col.prop(settings, "clip", text="")
        if settings.clip is None and getattr(context.space_data, "clip", None) is not None:
            col.label(text=f"Using the editor's clip: {context.space_data.clip.name}", icon="INFO")
    else:
        col.prop(settings, "image", text="")

    col = layout.column(align=True)
    col.prop(settings, "mask_type", text="")
    col.prop(settings, "mask" if settings.mask_type == "MASK" else "mask_image", text="")
    flag = properties.use_flag("mask_frame")
    if hasattr(settings, flag):
        row = col.row(align=True)
        row.prop(settings, flag, text="")
        sub = row.row(align=True)
        sub.active = getattr(settings, flag)
        sub.prop(settings, "mask_frame", text="Scene Frame" if getattr(settings, flag) else "Current Frame")

    for group, params in properties.registered_manifest().groups():
        shown = [p for p in params if hasattr(settings, p.name) and p.name not in properties.DRAWN_WITH_INPUTS]
        if not shown:
            continue
        box = layout.box()
        box.label(text=group)
        for p in shown:
            if p.optional:
                row = box.row(align=True)
                row.prop(settings, properties.use_flag(p.name), text="")
                row.prop(settings, p.name)
            else:
                box.prop(settings, p.name)

    col = layout.column(align=True)
    col.prop(settings, "output_dir")
    col.prop(settings, "overwrite")
    col.prop(settings, "wire_compositor")

    if settings.review and not wm.osvos_running:
        box = layout.box()
        box.label(text="Frames to check", icon="ERROR")
        for part in settings.review.removeprefix("check ").split("; "):
            box.label(text=part)
    if wm.osvos_running:
        layout.progress(factor=wm.osvos_progress / 100.0, text=wm.osvos_status or "Rendering")
        layout.operator("osvos.cancel_render", icon="CANCEL")
    else:
        layout.operator("osvos.render_matte", icon="RENDER_ANIMATION")
        row = layout.row(align=True)
        row.operator("osvos.farm_job", text="Write Farm Job", icon="NETWORK_DRIVE").submit = False
        if _has_deadline():
            row.operator("osvos.farm_job", text="Submit", icon="EXPORT").submit = True


_deadline: list = []


def _has_deadline() -> bool:
    """Whether the deadline command is on PATH, looked up once (draw() runs on every redraw)."""
    if not _deadline:
        _deadline.append(farm.deadline_cli() is not None)
    return _deadline[0]


class CLIP_PT_osvos(bpy.types.Panel):
    bl_space_type = "CLIP_EDITOR"
    bl_region_type = "UI"
    bl_category = "OSVOS"
    bl_label = "OSVOS Matte"

    def draw(self, context: bpy.types.Context) -> None:
        draw_osvos(self.layout, context)


class NODE_PT_osvos(bpy.types.Panel):
    bl_space_type = "NODE_EDITOR"
    bl_region_type = "UI"
    bl_category = "OSVOS"
    bl_label = "OSVOS Matte"

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        return getattr(context.space_data, "tree_type", "") == "CompositorNodeTree"

    def draw(self, context: bpy.types.Context) -> None:
        draw_osvos(self.layout, context)


def draw_status(self, context: bpy.types.Context) -> None:
    """The render's progress in the status bar (drawn only while one runs), with its Cancel button."""
    wm = context.window_manager
    if not getattr(wm, "osvos_running", False):
        return
    row = self.layout.row(align=True)
    row.progress(factor=wm.osvos_progress / 100.0, type="BAR", text=f"OSVOS: {wm.osvos_status or 'Rendering'}")
    row.operator("osvos.cancel_render", text="", icon="CANCEL")


classes = (CLIP_PT_osvos, NODE_PT_osvos)


def register() -> None:
    for cls in classes:
        bpy.utils.register_class(cls)
    bpy.types.STATUSBAR_HT_header.append(draw_status)


def unregister() -> None:
    bpy.types.STATUSBAR_HT_header.remove(draw_status)
    for cls in reversed(classes):
        bpy.utils.unregister_class(cls)
