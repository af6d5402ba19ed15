"""Runs inside Blender's Python (.venv-blender, bpy from PyPI), driven by test_blender_addon.py.

``python blender_driver.py CONFIG.json``: installs the add-on zip as an extension into the isolated user
folders given by $BLENDER_USER_RESOURCES, builds the scene the config describes, runs the operators and
writes what happened to the config's ``result`` path as JSON, for the test (in the engine's venv) to check.
Only bpy and the standard library are imported here: nothing of the engine.
"""

from __future__ import annotations

import importlib
import json
import logging
import os
import shutil
import sys
import traceback

import bpy

ADDON = "bl_ext.user_default.osvos_matte"
REGISTERED = ("OSVOS_OT_render_matte", "OSVOS_OT_cancel_render", "OSVOS_OT_farm_job", "CLIP_PT_osvos",
              "NODE_PT_osvos")


class Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def install(zip_path: str) -> dict:
    result = bpy.ops.extensions.package_install_files(filepath=zip_path, repo="user_default",
                                                      enable_on_install=True)
    return {"install": sorted(result), "enabled": ADDON in bpy.context.preferences.addons,
            "registered": [n for n in REGISTERED if hasattr(bpy.types, n)],
            "scene_settings": hasattr(bpy.types.Scene, "osvos")}


def set_prefs(engine: str, parent: str) -> None:
    prefs = bpy.context.preferences.addons[ADDON].preferences
    prefs.engine_path = engine
    prefs.parent_model = parent


def draw_mask(name: str, rect: list[float]) -> bpy.types.Mask:
    """A rectangle in Blender mask space (x across the frame 0..1; y in units of the width, centred)."""
    mask = bpy.data.masks.new(name)
    spline = mask.layers.new(name="object").splines.new()
    spline.points.add(3)
    x0, y0, x1, y1 = rect
    for point, co in zip(spline.points, [(x0, y0), (x1, y0), (x1, y1), (x0, y1)], strict=True):
        point.co = co
        point.handle_left_type = point.handle_right_type = "VECTOR"
    spline.use_cyclic = True
    return mask


def render_frames(scene: bpy.types.Scene, frames: list[int], out_dir: str, size: list[int]) -> dict:
    r = scene.render
    r.resolution_x, r.resolution_y, r.resolution_percentage = size[0], size[1], 100
    r.image_settings.file_format = "OPEN_EXR"
    r.image_settings.color_mode = "RGBA"
    r.image_settings.color_depth = "32"
    scene.view_settings.view_transform = "Standard"
    written = {}
    for f in frames:
        scene.frame_set(f)
        r.filepath = os.path.join(out_dir, f"comp_{f}.exr")
        bpy.ops.render.render(write_still=True)
        written[str(f)] = r.filepath
    return written


def clip_setup(cfg: dict) -> bpy.types.Scene:
    """A saved blend (the mattes go next to it), a movie clip starting at ``clip_start``, a Mask datablock
    rasterised at a chosen scene frame, and the test's parameters."""
    scene = bpy.context.scene
    bpy.ops.wm.save_as_mainfile(filepath=cfg["blend"])
    clip = bpy.data.movieclips.load(cfg["plate_first"])
    clip.frame_start = cfg["clip_start"]
    settings = scene.osvos
    settings.source_type = "CLIP"
    settings.clip = clip
    settings.mask_type = "MASK"
    settings.mask = draw_mask("roto", cfg["mask_rect"])
    settings.use_mask_frame = True
    settings.mask_frame = cfg["mask_scene_frame"]
    for name, value in cfg["params"].items():
        setattr(settings, name, value)
    return scene


def clip_scenario(cfg: dict) -> dict:
    """A movie clip starting at scene frame 11, a Mask datablock rasterised at a chosen frame."""
    scene = clip_setup(cfg)
    operators = importlib.import_module(ADDON + ".operators")
    job = operators.prepare_job(bpy.context)  # the same call the operator makes first
    out = {"command": job.command, "output_pattern": job.output_pattern,
           "mask_file_frame": job.mask_file_frame}
    out["mask_raster"] = os.path.join(cfg["out"], "mask_raster.exr")
    shutil.copy(job.command[job.command.index("--mask") + 1], out["mask_raster"])
    shutil.rmtree(job.tmpdir, ignore_errors=True)

    out["operator"] = sorted(bpy.ops.osvos.render_matte())
    tree = scene.compositing_node_group
    matte = tree.nodes.get("OSVOS Matte") if tree else None
    out["nodes"] = sorted(n.name for n in tree.nodes) if tree else []
    if matte is not None:
        out["matte_node"] = {"frame_start": matte.frame_start, "frame_offset": matte.frame_offset,
                             "frame_duration": matte.frame_duration,
                             "image": bpy.path.abspath(matte.image.filepath), "source": matte.image.source}
        group_out = next(n for n in tree.nodes if n.bl_idname == "NodeGroupOutput")
        out["output_linked_from"] = [link.from_node.name for link in group_out.inputs[0].links]
    out["renders"] = render_frames(scene, cfg["render_frames"], cfg["out"], cfg["size"])
    # A second run reuses the nodes instead of stacking copies.
    bpy.ops.osvos.render_matte()
    out["nodes_after_rerun"] = sorted(n.name for n in tree.nodes) if tree else []
    return out


