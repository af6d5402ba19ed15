"""The Render Matte operator: a modal run with progress and Esc to cancel, or a blocking one for scripts.

Both paths go through the same three steps: :func:`prepare_job` (files and command line from the scene),
polling one :class:`RenderProcess` (:class:`ModalRender` on the modal timer, or ``osvos_contract.process.run``
which polls the same object in a loop), and :func:`finish_job` (compositor wiring, report). Called from a
button the operator is modal (``invoke``); called from Python (``bpy.ops.osvos.render_matte()``) it is
blocking (``execute``). The modal steps live in :class:`ModalRender`, a plain object, so that tests drive
the button's path in a headless Blender, which has no window to run a modal operator in.
"""

from __future__ import annotations

import logging
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import bpy

from . import properties
from .compositor import MatteSequence, wire_matte
from .inputs import (
    InputError,
    SourcePlates,
    clip_plates,
    image_mask_file,
    image_plates,
    make_tempdir,
    mask_objects,
    rasterize_mask,
)
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
from .osvos_contract.review import review_summary
from .preferences import get_preferences

log = logging.getLogger(__name__)
DEFAULT_OUTPUT_DIR = "//osvos"
TIMER_S = 0.25
RELOAD_S = 1.0  # while frames land, the compositor's matte is reloaded at most this often

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
    objects: list[tuple[str, str]] = field(default_factory=list)  # (name, mask file) with several objects


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
        objects: list[tuple[str, str]] = []
        if settings.mask_type == "MASK":
            mask = settings.mask or _editor_mask(context)
            if mask is None:
                raise InputError("Choose the Mask datablock painted on the object")
            layers = mask_objects(mask)
            if len(layers) > 1:  # one object per mask layer, each rasterised alone
                objects = [(name, rasterize_mask(mask, mask_scene_frame, plates.width, plates.height,
                                                 os.path.join(tmpdir, f"mask.{name}.exr"), layer))
                           for name, layer in layers]
                mask_file = objects[0][1]
            else:
                mask_file = rasterize_mask(mask, mask_scene_frame, plates.width, plates.height,
                                           os.path.join(tmpdir, "mask.exr"))
        else:
            if settings.mask_image is None:
                raise InputError("Choose the painted mask image")
            mask_file = image_mask_file(settings.mask_image, tmpdir)
        output = matte_pattern(out_dir, plates.pattern, "exr", plates.padding)
        parent = bpy.path.abspath(prefs.parent_model) if prefs and prefs.parent_model else None
        params = properties.parameter_values(settings, manifest)
        if params.get("input_colorspace", "auto") in ("", "auto") and plates.colorspace:
            params["input_colorspace"] = plates.colorspace  # the clip's own, named in Blender's OCIO config
        command = build_command(
            engine, plates.pattern, output, parameters=manifest.parameters, values=params,
            mask=None if objects else mask_file, objects=objects, mask_frame=plates.file_frame(mask_scene_frame),
            parent=parent, overwrite=settings.overwrite,
        )
    except BaseException:
        shutil.rmtree(tmpdir, ignore_errors=True)
        raise
    env = engine_environment()
    env["OCIO"] = ocio_config()
    return Job(command, plates, output, plates.file_frame(mask_scene_frame), tmpdir,
               settings.wire_compositor, scene.name, env, params, mask_file, objects)


def ocio_config() -> str:
    """The OCIO config Blender runs with: $OCIO where set (Blender reads it too), else its bundled one, so the
    engine understands the colour space names Blender shows."""
    configured = os.environ.get("OCIO", "")
    if configured:
        return configured
    return os.path.join(bpy.utils.system_resource("DATAFILES", path="colormanagement"), "config.ocio")


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
        wire_matte(scene, job.plates, MatteSequence(job.output_pattern, frames[0], frames[-1]),
                   [name for name, _ in job.objects])
        message += ", wired into the compositor"
    check = review_summary(job.output_pattern)
    if scene is not None:
        scene.osvos.review = check
    if check:
        return {"WARNING"}, f"{message}; {check}"
    return {"INFO"}, message


def show_landed(job: Job) -> bool:
    """Wire (or reload) the mattes written so far, so the compositor shows them while the render goes on;
    whether there were any."""
    frames = frames_on_disk(job.output_pattern)
    scene = bpy.data.scenes.get(job.scene_name)
    if not frames or not job.wire or scene is None:
        return False
    wire_matte(scene, job.plates, MatteSequence(job.output_pattern, frames[0], frames[-1]),
               [name for name, _ in job.objects])
    return True


def _set_status(wm: bpy.types.WindowManager, running: bool, progress: float, text: str) -> None:
    wm.osvos_running = running
    wm.osvos_progress = progress
    wm.osvos_status = text


def _redraw(context: bpy.types.Context) -> None:
    """Redraw what shows the render: the OSVOS panels and the status bar, in every window."""
    for window in context.window_manager.windows:
        for area in window.screen.areas if window.screen else ():
            if area.type in ("CLIP_EDITOR", "NODE_EDITOR", "STATUSBAR"):
                area.tag_redraw()


