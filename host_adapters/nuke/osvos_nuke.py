"""OSVOS for Nuke: a Python-built Group whose Render button runs osvos-render on the upstream plates.

Inside the group: Input "Source" (0) and Input "Mask" (1), a Read of the mattes, and a Copy that puts the
matte into the Source's alpha, feeding the Output. Until a render has finished the Copy is disabled and
the group passes the Source through.

Render: the Source goes to osvos-render as the file pattern of its Read node when it is a plain Read
(no frame offset); anything else upstream is first rendered to temporary EXRs. The Mask input is
rendered at the mask frame to a temporary EXR unless it is a Read of a single still. osvos-render then
runs in the background (a thread polls it) with its progress in a Nuke progress task, whose cancel
button stops it cleanly; the result is loaded into the group's Read in the main thread. In terminal
mode (``nuke -t``, farms) the render blocks instead, printing its progress.

The engine is never imported: Nuke's Python cannot load its torch/numpy, and a crash of the engine must
not take Nuke down. Knob layout and values live in osvos_knobs (no nuke import, tested without Nuke); the
manifest, frame patterns and the osvos-render process come from osvos_contract (init.py makes it importable).
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import threading
import time
from dataclasses import dataclass

import nuke
import osvos_knobs

from osvos_contract import farm
from osvos_contract.manifest import ManifestError, load_manifest
from osvos_contract.patterns import frames_on_disk, printf_pattern
from osvos_contract.process import (
    EngineNotFound,
    RenderProcess,
    RenderResult,
    build_command,
    engine_environment,
    find_engine,
    run,
)

log = logging.getLogger(__name__)

MARKER_KNOB = "osvos_version"  # hidden knob that tells an OSVOS group from any other group
MATTE_READ = "OSVOS_Matte"
MATTE_COPY = "OSVOS_Copy"
POLL_S = 0.2

_running: dict[str, RenderProcess] = {}  # node full name -> its render


class OSVOSError(Exception):
    """A setup problem the artist can fix; shown as a message."""


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
        if spec.range is not None and hasattr(knob, "setRange"):
            knob.setRange(spec.range[0], spec.range[1])
        if spec.value not in (None, ""):
            knob.setValue(spec.value)
    if spec.tooltip:
        knob.setTooltip(spec.tooltip)
    for flag in spec.flags:
        if hasattr(nuke, flag):
            knob.setFlag(getattr(nuke, flag))
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
        copy = nuke.nodes.Copy(name=MATTE_COPY, from0="rgba.alpha", to0="rgba.alpha")
        copy.setInput(0, source)
        copy.setInput(1, read)
        copy["disable"].setValue(True)
        output = nuke.nodes.Output()
        output.setInput(0, copy)
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


def _write_node(group: nuke.Node, input_name: str, path: str, channels: str, datatype: str) -> nuke.Node:
    with group:
        write = nuke.nodes.Write(file=path, file_type="exr", channels=channels)
        write["datatype"].setValue(datatype)
        write.setInput(0, nuke.toNode(input_name))
    return write


def _render_input(group: nuke.Node, input_name: str, path: str, frames: list, channels: str,
                  datatype: str) -> None:
    """Render one of the group's inputs to EXR files (frame by frame, with Nuke's own progress)."""
    write = _write_node(group, input_name, path, channels, datatype)
    try:
        for frame in frames:
            nuke.execute(write, frame, frame)
    finally:
        nuke.delete(write)


def _frame_list(frames_text: str, first: int, last: int) -> list:
    if frames_text.strip():
        return list(nuke.FrameRanges(frames_text.replace(",", " ")).toFrameList())
    return list(range(first, last + 1))


def source_pattern(group: nuke.Node, frames_text: str, tmpdir: str) -> tuple[str, str]:
    """The plate pattern for osvos-render and the --frames value: a plain Read's own files, or the Source
    rendered to temporary half-float EXRs (scene-linear, which osvos-render's 'auto' colour space expects)."""
    source = group.input(0)
    if source is None:
        raise OSVOSError("connect the plate to the Source input")
    if source.Class() == "Read" and not source["disable"].value() and not source["frame"].value():
        return nuke.filename(source), frames_text
    frames = _frame_list(frames_text, int(source.firstFrame()), int(source.lastFrame()))
    pattern = os.path.join(tmpdir, "source.%04d.exr")
    _render_input(group, "Source", pattern, frames, "rgb", "16 bit half")
    return pattern, frames_text


def mask_file(group: nuke.Node, frame: int, tmpdir: str) -> str:
    """The painted frame as a file: a Read of a single still is used as is, anything else (Roto, a Read of
    a sequence, a paint chain) is rendered at ``frame`` to a float EXR (RGBA: the alpha is the mask)."""
    mask = group.input(1)
    if mask is None:
        raise OSVOSError("connect the painted mask (e.g. a Roto node) to the Mask input")
    if mask.Class() == "Read" and not mask["disable"].value():
        path = nuke.filename(mask)
        if path and "%" not in path and "#" not in path and os.path.isfile(path):
            return path
    path = os.path.join(tmpdir, "mask.exr")
    _render_input(group, "Mask", path, [frame], "rgba", "32 bit float")
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


def prepare_job(group: nuke.Node) -> Job:
    """Everything the render needs, from the group's knobs and inputs."""
    manifest = load_manifest()
    values = knob_values(group, osvos_knobs.node_knobs(manifest))
    engine = find_engine(group["engine"].value().strip())
    mask_frame = int(values["mask_frame"]) if values.get(osvos_knobs.use_knob("mask_frame")) else nuke.frame()
    tmpdir = tempfile.mkdtemp(prefix="osvos_nuke_")
    try:
        params = osvos_knobs.parameter_values(values, manifest)
        source, frames_text = source_pattern(group, str(params.get("frames", "")), tmpdir)
        params["frames"] = frames_text
        mask = mask_file(group, mask_frame, tmpdir)
        output = output_pattern(group)
        command = build_command(
            engine, source, output, parameters=manifest.parameters, values=params, mask=mask,
            mask_frame=mask_frame, parent=group["parent"].value().strip() or None,
            save_model=group["save_model"].value().strip() or None, overwrite=bool(values.get("overwrite")),
        )
    except BaseException:
        shutil.rmtree(tmpdir, ignore_errors=True)
        raise
    return Job(group.fullName(), command, output, tmpdir)


def farm_job(group: nuke.Node | None = None, submit: bool | None = None) -> str:
    """The Farm Job button: the render as a job bundle beside the mattes (``osvos_contract.farm``), submitted
    with the deadline command when it is there and the artist agrees (``submit`` decides in scripts)."""
    group = group or nuke.thisNode()
    manifest = load_manifest()
    values = knob_values(group, osvos_knobs.node_knobs(manifest))
    mask_frame = int(values["mask_frame"]) if values.get(osvos_knobs.use_knob("mask_frame")) else nuke.frame()
    source = group.input(0)
    if source is None or source.Class() != "Read" or source["disable"].value() or source["frame"].value():
        raise_or_show(group, "a farm job reads the plate files on the workers: connect a Read (no frame offset) "
                      "of files the farm can see to the Source input")
        return ""
    tmpdir = tempfile.mkdtemp(prefix="osvos_nuke_")
    try:
        params = osvos_knobs.parameter_values(values, manifest)
        params["mask_frame"] = mask_frame
        bundle = farm.shot_bundle(nuke.filename(source), mask_file(group, mask_frame, tmpdir), output_pattern(group),
                                  params, shot=group.name())
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


def raise_or_show(group: nuke.Node, message: str) -> None:
    """A setup problem: in the status knob and a dialog in the GUI, raised in terminal mode."""
    group["status"].setValue(f"error: {message}")
    if not nuke.GUI:
        raise OSVOSError(message)
    nuke.message(f"OSVOS: {message}")


# -------------------------------------------------------------------------------------------- the render


def render(group: nuke.Node | None = None, wait: bool | None = None) -> None:
    """The Render button: start osvos-render for ``group`` (in the background in the GUI)."""
    group = group or nuke.thisNode()
    wait = (not nuke.GUI) if wait is None else wait
    if group.fullName() in _running:
        nuke.message(f"{group.name()} is already rendering; cancel it in the progress window first.")
        return
    try:
        job = prepare_job(group)
    except (OSVOSError, EngineNotFound, ManifestError, ValueError) as e:
        group["status"].setValue(f"error: {e}")
        if nuke.GUI:
            nuke.message(f"OSVOS: {e}")
        else:
            raise
        return
    group["status"].setValue("rendering...")
    env = engine_environment()
    if wait:
        def show(p) -> None:
            print(f"OSVOS {job.node}: {p.message()}", flush=True)

        finish(job, run(job.command, on_progress=show, env=env))
        return
    proc = RenderProcess(job.command, env=env).start()
    _running[job.node] = proc
    threading.Thread(target=_watch, args=(job, proc), name=f"osvos {job.node}", daemon=True).start()


def _watch(job: Job, proc: RenderProcess) -> None:
    """Background thread: progress task and cancel button, then the result handed to the main thread."""
    task = nuke.ProgressTask(f"OSVOS {job.node}")
    task.setMessage("starting osvos-render")
    try:
        while True:
            code = proc.returncode
            proc.poll()
            if proc.latest is not None and not proc.cancelling:
                task.setProgress(int(100 * proc.latest.overall))
                task.setMessage(proc.latest.message())
            if code is not None:
                break
            if task.isCancelled() and not proc.cancelling:
                proc.cancel()
                task.setMessage("cancelling: finishing the frames in flight")
            time.sleep(POLL_S)
        result = proc.result()
    finally:
        del task
        _running.pop(job.node, None)
    nuke.executeInMainThread(finish, args=(job, result))


def finish(job: Job, result: RenderResult) -> None:
    """Main thread: load the mattes into the group's Read and switch the Copy on, or say what failed."""
    shutil.rmtree(job.tmpdir, ignore_errors=True)
    group = nuke.toNode(job.node)
    if group is None:  # deleted while rendering
        return
    if not result.ok:
        group["status"].setValue(result.message)
        if nuke.GUI and not result.cancelled:
            nuke.message(f"OSVOS: {result.message}")
        return
    frames = frames_on_disk(job.output)
    if not frames:
        group["status"].setValue(f"osvos-render wrote no matte to {job.output}")
        return
    with group:
        read = nuke.toNode(MATTE_READ)
        copy = nuke.toNode(MATTE_COPY)
    read["file"].setValue(job.output.replace(os.sep, "/"))
    for knob, value in (("first", frames[0]), ("last", frames[-1]), ("origfirst", frames[0]),
                        ("origlast", frames[-1])):
        read[knob].setValue(value)
    read["on_error"].setValue("black")
    read["raw"].setValue(True)  # a matte is data: no colour transform
    read["disable"].setValue(False)
    read["reload"].execute()
    copy["disable"].setValue(False)
    group["status"].setValue(f"{len(frames)} mattes, frames {frames[0]}-{frames[-1]}")
