"""The Render Matte operator: a modal run with progress and Esc to cancel, or a blocking one for scripts.

Both paths go through the same three steps: :func:`prepare_job` (files and command line from the scene),
polling one :class:`RenderProcess` (the modal timer, or ``osvos_contract.process.run`` which polls the same
object in a loop), and :func:`finish_job` (compositor wiring, report). Called from a button the operator
is modal (``invoke``); called from Python (``bpy.ops.osvos.render_matte()``) it is blocking (``execute``).
"""

from __future__ import annotations

import logging
import os
import shutil
from dataclasses import dataclass, field

import bpy

from . import properties
from .compositor import MatteSequence, wire_matte
from .inputs import InputError, SourcePlates, clip_plates, image_mask_file, image_plates, make_tempdir, rasterize_mask
from .osvos_contract import farm
from .osvos_contract.manifest import ManifestError, load_manifest
from .osvos_contract.patterns import frames_on_disk, matte_pattern
from .osvos_contract.process import (
    EngineNotFound,
    RenderProcess,
    RenderResult,
    build_command,
    engine_environment,
    find_engine,
    run,
)
from .osvos_contract.protocol import Progress
from .preferences import get_preferences

log = logging.getLogger(__name__)
DEFAULT_OUTPUT_DIR = "//osvos"
TIMER_S = 0.25

_active: RenderProcess | None = None  # the render in flight (one at a time), for the Cancel button


@dataclass
class Job:
    command: list[str]
    plates: SourcePlates
    output_pattern: str
    mask_file_frame: int
    tmpdir: str
    wire: bool
    scene_name: str
    env: dict[str, str] = field(default_factory=dict)
    params: dict = field(default_factory=dict)  # plugin.json name -> value, as on the command line
    mask_file: str = ""


def _editor_clip(context: bpy.types.Context) -> bpy.types.MovieClip | None:
    space = getattr(context, "space_data", None)
    return getattr(space, "clip", None) if space is not None and space.type == "CLIP_EDITOR" else None


def _editor_mask(context: bpy.types.Context) -> bpy.types.Mask | None:
    space = getattr(context, "space_data", None)
    return getattr(space, "mask", None) if space is not None and space.type == "CLIP_EDITOR" else None


def source_plates(context: bpy.types.Context) -> SourcePlates:
    settings = context.scene.osvos
    if settings.source_type == "CLIP":
        clip = settings.clip or _editor_clip(context)
        if clip is None:
            raise InputError("Choose the plate: a Movie Clip (image sequence) in the OSVOS panel")
        return clip_plates(clip)
    if settings.image is None:
        raise InputError("Choose the plate: an image sequence in the OSVOS panel")
    return image_plates(settings.image)


def output_directory(settings) -> str:
    folder = settings.output_dir or DEFAULT_OUTPUT_DIR
    if folder.startswith("//") and not bpy.data.is_saved:
        raise InputError("Save the blend file first (the mattes go next to it), or choose an Output Folder")
    return os.path.normpath(bpy.path.abspath(folder))


def prepare_job(context: bpy.types.Context) -> Job:
    """Everything the render needs from the scene: plates, the mask as a file, the command line."""
    scene = context.scene
    settings = scene.osvos
    manifest = load_manifest()
    plates = source_plates(context)
    prefs = get_preferences(context)
    out_dir = output_directory(settings)
    engine = find_engine(bpy.path.abspath(prefs.engine_path) if prefs else "")
    use_mask_frame = getattr(settings, properties.use_flag("mask_frame"), False)
    mask_scene_frame = settings.mask_frame if use_mask_frame else scene.frame_current
    tmpdir = make_tempdir()
    try:
        if settings.mask_type == "MASK":
            mask = settings.mask or _editor_mask(context)
            if mask is None:
                raise InputError("Choose the Mask datablock painted on the object")
            mask_file = rasterize_mask(mask, mask_scene_frame, plates.width, plates.height,
                                       os.path.join(tmpdir, "mask.exr"))
        else:
            if settings.mask_image is None:
                raise InputError("Choose the painted mask image")
            mask_file = image_mask_file(settings.mask_image, tmpdir)
        output = matte_pattern(out_dir, plates.pattern, "exr", plates.padding)
        parent = bpy.path.abspath(prefs.parent_model) if prefs and prefs.parent_model else None
        params = properties.parameter_values(settings, manifest)
        command = build_command(
            engine, plates.pattern, output, parameters=manifest.parameters, values=params, mask=mask_file,
            mask_frame=plates.file_frame(mask_scene_frame), parent=parent, overwrite=settings.overwrite,
        )
    except BaseException:
        shutil.rmtree(tmpdir, ignore_errors=True)
        raise
    return Job(command, plates, output, plates.file_frame(mask_scene_frame), tmpdir,
               settings.wire_compositor, scene.name, engine_environment(), params, mask_file)


