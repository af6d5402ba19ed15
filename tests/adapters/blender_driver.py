"""Runs inside Blender's Python (.venv-blender, bpy from PyPI), driven by test_blender_addon.py.

``python blender_driver.py CONFIG.json``: installs the add-on zip as an extension into the isolated user
folders given by $BLENDER_USER_RESOURCES, builds the scene the config describes, runs the operators and
writes what happened to the config's ``result`` path as JSON, for the test (in the engine's venv) to check.
Only bpy and the standard library are imported here: nothing of the engine.
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import logging
import os
import shutil
import sys
import time
import traceback
import types

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


def compat():
    return importlib.import_module(ADDON + ".compat")


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

    out["env_ocio"] = job.env.get("OCIO", "")
    out["operator"] = sorted(bpy.ops.osvos.render_matte())
    tree, _ = compat().compositor_tree(scene, create=False)
    matte = tree.nodes.get("OSVOS Matte") if tree else None
    out["nodes"] = sorted(n.name for n in tree.nodes) if tree else []
    if matte is not None:
        out["matte_node"] = {"frame_start": matte.frame_start, "frame_offset": matte.frame_offset,
                             "frame_duration": matte.frame_duration,
                             "image": bpy.path.abspath(matte.image.filepath), "source": matte.image.source}
        result_node = compat().output_node(tree)
        out["output_node"] = result_node.name
        out["output_linked_from"] = [link.from_node.name for link in result_node.inputs[0].links]
    out["renders"] = render_frames(scene, cfg["render_frames"], cfg["out"], cfg["size"])
    # A second run reuses the nodes instead of stacking copies.
    bpy.ops.osvos.render_matte()
    out["nodes_after_rerun"] = sorted(n.name for n in tree.nodes) if tree else []
    return out


def objects_scenario(cfg: dict) -> dict:
    """A Mask datablock with two layers: two objects, each rasterised alone, one matte layer each, and a Set
    Alpha per object in the compositor."""
    scene = clip_setup(cfg)
    mask = scene.osvos.mask
    mask.layers[0].name = "hero"
    spline = mask.layers.new(name="side prop").splines.new()
    spline.points.add(3)
    x0, y0, x1, y1 = cfg["second_rect"]
    for point, co in zip(spline.points, [(x0, y0), (x1, y0), (x1, y1), (x0, y1)], strict=True):
        point.co = co
        point.handle_left_type = point.handle_right_type = "VECTOR"
    spline.use_cyclic = True
    hidden = mask.layers.new(name="hidden")  # hidden from render: not an object
    hidden.splines.new().points.add(3)
    hidden.hide_render = True
    operators = importlib.import_module(ADDON + ".operators")
    job = operators.prepare_job(bpy.context)
    out = {"command": job.command, "objects": [name for name, _ in job.objects], "rasters": {}}
    for name, path in job.objects:
        out["rasters"][name] = os.path.join(cfg["out"], f"raster_{name}.exr")
        shutil.copy(path, out["rasters"][name])
    shutil.rmtree(job.tmpdir, ignore_errors=True)
    out["layers_restored"] = [layer.hide_render for layer in mask.layers]
    try:
        out["farm"] = sorted(bpy.ops.osvos.farm_job(submit=False))
    except RuntimeError as e:
        out["farm"] = f"RuntimeError: {e}"
    out["operator"] = sorted(bpy.ops.osvos.render_matte())
    tree, _ = compat().compositor_tree(scene, create=False)
    out["nodes"] = sorted(n.name for n in tree.nodes)
    node = tree.nodes["OSVOS side_prop"]
    out["side_prop_links"] = sorted(f"{link.from_node.name}:{link.from_socket.name}"
                                    for link in node.inputs["Alpha"].links)
    result_node = compat().output_node(tree)
    tree.links.new(node.outputs["Image"], result_node.inputs[0])  # look at one object's composite
    out["renders"] = render_frames(scene, cfg["render_frames"], cfg["out"], cfg["size"])
    return out


def _event(kind: str, value: str = "NOTHING", x: int = 0, y: int = 0) -> types.SimpleNamespace:
    """What the modal handler reads of a bpy.types.Event (a headless Blender has no window to send real ones)."""
    return types.SimpleNamespace(type=kind, value=value, mouse_x=x, mouse_y=y)


def _drive(render, until=None, limit_s: float = 600.0) -> set[str]:
    """Timer events every 50 ms, as the modal timer would send them, until the render ends (or ``until()``)."""
    outcome = {"RUNNING_MODAL"}
    end = time.monotonic() + limit_s
    while outcome == {"RUNNING_MODAL"} and time.monotonic() < end and not (until and until()):
        time.sleep(0.05)
        outcome = render.on_event(bpy.context, _event("TIMER"))
    return outcome


def modal_scenario(cfg: dict) -> dict:
    """The Render Matte button's path (ModalRender, which the operator's invoke/modal delegate to): progress in
    the window manager (the status bar draws it), Esc only when pressed over the editor, the mattes shown as
    they land, the frames-to-check report, and a cancel that keeps what was written."""
    scene = clip_setup(cfg)
    operators = importlib.import_module(ADDON + ".operators")
    panels = importlib.import_module(ADDON + ".panels")
    wm = bpy.context.window_manager
    reports: list = []
    area = (100, 100, 400, 300)
    out = {"undo": "UNDO" in operators.OSVOS_OT_render_matte.bl_options,
           "status_bar": panels.draw_status in bpy.types.STATUSBAR_HT_header._dyn_ui_initialize()}

    job = operators.prepare_job(bpy.context)
    render = operators.ModalRender(job, lambda level, msg: reports.append([sorted(level), msg]), area)
    render.start(bpy.context)
    out["started"] = {"running": wm.osvos_running, "active": operators._active is render.proc}
    out["esc"] = [sorted(render.on_event(bpy.context, e)) for e in (
        _event("ESC", "RELEASE", 150, 150), _event("ESC", "PRESS", 10, 10), _event("MOUSEMOVE", "NOTHING"))]
    statuses: list[str] = []
    outcome = {"RUNNING_MODAL"}
    while outcome == {"RUNNING_MODAL"}:
        outcome = _drive(render, until=lambda: wm.osvos_status not in statuses)
        if wm.osvos_status and wm.osvos_status not in statuses:
            statuses.append(wm.osvos_status)
    out["full"] = {"outcome": sorted(outcome), "statuses": statuses, "cancelling": render.proc.cancelling,
                   "running": wm.osvos_running, "active": operators._active is not None,
                   "review": scene.osvos.review}
    out["reports"] = list(reports)

    # Mattes shown as they land: a partial sequence is wired, then reloaded with the frames that came since.
    landing = os.path.join(cfg["out"], "landing")
    os.makedirs(landing)
    partial = os.path.join(landing, os.path.basename(job.output_pattern))
    part_job = dataclasses.replace(job, output_pattern=partial)
    out["landed_none"] = operators.show_landed(part_job)
    tree, _ = compat().compositor_tree(scene, create=False)
    durations = []
    for frame in (1002, 1003, 1004):
        shutil.copy(job.output_pattern % frame, partial % frame)
        operators.show_landed(part_job)
        node = tree.nodes["OSVOS Matte"]
        durations.append([node.frame_duration, bpy.path.abspath(node.image.filepath)])
    out["landing"] = durations

    # Esc over the editor while it fine-tunes: cancelled, the mattes of the first render kept.
    scene.osvos.overwrite = True
    scene.osvos.iterations = 200
    job = operators.prepare_job(bpy.context)
    reports.clear()
    render = operators.ModalRender(job, lambda level, msg: reports.append([sorted(level), msg]), area)
    render.start(bpy.context)
    _drive(render, until=lambda: render.proc.latest is not None and render.proc.latest.stage == "finetune")
    esc = sorted(render.on_event(bpy.context, _event("ESC", "PRESS", 150, 150)))
    out["cancel"] = {"esc": esc, "status": wm.osvos_status, "outcome": sorted(_drive(render)),
                     "reports": list(reports), "running": wm.osvos_running}
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
    tree, _ = compat().compositor_tree(scene, create=False)
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


SCENARIOS = {"objects": objects_scenario, "modal": modal_scenario, "clip": clip_scenario,
             "image": image_scenario, "errors": error_scenarios, "farm": farm_scenario}


def main() -> int:
    cfg = json.load(open(sys.argv[-1]))
    collect = Collect()
    logging.getLogger().addHandler(collect)
    logging.getLogger().setLevel(logging.INFO)
    result: dict = {"version": list(bpy.app.version)}
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
