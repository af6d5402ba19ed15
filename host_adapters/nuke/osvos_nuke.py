"""OSVOS for Nuke: a Python-built Group whose Render button runs osvos-render on the upstream plates.

Inside the group: Input "Source" (0) and Input "Mask" (1), a Read of the mattes, a Copy that puts the
matte into the Source's alpha (and Copies that bring each object's layer), and a Premult switched by the
node's *premultiply* knob, feeding the Output. Until a first matte has landed the Copy is disabled and the
group passes the Source through. Outside the rendered frames the matte Read gives black (no matte), and
a missing or broken matte inside them shows as Nuke's read error, not as black.

Render: the Source goes to osvos-render as the files of its Read node (the full-size ``file`` knob, never
the proxy; the Read's trims as the frame range; its colour space as the input colour space) when it is a
plain Read of an image sequence (no frame offset, no TCL in the path). Anything else upstream (a movie, a
comp, a Read with an offset) is first rendered to temporary EXRs in the script's working space, proxy mode
off, one ``nuke.execute`` per run of frames; a cancelled or failed pre-render is reported on the node, not
raised. The Mask is rendered at the mask frame (per object: the object's channel into the alpha) unless it
is a Read of a single still. The script's OCIO config goes to the engine as ``$OCIO``.

osvos-render then runs in the background (a thread polls it) with its progress in a Nuke progress task,
whose cancel button stops it cleanly; mattes are reloaded into the group as they land, and when the render
ends its "frames to check" report is shown on the node. Closing the script, quitting Nuke or deleting the
node stops a running render. In terminal mode (``nuke -t``, farms) the render blocks instead, printing
its progress.

The engine is never imported: Nuke's Python cannot load its torch/numpy, and a crash of the engine must
not take Nuke down. Knob layout and values live in osvos_knobs (no nuke import, tested without Nuke); the
manifest, frame patterns and the osvos-render process come from osvos_contract (init.py makes it importable).
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import re
import shutil
import tempfile
import threading
import time
from dataclasses import dataclass, field

import nuke
import osvos_knobs

from osvos_contract import farm
from osvos_contract.manifest import ManifestError, load_manifest
from osvos_contract.patterns import frames_on_disk, has_frame_token, printf_pattern
from osvos_contract.process import (
    EngineNotFound,
    RenderProcess,
    RenderResult,
    build_command,
    engine_environment,
    find_engine,
    run,
)
from osvos_contract.review import review_path, review_summary

log = logging.getLogger(__name__)

MARKER_KNOB = "osvos_version"  # hidden knob that tells an OSVOS group from any other group
MATTE_READ = "OSVOS_Matte"
MATTE_COPY = "OSVOS_Copy"
MATTE_PREMULT = "OSVOS_Premult"
LAYER_COPY = "OSVOS_Layers"  # the Copy nodes bringing the objects' layers: OSVOS_Layers1, OSVOS_Layers2, ...
COPY_PAIRS = 4  # a Copy node copies up to four channels (from0/to0 .. from3/to3)
POLL_S = 0.2
RELOAD_S = 2.0  # while frames are inferred, the matte Read is reloaded at most this often

_running: dict[str, tuple[Job, RenderProcess]] = {}  # node full name -> its render
_callbacks_registered = False


class OSVOSError(Exception):
    """A setup problem the artist can fix; shown as a message."""


class RenderCancelled(OSVOSError):
    """The artist cancelled a pre-render: said on the node, no dialog."""


# ------------------------------------------------------------------------------------------------ the node


def make_knob(spec: osvos_knobs.KnobSpec) -> nuke.Knob:
    """A nuke knob from its description."""
    cls = getattr(nuke, spec.kind)
    if spec.kind == "Enumeration_Knob":
        knob = cls(spec.name, spec.label, list(spec.choices))
        knob.setValue(str(spec.value))
    elif spec.kind == "PyScript_Knob":
        knob = cls(spec.name, spec.label, spec.script)
    elif spec.kind == "Text_Knob":
        knob = cls(spec.name, spec.label, str(spec.value or ""))
    elif spec.kind == "Tab_Knob":
        knob = cls(spec.name, spec.label)
    elif spec.kind == "Boolean_Knob":
        knob = cls(spec.name, spec.label, bool(spec.value))
    elif spec.kind == "String_Knob":
        knob = cls(spec.name, spec.label, str(spec.value or ""))
    else:  # Int_Knob, Double_Knob, File_Knob
        knob = cls(spec.name, spec.label)
        if spec.range is not None and spec.kind in ("Int_Knob", "Double_Knob"):
            knob.setRange(spec.range[0], spec.range[1])
        if spec.value not in (None, ""):
            knob.setValue(spec.value)
    if spec.tooltip:
        knob.setTooltip(spec.tooltip)
    for flag in spec.flags:
        knob.setFlag(getattr(nuke, flag))  # every flag osvos_knobs names is a nuke constant
    return knob


def create_node() -> nuke.Node:
    """A new OSVOS group (Node menu > Keyer > OSVOS), connected to the selected node like any node."""
    manifest = load_manifest()
    group = nuke.createNode("Group", inpanel=False)
    group.setName("OSVOS")
    with group:
        source = nuke.nodes.Input(name="Source")
        source["number"].setValue(0)
        mask = nuke.nodes.Input(name="Mask")
        mask["number"].setValue(1)
        read = nuke.nodes.Read(name=MATTE_READ)
        read["disable"].setValue(True)
        read["raw"].setValue(True)  # a matte is data: no colour transform
        read["before"].setValue("black")  # no matte outside the rendered frames, not the nearest one held
        read["after"].setValue("black")
        read["on_error"].setValue("error")  # a missing or broken matte must show, not pass as black
        copy = nuke.nodes.Copy(name=MATTE_COPY, from0="rgba.alpha", to0="rgba.alpha")
        copy.setInput(0, source)
        copy.setInput(1, read)
        copy["disable"].setValue(True)
        premult = nuke.nodes.Premult(name=MATTE_PREMULT)
        premult.setInput(0, copy)
        # off with the switch, and while no matte is loaded (the Source's own alpha is not the matte)
        premult["disable"].setExpression(f"!parent.premultiply || {MATTE_COPY}.disable")
        output = nuke.nodes.Output()
        output.setInput(0, premult)
    marker = nuke.String_Knob(MARKER_KNOB, "osvos version", manifest.version)
    marker.setFlag(nuke.INVISIBLE)
    group.addKnob(marker)
    for spec in osvos_knobs.node_knobs(manifest):
        group.addKnob(make_knob(spec))
    return group


def is_osvos_node(node: nuke.Node) -> bool:
    return node is not None and MARKER_KNOB in node.knobs()


VALUE_KINDS = ("Int_Knob", "Double_Knob", "Boolean_Knob", "Enumeration_Knob", "String_Knob", "File_Knob")


def knob_values(node: nuke.Node, specs: list) -> dict:
    """name -> value of the node's value knobs (Enumeration knobs give the choice's name)."""
    knobs = node.knobs()
    return {s.name: knobs[s.name].value() for s in specs if s.kind in VALUE_KINDS and s.name in knobs}


# -------------------------------------------------------------------------------------------- the inputs


@dataclass
class Job:
    node: str  # full name of the group
    command: list
    output: str  # printf pattern of the mattes
    tmpdir: str
    env: dict = field(default_factory=dict)
    objects: list = field(default_factory=list)  # object names: the mattes' layers
    abandoned: bool = False  # the script was closed or the node deleted: the result goes nowhere
    layered: bool = False  # the Copy nodes of the objects' layers are wired


@dataclass
class Plate:
    """The Source as osvos-render takes it."""

    pattern: str
    frames: str  # --frames
    colorspace: str  # --input-colorspace; "" leaves the engine's 'auto'


def _execute(write: nuke.Node, frames: list, what: str) -> None:
    """Render ``write`` for ``frames``: one ``nuke.execute`` per run of frames (one progress bar each, not
    one a frame), full size whatever the proxy switch says. Cancel and render errors become OSVOSError."""
    root = nuke.root()
    proxy = bool(root["proxy"].value())
    if proxy:
        root["proxy"].setValue(False)
    try:
        for first, last, step in osvos_knobs.frame_runs(frames):
            nuke.execute(write, first, last, step)
    except RuntimeError as e:  # Nuke raises RuntimeError("Cancelled") and every Write error alike
        if "cancel" in str(e).lower():
            raise RenderCancelled(f"cancelled while rendering the {what} for osvos-render") from None
        raise OSVOSError(f"the {what} could not be rendered for osvos-render: {e}") from None
    finally:
        if proxy:
            root["proxy"].setValue(True)


def _render_input(group: nuke.Node, input_name: str, path: str, frames: list, channels: str, datatype: str,
                  what: str, channel: str = "") -> None:
    """Render one of the group's inputs to EXR files in the working space (raw: no colour transform);
    ``channel``: copied into the alpha first (one object's channel of the Mask)."""
    made = []
    with group:
        upstream = nuke.toNode(input_name)
        if channel:
            pick = nuke.nodes.Copy(from0=channel, to0="rgba.alpha")
            pick.setInput(0, upstream)
            pick.setInput(1, upstream)
            made.append(pick)
            upstream = pick
        write = nuke.nodes.Write(file=path, file_type="exr", channels=channels)
        write["datatype"].setValue(datatype)
        write["raw"].setValue(True)
        write.setInput(0, upstream)
        made.append(write)
    try:
        _execute(write, frames, what)
    finally:
        for node in reversed(made):
            nuke.delete(node)


def _frame_list(frames_text: str, first: int, last: int) -> list:
    try:
        frames = osvos_knobs.frame_list(frames_text) if frames_text.strip() else list(range(first, last + 1))
    except ValueError as e:
        raise OSVOSError(str(e)) from None
    if not frames:
        raise OSVOSError("the frame range holds no frame")
    return frames


def _plain_read(node: nuke.Node) -> bool:
    """A Read whose files osvos-render can take as they are: an image sequence, no frame offset, no TCL."""
    if node.Class() != "Read" or node["disable"].value() or str(node["frame"].value()).strip():
        return False
    path = str(node["file"].value())
    return bool(path) and "[" not in path and has_frame_token(path)


def read_colorspace(read: nuke.Node) -> str:
    """The Read's colour space as osvos-render takes it: 'raw', or the name without Nuke's ``default (...)``."""
    if read["raw"].value():
        return "raw"
    name = str(read["colorspace"].value()).strip()
    m = re.fullmatch(r"default \((.*)\)", name)
    return (m.group(1) if m else name).strip()


def working_space() -> str:
    """The script's working colour space: what a raw Write of the Source holds."""
    knob = nuke.root().knob("workingSpaceLUT")
    return str(knob.value()) if knob is not None else "linear"


def source_plate(group: nuke.Node, frames_text: str, tmpdir: str) -> Plate:
    """The plate for osvos-render: a plain Read's own files (its trims as the range unless the node's Frame
    Range is set, its colour space), or the Source rendered to temporary half-float EXRs."""
    source = group.input(0)
    if source is None:
        raise OSVOSError("connect the plate to the Source input")
    if _plain_read(source):
        frames = frames_text.strip() or f"{int(source['first'].value())}-{int(source['last'].value())}"
        return Plate(str(source["file"].value()), frames, read_colorspace(source))
    first, last = int(source.firstFrame()), int(source.lastFrame())
    frames = _frame_list(frames_text, first, last)
    pattern = os.path.join(tmpdir, "source.%04d.exr")
    _render_input(group, "Source", pattern, frames, "rgb", "16 bit half", "Source")
    return Plate(pattern, frames_text.strip() or f"{frames[0]}-{frames[-1]}", working_space())


def mask_file(group: nuke.Node, frame: int, tmpdir: str, name: str = "mask", channel: str = "") -> str:
    """The painted frame as a file: a Read of a single still is used as is (one object only), anything else
    (Roto, a Read of a sequence, a paint chain) is rendered at ``frame`` to a float EXR whose alpha is the
    mask (``channel`` copied into it for one object of several)."""
    mask = group.input(1)
    if mask is None:
        raise OSVOSError("connect the painted mask (e.g. a Roto node) to the Mask input")
    if not channel and mask.Class() == "Read" and not mask["disable"].value():
        path = str(mask["file"].value())
        if path and "[" not in path and not has_frame_token(path) and os.path.isfile(path):
            return path
    path = os.path.join(tmpdir, f"{name}.exr")
    _render_input(group, "Mask", path, [frame], "rgba", "32 bit float", f"Mask ({name})", channel)
    return path


def output_pattern(group: nuke.Node) -> str:
    value = group["output_file"].value().strip()
    if value:
        return printf_pattern(value)
    script = nuke.root().name()
    if not script or script == "Root":
        raise OSVOSError("save the script first (the mattes go next to it), or set the matte file")
    name = group.fullName().replace(".", "_")
    return os.path.join(os.path.dirname(script), "osvos", name, name + "_matte.%04d.exr")


def ocio_environment() -> dict:
    """``{"OCIO": config}`` for the engine: the OCIO config this script uses (Project Settings > Color), so
    the engine decodes the plates with the config Nuke reads them with. $OCIO set for Nuke goes on as is."""
    if os.environ.get("OCIO"):
        return {}
    root = nuke.root()
    config = root.knob("OCIO_config")
    if config is None:  # no OCIO settings on this Nuke: the engine's built-in config
        return {}
    knob = root.knob("customOCIOConfigPath" if config.value() == "custom" else "OCIOConfigPath")
    path = str(knob.getEvaluatedValue()) if knob is not None else ""
    if path and os.path.isfile(path):
        return {"OCIO": os.path.abspath(path)}
    if path:
        log.warning("OSVOS: the script's OCIO config %r (%s) is not a file; the engine uses its own",
                    config.value(), path)
    return {}


def prepare_job(group: nuke.Node) -> Job:
    """Everything the render needs, from the group's knobs and inputs."""
    manifest = load_manifest()
    values = knob_values(group, osvos_knobs.node_knobs(manifest))
    engine = find_engine(group["engine"].value().strip())
    mask_frame = int(values["mask_frame"]) if values.get(osvos_knobs.use_knob("mask_frame")) else nuke.frame()
    try:
        objects = osvos_knobs.parse_objects(group["objects"].value())
    except ValueError as e:
        raise OSVOSError(str(e)) from None
    tmpdir = tempfile.mkdtemp(prefix="osvos_nuke_")
    try:
        params = osvos_knobs.parameter_values(values, manifest)
        plate = source_plate(group, str(params.get("frames", "")), tmpdir)
        params["frames"] = plate.frames
        if str(params.get("input_colorspace", "auto")).strip() in ("", "auto") and plate.colorspace:
            params["input_colorspace"] = plate.colorspace
        masks = [(name, mask_file(group, mask_frame, tmpdir, name, channel)) for name, channel in objects]
        mask = None if objects else mask_file(group, mask_frame, tmpdir)
        output = output_pattern(group)
        command = build_command(
            engine, plate.pattern, output, parameters=manifest.parameters, values=params, mask=mask,
            mask_frame=mask_frame, objects=masks, parent=group["parent"].value().strip() or None,
            save_model=group["save_model"].value().strip() or None, overwrite=bool(values.get("overwrite")),
        )
        env = engine_environment()
        env.update(ocio_environment())
    except BaseException:
        shutil.rmtree(tmpdir, ignore_errors=True)
        raise
    return Job(group.fullName(), command, output, tmpdir, env, [name for name, _ in objects])


def farm_job(group: nuke.Node | None = None, submit: bool | None = None) -> str:
    """The Farm Job button: the render as a job bundle beside the mattes (``osvos_contract.farm``), submitted
    with the deadline command when it is there and the artist agrees (``submit`` decides in scripts)."""
    group = group or nuke.thisNode()
    manifest = load_manifest()
    values = knob_values(group, osvos_knobs.node_knobs(manifest))
    mask_frame = int(values["mask_frame"]) if values.get(osvos_knobs.use_knob("mask_frame")) else nuke.frame()
    source = group.input(0)
    if source is None or not _plain_read(source):
        raise_or_show(group, "a farm job reads the plate files on the workers: connect a Read (no frame offset) "
                      "of an image sequence the farm can see to the Source input")
        return ""
    if group["objects"].value().strip():
        raise_or_show(group, "farm jobs take one object: clear 'objects' or render here")
        return ""
    tmpdir = tempfile.mkdtemp(prefix="osvos_nuke_")
    try:
        params = osvos_knobs.parameter_values(values, manifest)
        params["mask_frame"] = mask_frame
        bundle = farm.shot_bundle(str(source["file"].value()), mask_file(group, mask_frame, tmpdir),
                                  output_pattern(group), params, shot=group.name())
    except (OSVOSError, ManifestError, ValueError, OSError) as e:
        raise_or_show(group, f"farm job not written: {e}")
        return ""
    finally:
        shutil.rmtree(tmpdir, ignore_errors=True)
    message = f"farm job written to {bundle}"
    if submit is None:
        submit = bool(nuke.GUI and farm.deadline_cli() and nuke.ask(f"{message}.\n\nSubmit it to Deadline Cloud?"))
    if submit:
        ok, said = farm.submit(bundle)
        message = f"{'submitted' if ok else 'not submitted'}: {said} (bundle: {bundle})"
    group["status"].setValue(message)
    return str(bundle)


def raise_or_show(group: nuke.Node, message: str, dialog: bool = True) -> None:
    """A setup problem: in the status knob and a dialog in the GUI, raised in terminal mode."""
    group["status"].setValue(f"error: {message}")
    if not nuke.GUI:
        raise OSVOSError(message)
    if dialog:
        nuke.message(f"OSVOS: {message}")


# -------------------------------------------------------------------------------------------- the render


def render(group: nuke.Node | None = None, wait: bool | None = None) -> None:
    """The Render button: start osvos-render for ``group`` (in the background in the GUI)."""
    group = group or nuke.thisNode()
    register_callbacks()
    wait = (not nuke.GUI) if wait is None else wait
    if group.fullName() in _running:
        nuke.message(f"{group.name()} is already rendering; cancel it in the progress window first.")
        return
    try:
        job = prepare_job(group)
    except RenderCancelled as e:
        if not nuke.GUI:
            raise
        group["status"].setValue(str(e))
        return
    except (OSVOSError, EngineNotFound, ManifestError, ValueError) as e:
        raise_or_show(group, str(e))
        return
    group["status"].setValue("rendering...")
    if wait:
        def show(p) -> None:
            print(f"OSVOS {job.node}: {p.message()}", flush=True)

        finish(job, run(job.command, on_progress=show, env=job.env))
        return
    proc = RenderProcess(job.command, env=job.env).start()
    _running[job.node] = (job, proc)
    threading.Thread(target=_watch, args=(job, proc), name=f"osvos {job.node}", daemon=True).start()


def _watch(job: Job, proc: RenderProcess) -> None:
    """Background thread: progress task and cancel button, mattes shown as they land, then the result
    handed to the main thread."""
    task = nuke.ProgressTask(f"OSVOS {job.node}")
    task.setMessage("starting osvos-render")
    shown, shown_at = -1, 0.0
    try:
        while True:
            code = proc.returncode
            proc.poll()
            latest = proc.latest
            if latest is not None and not proc.cancelling:
                task.setProgress(int(100 * latest.overall))
                task.setMessage(latest.message())
                if (latest.stage == "infer" and latest.done > shown and latest.done > 0
                        and time.monotonic() - shown_at >= RELOAD_S):
                    shown, shown_at = latest.done, time.monotonic()
                    nuke.executeInMainThread(show_mattes, args=(job,))
            if code is not None:
                break
            if task.isCancelled() and not proc.cancelling:
                proc.cancel()
                task.setMessage("cancelling: finishing the frames in flight")
            time.sleep(POLL_S)
        result = proc.result()
    finally:
        del task
        if _running.get(job.node, (None,))[0] is job:
            del _running[job.node]
    nuke.executeInMainThread(finish, args=(job, result))


def _matte_nodes(group: nuke.Node) -> tuple[nuke.Node, nuke.Node, nuke.Node]:
    with group:
        return nuke.toNode(MATTE_READ), nuke.toNode(MATTE_COPY), nuke.toNode(MATTE_PREMULT)


def _object_layers(group: nuke.Node, objects: list) -> None:
    """Copy nodes bringing each object's layer (``<name>.alpha``) from the matte Read into the output."""
    read, copy, premult = _matte_nodes(group)
    with group:
        k = 1
        while nuke.toNode(f"{LAYER_COPY}{k}") is not None:  # the last render's: its objects may differ
            nuke.delete(nuke.toNode(f"{LAYER_COPY}{k}"))
            k += 1
        upstream = copy
        for k, at in enumerate(range(0, len(objects), COPY_PAIRS), start=1):
            pairs = {}
            for i, name in enumerate(objects[at:at + COPY_PAIRS]):
                pairs[f"from{i}"] = pairs[f"to{i}"] = f"{name}.alpha"
            layers = nuke.nodes.Copy(name=f"{LAYER_COPY}{k}", **pairs)
            layers.setInput(0, upstream)
            layers.setInput(1, read)
            upstream = layers
        premult.setInput(0, upstream)


def show_mattes(job: Job) -> list:
    """Main thread: point the group's Read at the mattes on disk so far and switch the matte on; the frames."""
    if job.abandoned:
        return []
    group = nuke.toNode(job.node)
    if group is None:  # deleted while rendering
        return []
    frames = frames_on_disk(job.output)
    if not frames:
        return []
    if job.objects and not job.layered:
        _object_layers(group, job.objects)
        job.layered = True
    read, copy, _ = _matte_nodes(group)
    read["file"].setValue(job.output.replace(os.sep, "/"))
    for knob, value in (("first", frames[0]), ("last", frames[-1]), ("origfirst", frames[0]),
                        ("origlast", frames[-1])):
        read[knob].setValue(value)
    read["disable"].setValue(False)
    read["reload"].execute()
    copy["disable"].setValue(False)
    return frames


def flagged_frames(pattern: str) -> list:
    """The first frame of each range the render's review flagged, in order (empty without a report)."""
    try:
        data = json.loads(review_path(pattern).read_text(encoding="utf-8"))
        return sorted({int(r[0]) for entry in data.get("flagged", []) for r in entry.get("ranges", [])})
    except (OSError, ValueError, TypeError, KeyError, IndexError, AttributeError):
        return []


def finish(job: Job, result: RenderResult) -> None:
    """Main thread: load the mattes into the group's Read, show the frames to check, or say what failed."""
    shutil.rmtree(job.tmpdir, ignore_errors=True)
    if job.abandoned:
        return
    group = nuke.toNode(job.node)
    if group is None:  # deleted while rendering
        return
    frames = show_mattes(job)  # a cancelled or failed render keeps the mattes it wrote: show them
    if not result.ok:
        group["status"].setValue(result.message)
        if nuke.GUI and not result.cancelled:
            nuke.message(f"OSVOS: {result.message}")
        return
    if not frames:
        group["status"].setValue(f"osvos-render wrote no matte to {job.output}")
        return
    summary = review_summary(job.output)
    group["frames_to_check"].setValue(summary or "nothing flagged")
    group["check_frames"].setValue(" ".join(str(f) for f in flagged_frames(job.output)))
    group["status"].setValue(f"{len(frames)} mattes, frames {frames[0]}-{frames[-1]}")


def next_frame_to_check(group: nuke.Node | None = None) -> int | None:
    """The Next Frame to Check button: go to the next flagged frame after the current one (wrapping)."""
    group = group or nuke.thisNode()
    frames = [int(f) for f in group["check_frames"].value().split()]
    if not frames:
        nuke.message("OSVOS: the last render flagged no frame.")
        return None
    now = nuke.frame()
    frame = next((f for f in frames if f > now), frames[0])
    nuke.frame(frame)
    return frame


# ------------------------------------------------------------------------------------ stopping on close


def stop_render(name: str) -> bool:
    """Stop the render of node ``name`` at once, its result dropped; True when one was running."""
    entry = _running.pop(name, None)
    if entry is None:
        return False
    job, proc = entry
    job.abandoned = True
    proc.kill()  # mattes are written whole (atomically): a killed render leaves no half-written frame
    log.info("OSVOS: stopped the render of %s", name)
    return True


def stop_all_renders() -> None:
    """onScriptClose (closing the script, quitting Nuke) and exit: no osvos-render outlives its script."""
    for name in list(_running):
        stop_render(name)


def _on_destroy() -> None:
    """onDestroy of a Group: deleting a rendering OSVOS node stops its render."""
    node = nuke.thisNode()
    if node is not None and is_osvos_node(node):
        stop_render(node.fullName())


def register_callbacks() -> None:
    """Once per session: stop renders when the script closes, Nuke quits or their node is deleted."""
    global _callbacks_registered
    if _callbacks_registered:
        return
    nuke.addOnScriptClose(stop_all_renders)
    nuke.addOnDestroy(_on_destroy, nodeClass="Group")
    atexit.register(stop_all_renders)
    _callbacks_registered = True


register_callbacks()