class ModalRender:
    """The button's render: started by the operator's ``invoke``, then fed the modal events.

    Progress goes to the window manager's properties, which the panel and the status bar draw. Esc
    cancels only when pressed over the editor the render was started from (elsewhere it is the other
    editors' Esc); the status bar and the panel have a Cancel button too. While frames land, the
    compositor's matte is wired and reloaded, so the artist sees the mattes before the render ends.
    """

    def __init__(self, job: Job, report: Callable[[set[str], str], None],
                 area: tuple[int, int, int, int] | None = None) -> None:
        self.job = job
        self.report = report
        self.area = area  # x, y, width, height of the editor (window pixels); None: Esc anywhere
        self.proc: RenderProcess | None = None
        self._inferred = 0
        self._reloaded_at = 0.0

    def start(self, context: bpy.types.Context) -> None:
        global _active
        self.proc = RenderProcess(self.job.command, env=self.job.env).start()
        _active = self.proc
        _set_status(context.window_manager, True, 0.0, "Starting osvos-render (Esc to cancel)")
        _redraw(context)

    def over_area(self, event: bpy.types.Event) -> bool:
        if self.area is None:
            return True
        x, y, w, h = self.area
        return x <= event.mouse_x < x + w and y <= event.mouse_y < y + h

    def on_event(self, context: bpy.types.Context, event: bpy.types.Event) -> set[str]:
        """One modal event: RUNNING_MODAL while the render runs; FINISHED or CANCELLED at its end."""
        wm = context.window_manager
        proc = self.proc
        if event.type == "ESC":
            if event.value != "PRESS" or proc.cancelling or not self.over_area(event):
                return {"PASS_THROUGH"}
            proc.cancel()
            _set_status(wm, True, wm.osvos_progress, "Cancelling: finishing the frames in flight")
            _redraw(context)
            return {"RUNNING_MODAL"}
        if event.type != "TIMER":
            return {"PASS_THROUGH"}
        code = proc.returncode
        proc.poll()
        latest = proc.latest
        if latest is not None and not proc.cancelling:
            _set_status(wm, True, 100.0 * latest.overall, latest.message() + " (Esc to cancel)")
        if (code is None and latest is not None and latest.stage == "infer" and latest.done > self._inferred
                and time.monotonic() - self._reloaded_at >= RELOAD_S):
            if show_landed(self.job):
                self._inferred = latest.done
                self._reloaded_at = time.monotonic()
        _redraw(context)
        if code is None:
            return {"RUNNING_MODAL"}
        return self.end(context, proc.result())

    def end(self, context: bpy.types.Context, result: RenderResult) -> set[str]:
        global _active
        _set_status(context.window_manager, False, 0.0, "")
        _active = None
        level, message = finish_job(self.job, result)
        self.report(level, message)
        _redraw(context)
        return {"FINISHED"} if result.ok else {"CANCELLED"}

    def kill(self) -> None:
        """Blender is closing the operator (file load, quit): stop the render, leave nothing behind."""
        global _active
        if self.proc is not None:
            self.proc.kill()
        shutil.rmtree(self.job.tmpdir, ignore_errors=True)
        _active = None


class OSVOS_OT_render_matte(bpy.types.Operator):
    """Learn the object from the painted frame and write its matte for every frame of the plate"""

    bl_idname = "osvos.render_matte"
    bl_label = "Render Matte"
    bl_options = {"REGISTER", "UNDO"}  # the compositor wiring is one undo step

    _render: ModalRender | None = None
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
        level, message = finish_job(job, result)
        self.report(level, message)
        return {"FINISHED"} if result.ok else {"CANCELLED"}

    # -- modal (UI): progress in the status bar and the panel, Esc over the editor cancels
    def invoke(self, context: bpy.types.Context, event: bpy.types.Event) -> set[str]:
        job = self._prepare(context)
        if job is None:
            return {"CANCELLED"}
        area = context.area
        render = ModalRender(job, self.report, (area.x, area.y, area.width, area.height) if area else None)
        try:
            render.start(context)
        except EngineNotFound as e:
            shutil.rmtree(job.tmpdir, ignore_errors=True)
            self.report({"ERROR"}, f"OSVOS: {e}")
            return {"CANCELLED"}
        self._render = render
        wm = context.window_manager
        self._timer = wm.event_timer_add(TIMER_S, window=context.window)
        wm.modal_handler_add(self)
        return {"RUNNING_MODAL"}

    def modal(self, context: bpy.types.Context, event: bpy.types.Event) -> set[str]:
        outcome = self._render.on_event(context, event)
        if outcome & {"FINISHED", "CANCELLED"}:
            self._remove_timer(context)
        return outcome

    def _remove_timer(self, context: bpy.types.Context) -> None:
        if self._timer is not None:
            context.window_manager.event_timer_remove(self._timer)
            self._timer = None

    def cancel(self, context: bpy.types.Context) -> None:
        """Blender is closing the operator (file load, quit): stop the render."""
        if self._render is not None:
            self._render.kill()
        self._remove_timer(context)


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
        if job.objects:
            shutil.rmtree(job.tmpdir, ignore_errors=True)
            self.report({"ERROR"}, f"OSVOS: a farm job takes one object, and the mask holds {len(job.objects)} "
                        "layers: render here, or hide all but one layer from render (its camera icon)")
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
