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
"""

from __future__ import annotations

import json
import logging
import math
import os
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


class ExportError(OutputError):
    """The model cannot be exported or the exported file cannot be written; the message says why."""


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
