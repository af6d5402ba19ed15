"""The OSVOS node's knobs, described as data: generated from plugin.json, applied by osvos_nuke.

Pure Python (no nuke import), so the knob list, its defaults and ranges, and the reading of knob values
back into osvos-render parameters are tested without Nuke. Every manifest parameter becomes one knob
(with its label, help as tooltip, default and range); parameters without a default get a toggle, since a
Nuke knob always holds a value. The rest of the panel (inputs note, output file, Render button) is the
adapter's own.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from osvos_contract.manifest import Manifest, Parameter

KNOB_CLASSES = {"int": "Int_Knob", "float": "Double_Knob", "bool": "Boolean_Knob", "choice": "Enumeration_Knob",
                "string": "String_Knob"}
# Parameters the node decides: it reads back single-channel EXR mattes through its internal Read node.
FIXED_VALUES = {"output_format": "exr"}
# A float range wider than this ratio gets a logarithmic slider (the learning rate spans 1e-7..0.1).
LOG_RANGE_RATIO = 1000.0
RENDER_SCRIPT = "import osvos_nuke; osvos_nuke.render(nuke.thisNode())"
FARM_SCRIPT = "import osvos_nuke; osvos_nuke.farm_job(nuke.thisNode())"
NEXT_CHECK_SCRIPT = "import osvos_nuke; osvos_nuke.next_frame_to_check(nuke.thisNode())"
EXPORT_HINT = ("To run the fine-tuned network inside Nuke's Inference node instead (no engine at comp time): "
               "save the model (Engine > save model), then osvos-export --cattery shot.safetensors <Cattery folder> "
               "and turn its .pt into a .cat with a CatFileCreator, which needs NukeX (see the README).")
# An object's name becomes an EXR layer of the mattes: the engine's rule for layer names.
OBJECT_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_-]{0,63}")
CHANNEL_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\.[A-Za-z_][A-Za-z0-9_]*")


@dataclass(frozen=True)
class KnobSpec:
    """One knob: ``kind`` is the nuke class name, ``flags`` names nuke flag constants."""

    kind: str
    name: str
    label: str = ""
    value: Any = None
    tooltip: str = ""
    range: tuple[float, float] | None = None
    choices: tuple[str, ...] = ()
    flags: tuple[str, ...] = ()
    script: str = ""
    parameter: str = ""  # the manifest parameter this knob holds, if any


def use_knob(name: str) -> str:
    """The toggle knob of a parameter without a default."""
    return f"use_{name}"


def parameter_knobs(p: Parameter) -> list[KnobSpec]:
    """The knob(s) of one manifest parameter: the value knob, preceded by a toggle when it is optional."""
    kind = KNOB_CLASSES[p.type]
    knobs = []
    if p.optional:
        knobs.append(KnobSpec("Boolean_Knob", use_knob(p.name), f"set {p.label.lower()}", False,
                              f"Use the value on the right; otherwise: {p.help}", flags=("STARTLINE",)))
    value = p.default
    if value is None:
        value = 0 if p.type == "int" else 0.0 if p.type == "float" else ""
    rng = None
    flags: list[str] = [] if p.optional else ["STARTLINE"]
    if p.type in ("int", "float") and p.min is not None and p.max is not None:
        rng = (p.min, p.max)
        if p.type == "float" and p.min > 0 and p.max / p.min > LOG_RANGE_RATIO:
            flags.append("LOG_SLIDER")
    if p.type in ("int", "string", "choice"):
        flags.append("NO_ANIMATION")  # read once when the render starts: animation would be misleading
    knobs.append(KnobSpec(kind, p.name, p.label, value, p.help, rng, p.choices, tuple(flags),
                          parameter=p.name))
    return knobs


def node_knobs(manifest: Manifest) -> list[KnobSpec]:
    """Every user knob of the OSVOS group, tab by tab, in the manifest's order."""
    inputs = ", ".join(f"{i['name']}: {i.get('help', '')}" for i in manifest.inputs)
    knobs = [
        KnobSpec("Tab_Knob", "osvos", manifest.label),
        KnobSpec("Text_Knob", "about", "", f"{manifest.label} {manifest.version}: {manifest.description}"),
        KnobSpec("Text_Knob", "inputs_help", "inputs", inputs),
        KnobSpec("File_Knob", "output_file", "matte file",
                 "", "Where the mattes go (e.g. /shots/x/matte.####.exr); empty: an osvos folder next to the "
                 "Nuke script."),
        KnobSpec("String_Knob", "objects", "objects", "",
                 "Several objects at once: name:channel pairs, e.g. 'car:rgba.red person:rgba.green', each object "
                 "painted into its own channel of the Mask input (Roto shapes can write to any channel). The "
                 "mattes then hold one layer per object (car.alpha, ...) beside the alpha of them all. Empty: one "
                 "object, the Mask's alpha.", flags=("STARTLINE",)),
        KnobSpec("Boolean_Knob", "premultiply", "premultiply", True,
                 "Premultiply the Source's colour by the matte (the usual output of a keyer); off: the Source's "
                 "colour untouched, the matte in its alpha.", flags=("STARTLINE",)),
        KnobSpec("Boolean_Knob", "overwrite", "render all frames again", False,
                 "Render every frame again. Otherwise a frame already written is kept only when it is whole "
                 "and was made with the same model and settings (resume); the others are rendered again anyway.",
                 flags=("STARTLINE",)),
        KnobSpec("PyScript_Knob", "render", "Render", tooltip="Fine-tune on the painted frame and write the "
                 "matte of every frame (runs osvos-render in the background).", flags=("STARTLINE",),
                 script=RENDER_SCRIPT),
        KnobSpec("PyScript_Knob", "farm_job", "Farm Job", tooltip="Write this render as a render-farm job (an "
                 "Open Job Description / Deadline Cloud bundle in the matte folder's .osvos/), and submit it when "
                 "the deadline command is set up. The Source must be a Read of files the farm can see.",
                 script=FARM_SCRIPT),
        KnobSpec("Text_Knob", "status", "status", "not rendered yet"),
        KnobSpec("Text_Knob", "frames_to_check", "frames to check", "",
                 "What the render's review flagged (empty mattes, jumps, stray blobs, unsure frames)."),
        KnobSpec("PyScript_Knob", "next_check", "Next Frame to Check", tooltip="Go to the next frame the review "
                 "flagged; paint a correction there on the Mask and render again (the kept model continues).",
                 flags=("STARTLINE",), script=NEXT_CHECK_SCRIPT),
        KnobSpec("String_Knob", "check_frames", "flagged frames", "", flags=("INVISIBLE",)),
    ]
    for group, params in manifest.groups():
        shown = [p for p in params if p.name not in FIXED_VALUES]
        if not shown:
            continue
        knobs.append(KnobSpec("Text_Knob", f"group_{group.lower().replace(' ', '_')}", group, ""))
        for p in shown:
            knobs += parameter_knobs(p)
    knobs += [
        KnobSpec("Tab_Knob", "engine_tab", "Engine"),
        KnobSpec("File_Knob", "engine", "osvos-render", "",
                 "Path of the osvos-render command; empty: $OSVOS_RENDER, then PATH."),
        KnobSpec("File_Knob", "parent", "parent network", "",
                 "Parent network (.safetensors) to fine-tune from; empty: the one osvos-render ships."),
        KnobSpec("File_Knob", "save_model", "save model", "",
                 "Keep the fine-tuned network here (for osvos-export or farm renders with --load-model)."),
        KnobSpec("Text_Knob", "export_help", "", EXPORT_HINT),
    ]
    return knobs