def finish_job(job: Job, result: RenderResult) -> tuple[set[str], str]:
    """Wire the mattes when the render succeeded; the report level and message either way."""
    shutil.rmtree(job.tmpdir, ignore_errors=True)
    if not result.ok:
        return ({"WARNING"} if result.cancelled else {"ERROR"}), f"OSVOS: {result.message}"
    frames = frames_on_disk(job.output_pattern)
    if not frames:
        return {"ERROR"}, f"OSVOS: osvos-render finished but wrote no matte to {job.output_pattern}"
    message = f"OSVOS: {len(frames)} mattes in {os.path.dirname(job.output_pattern)}"
    scene = bpy.data.scenes.get(job.scene_name)
    if job.wire and scene is not None:
        wire_matte(scene, job.plates, MatteSequence(job.output_pattern, frames[0], frames[-1]))
        message += ", wired into the compositor"
    return {"INFO"}, message


def _set_status(wm: bpy.types.WindowManager, running: bool, progress: float, text: str) -> None:
    wm.osvos_running = running
    wm.osvos_progress = progress
    wm.osvos_status = text


def _redraw(context: bpy.types.Context) -> None:
    screen = getattr(context, "screen", None)
    for area in screen.areas if screen else ():
        if area.type in ("CLIP_EDITOR", "NODE_EDITOR"):
            area.tag_redraw()


class OSVOS_OT_render_matte(bpy.types.Operator):
    """Learn the object from the painted frame and write its matte for every frame of the plate"""

    bl_idname = "osvos.render_matte"
    bl_label = "Render Matte"
    bl_options = {"REGISTER"}

    _proc: RenderProcess | None = None
    _job: Job | None = None
    _timer = None

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        return context.scene is not None and hasattr(context.scene, "osvos") and _active is None

    def _prepare(self, context: bpy.types.Context) -> Job | None:
        try:
            return prepare_job(context)
        except (InputError, EngineNotFound, ManifestError, ValueError) as e:
            self.report({"ERROR"}, f"OSVOS: {e}")
            return None

    def _report_result(self, job: Job, result: RenderResult) -> set[str]:
        level, message = finish_job(job, result)
        self.report(level, message)
        return {"FINISHED"} if result.ok else {"CANCELLED"}

    # -- blocking (scripts, headless)
    def execute(self, context: bpy.types.Context) -> set[str]:
        job = self._prepare(context)
        if job is None:
            return {"CANCELLED"}
        wm = context.window_manager

        def show(p: Progress) -> None:
            _set_status(wm, True, 100.0 * p.overall, p.message())
            log.info("%s", p.message())

        try:
            result = run(job.command, on_progress=show, env=job.env)
        except EngineNotFound as e:
            shutil.rmtree(job.tmpdir, ignore_errors=True)
            self.report({"ERROR"}, f"OSVOS: {e}")
            return {"CANCELLED"}
        finally:
            _set_status(wm, False, 0.0, "")
        return self._report_result(job, result)

    # -- modal (UI): progress in the status bar and the panel, Esc cancels
    def invoke(self, context: bpy.types.Context, event: bpy.types.Event) -> set[str]:
        global _active
        job = self._prepare(context)
        if job is None:
            return {"CANCELLED"}
        try:
            self._proc = RenderProcess(job.command, env=job.env).start()
        except EngineNotFound as e:
            shutil.rmtree(job.tmpdir, ignore_errors=True)
            self.report({"ERROR"}, f"OSVOS: {e}")
            return {"CANCELLED"}
        self._job = job
        _active = self._proc
        wm = context.window_manager
        self._timer = wm.event_timer_add(TIMER_S, window=context.window)
        wm.modal_handler_add(self)
        wm.progress_begin(0, 100)
        _set_status(wm, True, 0.0, "Starting osvos-render (Esc to cancel)")
        return {"RUNNING_MODAL"}

    def modal(self, context: bpy.types.Context, event: bpy.types.Event) -> set[str]:
        wm = context.window_manager
        proc = self._proc
        if event.type == "ESC" and proc is not None and not proc.cancelling:
            proc.cancel()
            _set_status(wm, True, wm.osvos_progress, "Cancelling: finishing the frames in flight")
            _redraw(context)
            return {"RUNNING_MODAL"}
        if event.type != "TIMER":
            return {"PASS_THROUGH"}
        code = proc.returncode
        proc.poll()
        if proc.latest is not None and not proc.cancelling:
            _set_status(wm, True, 100.0 * proc.latest.overall, proc.latest.message() + " (Esc to cancel)")
            wm.progress_update(int(wm.osvos_progress))
        _redraw(context)
        if code is None:
            return {"RUNNING_MODAL"}
        return self._end(context, proc.result())

    def _end(self, context: bpy.types.Context, result: RenderResult) -> set[str]:
        global _active
        wm = context.window_manager
        if self._timer is not None:
            wm.event_timer_remove(self._timer)
            self._timer = None
        wm.progress_end()
        _set_status(wm, False, 0.0, "")
        _active = None
        _redraw(context)
        return self._report_result(self._job, result)

    def cancel(self, context: bpy.types.Context) -> None:
        """Blender is closing the operator (file load, quit): stop the render."""
        global _active
        if self._proc is not None:
            self._proc.kill()
        if self._timer is not None:
            context.window_manager.event_timer_remove(self._timer)
        if self._job is not None:
            shutil.rmtree(self._job.tmpdir, ignore_errors=True)
        _active = None


