"""A fine-tuned network as TorchScript for Nuke's Inference node (via CatFileCreator).

Nuke runs a TorchScript module with ONE input, an RGB tensor (1, 3, H, W) of floats, and ONE output of
the same height and width. So everything the engine does around the network for a frame is folded into
``forward``: clean-up of the pixels, the resize to the processing size, the input normalisation (inside
the network already), the resize back and the sigmoid. The output (1, 1, H, W) is the engine's soft
matte: the probability re-centred on the threshold (``inference.recentre``), folded into the bias.

Written for TorchScript's scripting (not tracing): a traced module is frozen to one resolution and
Nuke crashes when fed another. Every tensor made inside ``forward`` follows the input's dtype and
device, so Nuke's "Use GPU if available" and "Optimise for speed and memory" (half) options work.
The processing size is a plain int attribute, which CatFileCreator can expose as a knob.

Which Nuke can load the file depends on the torch that wrote it: a Nuke release loads TorchScript written
by its own libtorch version or an older one, never a newer one (``NUKE_TORCH``, the table the README
gives). ``check_torch_for_nuke`` says so before anything is written. ``write_cattery_package`` writes the
folder a Cattery entry is made of (Nuke's ``nukescripts.cattery`` discovers it by its ``cat.json``): the
TorchScript file, ``cat.json``, a gizmo that puts the Colorspace conversion the network needs before the
Inference node, and the steps that turn the .pt into the .cat (CatFileCreator, which needs NukeX).
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import warnings
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from .errors import OutputError
from .files import atomic_write
from .imaging import fit_long_side, resize
from .inference import InferenceConfig
from .network import OSVOS_SIDE_STAGES, SIDE_CHANNELS, InputNorm, OSVOSNet

log = logging.getLogger(__name__)

EXTRA_FILE = "osvos.json"  # metadata stored inside the .pt (torch.jit extra files)
# What CatFileCreator needs to be told, stored with the model and printed by osvos-export.
NUKE_CHANNELS_IN = "rgba.red,rgba.green,rgba.blue"
NUKE_CHANNELS_OUT = "rgba.alpha"


# Nuke release -> the torch version its CatFileCreator and Inference nodes are built on (first release of
# each row; a release uses the row of the newest first release not after it). 13.x and 14.0 from Foundry's
# .cat File Creation guide ("Nuke 14 now uses PyTorch 1.12"); 15.1 from Foundry's 15.1 release notes as this
# project's README quotes them. Releases after 15.1 are held to 2.1 too: an older torch's file still loads.
NUKE_TORCH: tuple[tuple[tuple[int, int], tuple[int, int]], ...] = (
    ((13, 0), (1, 6)),
    ((14, 0), (1, 12)),
    ((15, 1), (2, 1)),
)
DEFAULT_NUKE = "15.1"
CATTERY_CATEGORY = "OSVOS"


class ExportError(OutputError):
    """The model cannot be exported or the exported file cannot be written; the message says why."""


class TorchVersionError(ExportError):
    """The running torch writes TorchScript the requested Nuke cannot load."""


def _version(text: str) -> tuple[int, int]:
    parts = [int(p) for p in re.findall(r"\d+", text.split("+")[0])[:2]]
    if not parts:
        raise ValueError(f"not a version: {text!r}")
    return (parts[0], parts[1] if len(parts) > 1 else 0)


def nuke_torch(nuke_version: str) -> tuple[int, int]:
    """The torch (major, minor) of a Nuke release, e.g. "15.1" -> (2, 1); ValueError before Nuke 13."""
    nuke = _version(nuke_version)
    rows = [torch_v for first, torch_v in NUKE_TORCH if first <= nuke]
    if not rows:
        raise ValueError(f"Nuke {nuke_version} has no Inference node (Nuke 13.0 and later have)")
    return rows[-1]


def check_torch_for_nuke(nuke_version: str, torch_version: str | None = None) -> str:
    """Why the running torch cannot write a file Nuke ``nuke_version`` loads ("" when it can)."""
    torch_version = torch_version or torch.__version__
    want, have = nuke_torch(nuke_version), _version(torch_version)
    if have <= want:
        return ""
    want_text = f"{want[0]}.{want[1]}"
    if want < (2, 1):
        return (f"Nuke {nuke_version} loads TorchScript written by torch {want_text} or older, and osvos-plugin "
                f"needs torch 2.1 or later (Python 3.11): it cannot export for Nuke {nuke_version}. Use the OSVOS "
                "node there (the engine runs beside Nuke), or Nuke 15.1 or later for the Inference node")
    return (f"torch {torch_version} writes TorchScript that Nuke {nuke_version} (torch {want_text}) cannot load: "
            f"export from an environment with torch {want_text} (e.g. a venv with pip install "
            f"'torch=={want_text}.*' osvos-plugin), or name a newer Nuke with --nuke")


class _SideStage(nn.Module):
    """One VGG stage with its side output: the stage, its 16-channel prep conv and its slice of the fusion
    weights (the fused 1x1 conv split per side, as ``OSVOSNet._fused`` computes it)."""

    def __init__(self, stage: nn.Module, prep: nn.Conv2d, fuse_weight: torch.Tensor) -> None:
        super().__init__()
        self.stage = stage
        self.prep = prep
        self.project = nn.Conv2d(SIDE_CHANNELS, 1, 1, bias=False)
        with torch.no_grad():
            self.project.weight.copy_(fuse_weight)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.stage(x)
        return x, self.project(self.prep(x))


class NukeMatteModel(nn.Module):
    """RGB (1, 3, H, W) in [0, 1] -> soft matte (1, 1, H, W), as the engine's.

    ``process_size``: long side at which the network runs (0: the input's own size), exactly like
    ``InferenceConfig.process_size``. ``threshold``: the probability at which the matte is 0.5, like
    ``InferenceConfig.threshold`` for a soft matte (0.5: the probability itself).
    """

    def __init__(self, model: OSVOSNet, process_size: int, threshold: float = 0.5) -> None:
        super().__init__()
        if process_size < 0:
            raise ExportError(f"process_size must be 0 (native) or positive, got {process_size}")
        if not 0.0 < threshold < 1.0:
            raise ExportError(f"threshold must be strictly between 0 and 1 for a soft matte, got {threshold}")
        model = model.float().eval()
        self.process_size = int(process_size)
        self.norm = InputNorm(model.input_convention)
        first = OSVOS_SIDE_STAGES[0]
        if list(OSVOS_SIDE_STAGES) != list(range(first, len(model.stages))):
            raise ExportError("the exporter expects side outputs on the last, consecutive VGG stages")
        self.head = nn.Sequential(*[model.stages[i] for i in range(first)])
        weight = model.fuse.weight.detach()
        self.sides = nn.ModuleList(
            _SideStage(model.stages[i], model.side_prep[k],
                       weight[:, k * SIDE_CHANNELS:(k + 1) * SIDE_CHANNELS].clone())
            for k, i in enumerate(OSVOS_SIDE_STAGES)
        )
        # sigmoid(logit - logit(threshold)) is the re-centred probability: the shift joins the fusion bias
        shift = math.log(threshold / (1.0 - threshold))
        self.register_buffer("fuse_bias", (model.fuse.bias.detach().clone() - shift).view(1, -1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x.shape[2]
        w = x.shape[3]
        # Nuke hands over scene values: NaN/Inf and super-whites are not what the network was fed.
        x = torch.nan_to_num(x[:, :3], nan=0.0, posinf=1.0, neginf=0.0).clamp(0.0, 1.0)
        if self.process_size > 0:
            x = resize(x, fit_long_side(h, w, self.process_size))
        net_size = [x.shape[2], x.shape[3]]
        y = self.head(self.norm(x))
        logits = self.fuse_bias.to(y.dtype).expand(1, 1, net_size[0], net_size[1])
        for side in self.sides:
            y, part = side(y)
            logits = logits + F.interpolate(part, size=net_size, mode="bilinear", align_corners=False)
        if net_size[0] != h or net_size[1] != w:
            logits = F.interpolate(logits, size=[h, w], mode="bilinear", align_corners=False)
        return torch.sigmoid(logits)


def script_for_nuke(model: OSVOSNet, process_size: int, threshold: float = 0.5) -> torch.jit.ScriptModule:
    """The TorchScript module Nuke's CatFileCreator takes (scripted, so any input size works)."""
    if not isinstance(model, OSVOSNet):
        raise ExportError(f"only OSVOS networks can be exported, got {type(model).__name__}")
    if model.num_objects != 1:
        raise ExportError(f"the model holds {model.num_objects} objects; Nuke's Inference node takes one matte: "
                          "export a model fine-tuned on one object (osvos-render --mask ... --save-model)")
    wrapper = NukeMatteModel(model.cpu(), process_size, threshold).eval()
    with warnings.catch_warnings():
        # torch 2.x deprecates TorchScript in favour of torch.export, but TorchScript is what Nuke loads.
        warnings.simplefilter("ignore", FutureWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        return torch.jit.script(wrapper)


def export_torchscript(
    model: OSVOSNet, path: str | os.PathLike, process_size: int, metadata: dict | None = None,
    threshold: float = InferenceConfig.threshold,
) -> Path:
    """Script ``model`` for Nuke and save it to ``path`` atomically, with its metadata inside; its output
    is the engine's soft matte at ``threshold``."""
    path = Path(path)
    scripted = script_for_nuke(model, process_size, threshold)
    meta = {
        "format": "osvos-plugin/nuke-torchscript",
        "process_size": int(process_size),
        "input": "RGB (1, 3, H, W) float in [0, 1], display-referred sRGB",
        "output": "soft matte (1, 1, H, W): the foreground probability re-centred so that it is 0.5 at the "
                  "threshold",
        "threshold": float(threshold),
        "channels_in": NUKE_CHANNELS_IN,
        "channels_out": NUKE_CHANNELS_OUT,
        "torch_version": torch.__version__,
        **(metadata or {}),
    }

    def save(tmp: Path) -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            torch.jit.save(scripted, str(tmp), _extra_files={EXTRA_FILE: json.dumps(meta, sort_keys=True)})

    try:
        atomic_write(path, save)
    except (OutputError, RuntimeError) as e:  # torch reports unwritable files as RuntimeError
        cause = e.__cause__ if isinstance(e, OutputError) else e
        reason = cause.strerror if isinstance(cause, OSError) and cause.strerror else str(cause).splitlines()[0]
        raise ExportError(f"cannot write {path}: {reason}") from e
    log.info("wrote %s (process size %d)", path, process_size)
    return path


def read_export_metadata(path: str | os.PathLike) -> dict:
    """The metadata stored in an exported file (empty when it has none)."""
    extra = {EXTRA_FILE: ""}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        torch.jit.load(str(path), map_location="cpu", _extra_files=extra)
    return json.loads(extra[EXTRA_FILE]) if extra[EXTRA_FILE] else {}


# ------------------------------------------------------------------------------------------ Cattery package

GIZMO = """#! OSVOS Cattery gizmo, written by osvos-export: {name}
Gizmo {{
 inputs 1
 help "OSVOS matte of one shot's object, inside Nuke's Inference node. The plate is converted from the
script's scene-linear working space to sRGB-encoded Rec.709 (what the network was trained on), the model
gives the matte, and the matte goes into the plate's alpha; the plate's colours are left as they came in."
 addUserKnob {{20 osvos l OSVOS}}
 addUserKnob {{26 about l "" +STARTLINE T "{name}: from {source} (process size {process_size}, threshold {threshold})"}}
}}
 Input {{
  inputs 0
  name Plate
 }}
set PLATE [stack 0]
 Colorspace {{
  colorspace_in linear
  colorspace_out sRGB
  name ToModelColourSpace
 }}
 Inference {{
  modelFile "{cat_file}"
  name {name}_Inference
 }}
push $PLATE
 Copy {{
  inputs 2
  from0 rgba.alpha
  to0 rgba.alpha
  name MatteIntoAlpha
 }}
 Output {{
  name Output1
 }}
"""

HOW_TO = """{name}: an OSVOS model for Nuke's Cattery, written by osvos-export (torch {torch}) for Nuke {nuke}.

1. Open NukeX {nuke} or later (or Nuke Studio): the CatFileCreator node needs a NukeX licence. A .cat file
   made there runs in any Nuke {nuke} or later, Nuke included.
2. In a CatFileCreator node:
     Torchscript File  {folder}/{name}.pt
     Cat File          {folder}/{name}.cat
     Channels In       {channels_in}
     Channels Out      {channels_out}
     Model Id          {name}
   Optional: add an Int knob called process_size (the long side, in pixels, the network runs at; default
   {process_size}). Press Create .cat file.
3. Put this folder in a Cattery folder Nuke searches (e.g. ~/.nuke/Cattery/{name}); cat.json lists the
   gizmo {name}.gizmo for the Cattery menu. The gizmo points at {folder}/{name}.cat: edit its Inference
   node's Model File if the folder moves.

Colour: the network wants sRGB-encoded Rec.709 in 0..1 (display-referred), not scene-linear. The gizmo
converts with a Colorspace node (linear -> sRGB) before the Inference node; with an ACEScg (or other)
working space, set that node's input to the working space, or use an OCIOColorSpace node to the config's
sRGB texture space instead.
"""


def write_cattery_package(
    model: OSVOSNet, folder: str | os.PathLike, process_size: int, nuke_version: str = DEFAULT_NUKE,
    threshold: float = InferenceConfig.threshold, metadata: dict | None = None,
) -> Path:
    """A Cattery entry for ``model`` in ``folder`` (named after it): ``<name>.pt``, ``cat.json``,
    ``<name>.gizmo``, ``osvos.json`` (inputs, outputs, the colour conversion) and ``HOW_TO_MAKE_THE_CAT.txt``.
    The .cat itself can only be made inside NukeX (CatFileCreator)."""
    folder = Path(folder).absolute()
    name = re.sub(r"[^A-Za-z0-9_]", "_", folder.name) or "OSVOS"
    if name[0].isdigit():
        name = "OSVOS_" + name
    nuke_torch(nuke_version)  # ValueError for a Nuke without the Inference node
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ExportError(f"cannot write {folder}: {e.strerror or e}") from e
    source = str((metadata or {}).get("source_model", ""))
    pt = export_torchscript(model, folder / f"{name}.pt", process_size,
                            metadata={**(metadata or {}), "nuke_version": nuke_version}, threshold=threshold)
    posix = folder.as_posix()
    cat_json = {
        "minimum_nuke_version_required": float(f"{_version(nuke_version)[0]}.{_version(nuke_version)[1]}"),
        "version": 1,
        "category": CATTERY_CATEGORY,
        "description": f"OSVOS matte of one object ({name}), fine-tuned by osvos-render",
        "cats": [{"filepath": f"{name}.gizmo", "name": name}],
    }
    described = {
        "format": "osvos-plugin/cattery-package",
        "name": name,
        "torchscript": pt.name,
        "cat_file": f"{name}.cat",
        "cat_file_made_by": "CatFileCreator in NukeX (or Nuke Studio)",
        "nuke_version": nuke_version,
        "torch_version": torch.__version__,
        "input": {"channels": NUKE_CHANNELS_IN, "range": [0.0, 1.0],
                  "colorspace": "sRGB-encoded Rec.709, display-referred",
                  "convert_from": "the script's scene-linear working space",
                  "conversion_node": {"class": "Colorspace", "colorspace_in": "linear", "colorspace_out": "sRGB"}},
        "output": {"channels": NUKE_CHANNELS_OUT, "meaning": "soft matte, 0.5 at the threshold",
                   "threshold": float(threshold)},
        "knobs": {"process_size": {"type": "int", "default": int(process_size),
                                   "help": "long side, in pixels, at which the network runs (0: native)"}},
    }
    texts = {
        "cat.json": json.dumps(cat_json, indent=2) + "\n",
        "osvos.json": json.dumps(described, indent=2) + "\n",
        f"{name}.gizmo": GIZMO.format(name=name, source=Path(source).name or "a fine-tuned model",
                                      process_size=process_size, threshold=threshold,
                                      cat_file=f"{posix}/{name}.cat"),
        "HOW_TO_MAKE_THE_CAT.txt": HOW_TO.format(name=name, torch=torch.__version__, nuke=nuke_version,
                                                 folder=posix, channels_in=NUKE_CHANNELS_IN,
                                                 channels_out=NUKE_CHANNELS_OUT, process_size=process_size),
    }
    for file, text in texts.items():
        try:
            atomic_write(folder / file, lambda tmp, text=text: tmp.write_text(text, encoding="utf-8"))
        except OutputError as e:
            raise ExportError(f"cannot write {folder / file}: {e}") from e
    log.info("wrote the Cattery package %s", folder)
    return folder
