"""Render-farm jobs in Open Job Description (``jobtemplate-2023-09``) and Deadline Cloud job bundles.

One template serves every shot: a ``FineTune`` step (one task: fine-tune on the painted frame, save the
shot's model beside the mattes) and a ``Render`` step that depends on it, its frames cut into chunks
(the ``TASK_CHUNKING`` extension), each chunk an ``osvos-render --load-model`` of its frames. The node's
parameters become job parameters built from plugin.json (name, default, range, choices, help, group), so
the template cannot drift from the CLI or the hosts; plates, mask and output are ``PATH`` parameters, so a
scheduler's path mapping carries them to a worker's mounts. Standard library only, like the rest of the
contract: hosts write bundles in process.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

from .manifest import Manifest, Parameter, load_manifest
from .patterns import frames_on_disk, split_token

SPEC_VERSION = "jobtemplate-2023-09"
# Where the fine-tune step keeps the shot's model, relative to the output folder (hidden beside the mattes).
MODEL_NAME = ".osvos/{shot}.model.safetensors"
# How long a cancelled task has to stop between frames (SIGTERM) before it is killed: a frame at most.
NOTIFY_PERIOD_S = 60
DEFAULT_CHUNK = 10
# plugin.json parameters the template sets from the shot rather than as node parameters.
SHOT_PARAMETERS = ("frames", "mask_frame")


def job_parameter_name(name: str) -> str:
    """plugin.json ``process_size`` -> job parameter ``ProcessSize`` (OpenJD's naming)."""
    return "".join(part.capitalize() for part in name.split("_"))


def _ui(control: str, label: str, group: str) -> dict:
    return {"control": control, "label": label, "groupLabel": group}


def node_parameter(p: Parameter) -> dict:
    """The job parameter of one plugin.json parameter: its default, range or choices, help and group."""
    out: dict[str, Any] = {"name": job_parameter_name(p.name), "description": p.help}
    group = f"OSVOS: {p.group}" if p.group else "OSVOS"
    if p.type == "int":
        out.update(type="INT", default=int(p.default))
        control = "SPIN_BOX"
    elif p.type == "float":
        out.update(type="FLOAT", default=float(p.default))
        control = "SPIN_BOX"
    elif p.type == "bool":
        out.update(type="STRING", default="true" if p.default else "false", allowedValues=["true", "false"])
        control = "CHECK_BOX"
    elif p.type == "choice":
        out.update(type="STRING", default=str(p.default), allowedValues=list(p.choices))
        control = "DROPDOWN_LIST"
    else:
        out.update(type="STRING", default=str(p.default))
        control = "LINE_EDIT"
    if p.min is not None:
        out["minValue"] = int(p.min) if p.type == "int" else float(p.min)
    if p.max is not None:
        out["maxValue"] = int(p.max) if p.type == "int" else float(p.max)
    out["userInterface"] = _ui(control, p.label, group)
    return out


def _shot_parameters(m: Manifest) -> list[dict]:
    frames, mask_frame = m.parameter("frames"), m.parameter("mask_frame")
    shot = "Shot"
    return [
        {"name": "ShotName", "type": "STRING", "minLength": 1, "maxLength": 64, "default": "shot",
         "description": "Names the job and the shot's model file.", "userInterface": _ui("LINE_EDIT", "Shot", shot)},
        {"name": "PlateDir", "type": "PATH", "objectType": "DIRECTORY", "dataFlow": "IN",
         "description": "Folder of the Source plate frames.",
         "userInterface": _ui("CHOOSE_DIRECTORY", "Plate Folder", shot)},
        {"name": "PlateName", "type": "STRING", "minLength": 1,
         "description": "File name of the plate frames with a frame token: plate.####.exr, plate.%04d.exr.",
         "userInterface": _ui("LINE_EDIT", "Plate Name", shot)},
        {"name": "MaskFile", "type": "PATH", "objectType": "FILE", "dataFlow": "IN",
         "description": "The painted mask (alpha, or luminance when it has none).",
         "userInterface": _ui("CHOOSE_INPUT_FILE", "Mask", shot)},
        {"name": "MaskFrame", "type": "INT", "description": mask_frame.help.split(". Defaults")[0] + ".",
         "userInterface": _ui("SPIN_BOX", mask_frame.label, shot)},
        {"name": "Frames", "type": "STRING", "minLength": 1,
         "description": "Frames to render, e.g. 1001-1100 or 1001-1100x2: " + frames.help.split(",")[0].lower() + ".",
         "userInterface": _ui("LINE_EDIT", frames.label, shot)},
        {"name": "ChunkSize", "type": "INT", "default": DEFAULT_CHUNK, "minValue": 1, "maxValue": 100000,
         "description": "Frames per render task. Each task loads the shot's model once: larger chunks spend "
         "less time starting, smaller ones spread over more workers.",
         "userInterface": _ui("SPIN_BOX", "Frames per Task", shot)},
        {"name": "OutputDir", "type": "PATH", "objectType": "DIRECTORY", "dataFlow": "OUT",
         "description": "Folder the mattes (and the shot's model, in .osvos/) are written to.",
         "userInterface": _ui("CHOOSE_DIRECTORY", "Output Folder", shot)},
        {"name": "OutputName", "type": "STRING", "minLength": 1, "default": "matte.####.exr",
         "description": "File name of the mattes with a frame token.",
         "userInterface": _ui("LINE_EDIT", "Output Name", shot)},
    ]


def _render_args(m: Manifest) -> list[str]:
    """The words every osvos-render of the job shares: plates, output, the node parameters by name."""
    args = ["{{Param.PlateDir}}/{{Param.PlateName}}", "--output", "{{Param.OutputDir}}/{{Param.OutputName}}",
            "--progress", "openjd"]
    for p in m.parameters:
        if p.name not in SHOT_PARAMETERS:
            args += ["--set", f"{p.name}={{{{Param.{job_parameter_name(p.name)}}}}}"]
    return args


def _action(args: list[str]) -> dict:
    return {"onRun": {"command": "osvos-render", "args": args,
                      "cancelation": {"mode": "NOTIFY_THEN_TERMINATE", "notifyPeriodInSeconds": NOTIFY_PERIOD_S}}}


def job_template(manifest: Manifest | None = None, gpu_finetune: bool = False) -> dict:
    """The OpenJD job template (as a dict; ``json.dumps`` it) for any shot. ``gpu_finetune``: the fine-tune
    task asks for a worker with a GPU (``amount.worker.gpu``); the chunks run on any worker."""
    m = manifest or load_manifest()
    model = "{{Param.OutputDir}}/" + MODEL_NAME.format(shot="{{Param.ShotName}}")
    common = _render_args(m)
    finetune = [*common[:1], "--mask", "{{Param.MaskFile}}", "--set", "mask_frame={{Param.MaskFrame}}",
                "--frames", "{{Param.Frames}}", "--save-model", model, "--train-only", *common[1:]]
    render = [*common[:1], "--frames", "{{Task.Param.Frame}}", "--load-model", model, *common[1:]]
    return {
        "specificationVersion": SPEC_VERSION,
        "extensions": ["TASK_CHUNKING"],
        "name": f"{m.label} matte: {{{{Param.ShotName}}}}",
        "description": f"{m.description} Fine-tunes once, then renders the frames in chunks.",
        "parameterDefinitions": _shot_parameters(m) + [node_parameter(p) for p in m.parameters
                                                       if p.name not in SHOT_PARAMETERS],
        "steps": [
            {"name": "FineTune", "description": "Learn the object from the painted frame; save the shot's model.",
             **({"hostRequirements": {"amounts": [{"name": "amount.worker.gpu", "min": 1}]}} if gpu_finetune else {}),
             "script": {"actions": _action(finetune)}},
            {"name": "Render", "description": "Write the mattes of a chunk of frames with the shot's model.",
             "dependencies": [{"dependsOn": "FineTune"}],
             "parameterSpace": {"taskParameterDefinitions": [
                 {"name": "Frame", "type": "CHUNK[INT]", "range": "{{Param.Frames}}",
                  "chunks": {"defaultTaskCount": "{{Param.ChunkSize}}", "rangeConstraint": "CONTIGUOUS"}}]},
             "script": {"actions": _action(render)}},
        ],
    }


def frame_range_text(frames: list[int]) -> str:
    """``[1, 2, 3, 5, 7, 9]`` -> ``1-3,5-9:2``, OpenJD's range expression (steps written ``:n``)."""
    parts: list[str] = []
    i = 0
    while i < len(frames):
        j = i + 1
        if j < len(frames):
            step = frames[j] - frames[i]
            while j + 1 < len(frames) and frames[j + 1] - frames[j] == step:
                j += 1
            if j - i >= 2 or step == 1:
                parts.append(f"{frames[i]}-{frames[j]}" + (f":{step}" if step != 1 else ""))
                i = j + 1
                continue
        parts.append(str(frames[i]))
        i += 1
    return ",".join(parts)


def bundle_values(
    source: str | os.PathLike,
    mask: str | os.PathLike,
    output: str | os.PathLike,
    params: dict[str, Any] | None = None,
    shot: str = "",
    chunk_size: int = DEFAULT_CHUNK,
    manifest: Manifest | None = None,
) -> dict[str, Any]:
    """Job parameter values for one shot, from what a render is given (plugin.json names in ``params``).

    ValueError names what is wrong: a parameter outside its range, a chunk size under 1, a pattern without a
    frame token, or no frames (an empty ``frames`` means every plate frame found on disk, as in a render).
    """
    m = manifest or load_manifest()
    values = m.resolve(params)  # every value checked against plugin.json's range
    if int(chunk_size) < 1:
        raise ValueError(f"chunk size {chunk_size}: a task needs at least 1 frame")
    plate, out = split_token(source), split_token(output)
    if plate is None:
        raise ValueError(f"{source}: the plate pattern has no frame token (plate.####.exr)")
    if out is None:
        raise ValueError(f"{output}: the output pattern has no frame token (matte.####.exr)")
    frames = values["frames"]
    if not frames:
        found = frames_on_disk(source)
        if not found:
            raise ValueError(f"{source}: no plate frames found; check the folder and the pattern")
        frames = frame_range_text(found)
    mask_frame = values["mask_frame"]
    if mask_frame is None:
        first = frames.split(",")[0].split("-")[0].split(":")[0].split("x")[0]
        mask_frame = int(first)
    out_values: dict[str, Any] = {
        "ShotName": shot or plate.before.rstrip("._-") or "shot",
        "PlateDir": str(Path(source).parent.resolve()), "PlateName": Path(source).name,
        "MaskFile": str(Path(mask).resolve()), "MaskFrame": int(mask_frame), "Frames": frames.replace("x", ":"),
        "ChunkSize": int(chunk_size),
        "OutputDir": str(Path(output).parent.resolve()), "OutputName": Path(output).name,
    }
    for p in m.parameters:
        if p.name in SHOT_PARAMETERS:
            continue
        v = values[p.name]
        out_values[job_parameter_name(p.name)] = ("true" if v else "false") if p.type == "bool" else v
    return out_values


def write_job_bundle(directory: str | os.PathLike, values: dict[str, Any], manifest: Manifest | None = None,
                     gpu_finetune: bool = False) -> Path:
    """A Deadline Cloud job bundle: ``template.json``, ``parameter_values.json`` (this shot's values) and
    ``asset_references.json`` (plates and mask in, output folder out); ``deadline bundle submit DIR`` sends
    it. ``job_parameters.json`` holds the same values as ``openjd run`` reads them, so
    ``openjd run DIR/template.json -p file://DIR/job_parameters.json --run-dependencies`` runs the job here."""
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    files = {
        "template.json": job_template(manifest, gpu_finetune),
        "parameter_values.json": {"parameterValues": [{"name": k, "value": v} for k, v in values.items()]},
        "job_parameters.json": values,
        "asset_references.json": {"assetReferences": {
            "inputs": {"directories": [values["PlateDir"]], "filenames": [values["MaskFile"]]},
            "outputs": {"directories": [values["OutputDir"]]}}},
    }
    for name, data in files.items():
        tmp = d / f".{name}.tmp"
        tmp.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
        os.replace(tmp, d / name)
    return d




def shot_bundle(
    source: str | os.PathLike,
    mask: str | os.PathLike,
    output: str | os.PathLike,
    params: dict[str, Any] | None = None,
    shot: str = "",
    chunk_size: int = DEFAULT_CHUNK,
    gpu_finetune: bool = False,
    manifest: Manifest | None = None,
) -> Path:
    """What a host's "farm job" button does: the bundle for this render in ``<output folder>/.osvos/<shot>.job``,
    with the mask copied to ``.osvos/<shot>.mask.<ext>`` first (a host's mask is often a temporary file the
    farm cannot see). ValueError (see ``bundle_values``) before anything is written."""
    values = bundle_values(source, mask, output, params, shot, chunk_size, manifest)
    folder = Path(values["OutputDir"]) / ".osvos"
    kept = folder / f"{values['ShotName']}.mask{Path(mask).suffix}"
    folder.mkdir(parents=True, exist_ok=True)
    if Path(mask).resolve() != kept.resolve():
        shutil.copyfile(mask, kept)
    values["MaskFile"] = str(kept)
    return write_job_bundle(folder / f"{values['ShotName']}.job", values, manifest, gpu_finetune)


def deadline_cli() -> str | None:
    """The ``deadline`` command (AWS Deadline Cloud's CLI) when it is on PATH."""
    return shutil.which("deadline")


def submit(bundle: str | os.PathLike, timeout_s: float = 300) -> tuple[bool, str]:
    """``deadline bundle submit BUNDLE`` with the user's configured farm and queue: (ok, its last line or the
    reason it could not run)."""
    cli = deadline_cli()
    if cli is None:
        return False, "the deadline command is not installed (pip install deadline); the bundle is written"
    try:
        proc = subprocess.run([cli, "bundle", "submit", "--yes", str(bundle)], capture_output=True, text=True,
                              timeout=timeout_s)
    except (OSError, subprocess.TimeoutExpired) as e:
        return False, f"deadline bundle submit failed: {e}"
    lines = [line for line in (proc.stdout + proc.stderr).splitlines() if line.strip()]
    return proc.returncode == 0, lines[-1] if lines else f"deadline exited with {proc.returncode}"


if __name__ == "__main__":  # python -m osvos_contract.farm > farm/osvos.template.json
    print(json.dumps(job_template(), indent=2))