def farm_scenario(cfg: dict) -> dict:
    """The Farm Job button: a job bundle beside the mattes, then a submit through a stand-in deadline command."""
    clip_setup(cfg)
    out = {"written": sorted(bpy.ops.osvos.farm_job(submit=False))}
    fake = os.path.join(cfg["out"], "bin")
    os.makedirs(fake, exist_ok=True)
    with open(os.path.join(fake, "deadline"), "w") as f:
        f.write(f"#!/bin/sh\necho \"$@\" > {cfg['out']}/deadline-args.txt\necho 'Submitted job-0123'\n")
    os.chmod(os.path.join(fake, "deadline"), 0o755)
    os.environ["PATH"] = fake + os.pathsep + os.environ["PATH"]
    out["submitted"] = sorted(bpy.ops.osvos.farm_job(submit=True))
    return out


def image_scenario(cfg: dict) -> dict:
    """An Image-datablock plate sequence, a painted mask image, an explicit output folder (blend unsaved)."""
    scene = bpy.context.scene
    plate = bpy.data.images.load(cfg["plate_first"])
    plate.source = "SEQUENCE"
    settings = scene.osvos
    settings.source_type = "IMAGE"
    settings.image = plate
    settings.mask_type = "IMAGE"
    settings.mask_image = bpy.data.images.load(cfg["mask_image"])
    settings.output_dir = cfg["output_dir"]
    for name, value in cfg["params"].items():
        setattr(settings, name, value)
    scene.frame_set(cfg["current_frame"])  # the mask frame defaults to the current frame
    operators = importlib.import_module(ADDON + ".operators")
    job = operators.prepare_job(bpy.context)
    shutil.rmtree(job.tmpdir, ignore_errors=True)
    out = {"command": job.command, "operator": sorted(bpy.ops.osvos.render_matte())}
    tree = scene.compositing_node_group
    source = tree.nodes["OSVOS Source"]
    out["source_node"] = {"type": source.bl_idname, "frame_start": source.frame_start,
                          "frame_offset": source.frame_offset}
    out["renders"] = render_frames(scene, cfg["render_frames"], cfg["out"], cfg["size"])
    return out


def error_scenarios(cfg: dict) -> dict:
    """Each broken setup must stop before osvos-render runs, with a message that says what to do."""
    operators = importlib.import_module(ADDON + ".operators")
    settings = bpy.context.scene.osvos
    found = {}

    def attempt(key: str) -> None:
        try:
            operators.prepare_job(bpy.context)
            found[key] = "no error"
        except Exception as e:  # the test checks the type name and message
            found[key] = f"{type(e).__name__}: {e}"

    settings.source_type = "CLIP"
    settings.clip = None
    attempt("no_clip")
    movie = bpy.data.movieclips.load(cfg["movie"]) if cfg.get("movie") else None
    if movie is not None:
        settings.clip = movie
        attempt("movie_file")
    settings.clip = bpy.data.movieclips.load(cfg["plate_first"])
    settings.mask = draw_mask("roto", [0.3, 0.3, 0.6, 0.6])
    attempt("unsaved_blend")
    settings.output_dir = cfg["out"]
    prefs = bpy.context.preferences.addons[ADDON].preferences
    prefs.engine_path = os.path.join(cfg["out"], "no-such-osvos-render")
    os.environ["PATH"] = cfg["out"]
    attempt("no_engine")
    try:  # an operator that reports an ERROR raises it in the calling script
        found["operator_no_engine"] = sorted(bpy.ops.osvos.render_matte())
    except RuntimeError as e:
        found["operator_no_engine"] = f"RuntimeError: {e}"
    return found


SCENARIOS = {"clip": clip_scenario, "image": image_scenario, "errors": error_scenarios, "farm": farm_scenario}


def main() -> int:
    cfg = json.load(open(sys.argv[-1]))
    collect = Collect()
    logging.getLogger().addHandler(collect)
    logging.getLogger().setLevel(logging.INFO)
    result: dict = {}
    try:
        result["install"] = install(cfg["zip"])
        if "engine" in cfg:
            set_prefs(cfg["engine"], cfg.get("parent", ""))
        result[cfg["scenario"]] = SCENARIOS[cfg["scenario"]](cfg)
        addon_utils = importlib.import_module("addon_utils")
        addon_utils.disable(ADDON)
        result["unregistered"] = not any(hasattr(bpy.types, n) for n in REGISTERED)
    except Exception:
        result["traceback"] = traceback.format_exc()
    result["log"] = collect.messages
    with open(cfg["result"], "w") as f:
        json.dump(result, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