def parameter_values(knob_values: Mapping[str, Any], manifest: Manifest,
                     skip: tuple[str, ...] = ("mask_frame",)) -> dict[str, Any]:
    """osvos-render parameter values from knob values (name -> value as the knobs return them).

    Enumeration knobs may report the index or the label: both map back to the choice. Optional parameters
    count only when their toggle is on. ``skip``: parameters the adapter sets itself (the mask frame).
    """
    values: dict[str, Any] = dict(FIXED_VALUES)
    for p in manifest.parameters:
        if p.name in FIXED_VALUES or p.name in skip or p.name not in knob_values:
            continue
        if p.optional and not knob_values.get(use_knob(p.name)):
            continue
        value = knob_values[p.name]
        if p.type == "choice" and isinstance(value, (int, float)) and not isinstance(value, bool):
            value = p.choices[int(value)]
        elif p.type == "int":
            value = int(round(float(value)))
        elif p.type == "float":
            value = float(value)
        elif p.type == "bool":
            value = bool(value)
        else:
            value = str(value)
        values[p.name] = value
    return values


def parse_objects(text: str) -> list[tuple[str, str]]:
    """``'car:rgba.red person:rgba.green'`` -> [("car", "rgba.red"), ("person", "rgba.green")]; ValueError
    saying which entry is wrong (a name the mattes' EXR layers cannot take, a missing channel, a repeat)."""
    objects: list[tuple[str, str]] = []
    for entry in text.replace(",", " ").split():
        name, sep, channel = entry.partition(":")
        if not sep or not OBJECT_NAME.fullmatch(name) or not CHANNEL_NAME.fullmatch(channel):
            raise ValueError(f"objects: {entry!r} is not name:layer.channel (e.g. car:rgba.red)")
        if name in (n for n, _ in objects):
            raise ValueError(f"objects: {name!r} is given twice")
        objects.append((name, channel))
    return objects


def frame_list(text: str) -> list[int]:
    """The frames of a range text as the node's Frame Range takes it: ``1001-1010x2 1020,1030-1031``."""
    frames: set[int] = set()
    for part in text.replace(",", " ").split():
        m = re.fullmatch(r"(-?\d+)(?:-(-?\d+)(?:x(\d+))?)?", part)
        if m is None:
            raise ValueError(f"frame range: {part!r} is not a frame, first-last or first-lastxstep")
        first = int(m.group(1))
        last = int(m.group(2)) if m.group(2) is not None else first
        step = int(m.group(3) or 1)
        if last < first or step < 1:
            raise ValueError(f"frame range: {part!r} runs backwards or has a zero step")
        frames.update(range(first, last + 1, step))
    return sorted(frames)


def frame_runs(frames: Iterable[int]) -> list[tuple[int, int, int]]:
    """Sorted frames as (first, last, step) runs, one render call each: [1, 2, 3, 7, 9] -> (1, 3, 1), (7, 9, 2)."""
    frames = sorted(set(frames))
    runs: list[tuple[int, int, int]] = []
    i = 0
    while i < len(frames):
        if i + 1 == len(frames):
            runs.append((frames[i], frames[i], 1))
            break
        step = frames[i + 1] - frames[i]
        j = i + 1
        while j + 1 < len(frames) and frames[j + 1] - frames[j] == step:
            j += 1
        runs.append((frames[i], frames[j], step))
        i = j + 1
    return runs