class OSVOS_OT_farm_job(bpy.types.Operator):
    """Write this matte render as a render-farm job (Open Job Description / Deadline Cloud bundle) next to the
    mattes, and submit it when the deadline command is set up"""

    bl_idname = "osvos.farm_job"
    bl_label = "Farm Job"

    submit: bpy.props.BoolProperty(name="Submit", description="Submit with `deadline bundle submit` "
                                   "(the configured farm and queue)", default=False)

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        return context.scene is not None and hasattr(context.scene, "osvos")

    def execute(self, context: bpy.types.Context) -> set[str]:
        try:
            job = prepare_job(context)
        except (InputError, EngineNotFound, ManifestError, ValueError) as e:
            self.report({"ERROR"}, f"OSVOS: {e}")
            return {"CANCELLED"}
        try:
            params = {**job.params, "mask_frame": job.mask_file_frame}
            bundle = farm.shot_bundle(job.plates.pattern, job.mask_file, job.output_pattern, params,
                                      shot=bpy.path.clean_name(job.scene_name))
        except (ValueError, OSError) as e:
            self.report({"ERROR"}, f"OSVOS: farm job not written: {e}")
            return {"CANCELLED"}
        finally:
            shutil.rmtree(job.tmpdir, ignore_errors=True)
        if not self.submit:
            self.report({"INFO"}, f"OSVOS: farm job written to {bundle}")
            return {"FINISHED"}
        ok, message = farm.submit(bundle)
        self.report({"INFO"} if ok else {"WARNING"}, f"OSVOS: {'submitted' if ok else 'not submitted'}: {message} "
                    f"(bundle: {bundle})")
        return {"FINISHED"}


class OSVOS_OT_cancel_render(bpy.types.Operator):
    """Stop the matte render after the frames in flight (frames written so far are kept)"""

    bl_idname = "osvos.cancel_render"
    bl_label = "Cancel"

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        return _active is not None and not _active.cancelling

    def execute(self, context: bpy.types.Context) -> set[str]:
        if _active is not None:
            _active.cancel()
            context.window_manager.osvos_status = "Cancelling: finishing the frames in flight"
        return {"FINISHED"}


classes = (OSVOS_OT_render_matte, OSVOS_OT_cancel_render, OSVOS_OT_farm_job)


def register() -> None:
    for cls in classes:
        bpy.utils.register_class(cls)


def unregister() -> None:
    global _active
    if _active is not None:
        _active.kill()
        _active = None
    for cls in reversed(classes):
        bpy.utils.unregister_class(cls)
