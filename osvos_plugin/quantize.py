"""int8 inference on x86 CPUs (``auto``'s choice there, but with AMX): convolutions in 8-bit integers.

A fine-tuning step or a frame at float32 already runs near what such a CPU's cores can do (BENCHMARKS.md),
so only less arithmetic per value makes inference faster there. PyTorch's static quantisation (FX graph
mode, the x86 backend: per-channel int8 weights, int8 activations) quantises the VGG16 trunk and the side
convolutions; input normalisation, the fusion and the bilinear upsampling stay float32. Activation ranges
are calibrated on frames of the bundled demo shot, not on the shot being rendered, so every render and
every farm chunk quantises a given model the same way (a matte's fingerprint holds the model and the
``precision`` parameter, which is then all that decides it). Fine-tuning is never quantised.

The kernels are oneDNN's, with the x86 backend's observers: activations in 7 bits (``reduce_range``), since
without AVX-512 VNNI the 8-bit products are summed in 16 bits and would saturate; full 8-bit activations
disagree with float32 on a fifth of the matte there. PyTorch's ``x86`` engine runs the same numbers slower
on AVX2 (BENCHMARKS.md, "Inference in int8").

Calibration costs about as much as segmenting a dozen frames, and a farm renders a shot in chunks of a few
frames, each quantising the same model: so what calibration measured (the activation observers' state) is
kept in a small file beside the model, keyed by the model's weights, and a later render of that model
quantises from it without a calibration pass, to the same int8 model.
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import os
import warnings
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

from .device import int8_engine
from .imaging import fit_long_side, resize
from .network import ObjectNets, OSVOSNet

log = logging.getLogger(__name__)

DEMO_PLATES = Path(__file__).resolve().parent / "demo" / "bear" / "plate"
CALIBRATION_FRAMES = (1001, 1006, 1011, 1016)  # and their mirror images
_OBSERVER = "activation_post_process_"  # FX's name for the observers it inserts
_CACHE_FORMAT = "osvos-int8-calibration/1"


class _Trunk(torch.nn.Module):
    """The convolutions up to the four side features: what quantisation speeds up."""

    def __init__(self, net: OSVOSNet) -> None:
        super().__init__()
        self.stages, self.side_prep = net.stages, net.side_prep

    forward = OSVOSNet.trunk_features


class _Int8Net(torch.nn.Module):
    """One OSVOS network with an int8 trunk; the same logits as the network, to within quantisation."""

    def __init__(self, net: OSVOSNet, calibration: list[torch.Tensor] | None,
                 observers: dict[str, torch.Tensor] | None = None) -> None:
        """Activation ranges from a calibration pass over ``calibration`` (normalised inside), or from
        ``observers``, the state a calibration left (``self.observers``), which gives the same int8 net."""
        super().__init__()
        from torch.ao.quantization import get_default_qconfig_mapping, quantize_fx

        self.net = copy.deepcopy(net).float().eval().to(memory_format=torch.contiguous_format)
        example = calibration[0] if calibration else torch.zeros(1, 3, 64, 64)
        with warnings.catch_warnings():  # FX quantisation warns that torchao is to replace it
            warnings.simplefilter("ignore")
            prepared = quantize_fx.prepare_fx(_Trunk(self.net), get_default_qconfig_mapping("x86"),
                                              (self.net.norm(example),))
            if observers is not None:
                wanted = {k: v.shape for k, v in prepared.state_dict().items() if k.startswith(_OBSERVER)}
                if {k: v.shape for k, v in observers.items()} != wanted:
                    raise ValueError("the calibration state does not fit this network")
                prepared.load_state_dict(observers, strict=False)
            else:
                with torch.inference_mode():
                    for x in calibration or []:
                        prepared(self.net.norm(x))
            self.observers = {k: v.detach().clone() for k, v in prepared.state_dict().items()
                              if k.startswith(_OBSERVER)}
            self.trunk = quantize_fx.convert_fx(prepared)

    def forward(self, rgb: torch.Tensor) -> torch.Tensor:
        preps = self.trunk(self.net.norm(rgb.float().contiguous()))
        return self.net._fused(preps, rgb.shape[-2:])


class Int8Model(torch.nn.Module):
    """A fine-tuned model (one network, or one per object) whose trunks run in int8 on the CPU. It answers
    as the model does (logits, ``probabilities``, ``exclusive_objects``), so the Segmenter uses it as is."""

    def __init__(self, model: OSVOSNet | ObjectNets, calibration: list[torch.Tensor] | None,
                 engine: str | None = None, observers: dict[str, torch.Tensor] | None = None) -> None:
        """``engine``: PyTorch's quantised engine (default: ``int8_engine()``); the benchmark compares them.
        ``observers``: instead of calibrating, what an earlier calibration of this model measured
        (``observer_state``)."""
        super().__init__()
        engine = engine or int8_engine()
        if engine is None:
            raise RuntimeError("precision int8 needs an x86-64 CPU (PyTorch's onednn or x86 engine); "
                               "use precision auto or fp32 on this machine")
        torch.backends.quantized.engine = engine  # the kernels are packed for it when each net converts
        nets = list(model.nets) if isinstance(model, ObjectNets) else [model]
        per_net: list[dict[str, torch.Tensor] | None] = [None] * len(nets)
        if observers is not None:
            per_net = [{k.split(".", 1)[1]: v for k, v in observers.items() if k.split(".", 1)[0] == str(i)}
                       for i in range(len(nets))]
            if sum(len(o) for o in per_net) != len(observers):
                raise ValueError("the calibration state does not fit this model")
        self.nets = torch.nn.ModuleList(_Int8Net(net, calibration, o) for net, o in zip(nets, per_net, strict=True))
        self.exclusive_objects = getattr(model, "exclusive_objects", True)
        self._probabilities = model.probabilities
        self.num_objects = model.num_objects

    def observer_state(self) -> dict[str, torch.Tensor]:
        """What calibration measured, network by network ("<net>.<observer>.<buffer>")."""
        return {f"{i}.{k}": v for i, net in enumerate(self.nets) for k, v in net.observers.items()}

    def probabilities(self, logits: torch.Tensor) -> torch.Tensor:
        return self._probabilities(logits)

    def forward(self, rgb: torch.Tensor) -> torch.Tensor:
        return torch.cat([net(rgb) for net in self.nets], dim=1)

    def to(self, *args, **kwargs) -> Int8Model:  # noqa: ANN002, ANN003
        """Stays on the CPU in its own layout (the Segmenter moves models to channels_last)."""
        return self


@lru_cache(maxsize=4)
def _demo_frames(process_size: int) -> tuple[torch.Tensor, ...]:
    import cv2

    out = []
    for f in CALIBRATION_FRAMES:
        bgr = cv2.imread(str(DEMO_PLATES / f"bear.{f}.jpg"))
        if bgr is None:
            raise FileNotFoundError(f"{DEMO_PLATES / f'bear.{f}.jpg'}: the calibration frames for int8 are missing; "
                                    "reinstall osvos-plugin")
        x = torch.from_numpy(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB).astype(np.float32) / 255).permute(2, 0, 1)[None]
        x = resize(x, fit_long_side(*x.shape[-2:], process_size if process_size > 0 else max(x.shape[-2:])))
        out += [x, x.flip(-1)]
    return tuple(out)


def model_digest(model: torch.nn.Module) -> str:
    """SHA-256 of a model's state (names, dtypes, shapes and values): what a calibration belongs to."""
    h = hashlib.sha256()
    for name, t in sorted(model.state_dict().items()):
        t = t.detach().cpu().contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def _cache_key(model: torch.nn.Module, process_size: int, engine: str) -> dict[str, str]:
    return {"format": _CACHE_FORMAT, "model": model_digest(model), "process_size": str(process_size),
            "engine": engine, "torch": torch.__version__, "frames": json.dumps(CALIBRATION_FRAMES)}


def _read_cache(path: Path, key: dict[str, str]) -> dict[str, torch.Tensor] | None:
    """The observers a calibration of this model left in ``path``, or None (absent, another model or setting,
    or unreadable: then a calibration runs again and replaces it)."""
    from safetensors import safe_open

    if not path.is_file():
        return None
    try:
        with safe_open(str(path), framework="pt") as f:
            if f.metadata() != key:
                log.info("int8: %s holds another model's calibration; calibrating again", path)
                return None
            return {k: f.get_tensor(k) for k in f.keys()}
    except Exception as e:  # noqa: BLE001 - a cache: anything wrong with it means calibrating again
        log.warning("int8: could not read the calibration %s (%s); calibrating again", path, e)
        return None


def _write_cache(path: Path, key: dict[str, str], state: dict[str, torch.Tensor]) -> None:
    from safetensors.torch import save_file

    from .errors import OutputError
    from .files import atomic_write

    try:  # several farm tasks may write it at once: each writes a whole file and renames it
        atomic_write(path, lambda tmp: save_file({k: v.contiguous() for k, v in state.items()}, str(tmp),
                                                 metadata=key))
    except (OutputError, OSError) as e:
        log.warning("int8: the calibration was not kept (%s); the next render calibrates again", e)


def calibration_cache_path(model_path: str | os.PathLike) -> Path:
    """Where the int8 calibration of the model saved at ``model_path`` is kept: beside it."""
    model_path = Path(model_path)
    stem = model_path.name.removesuffix(".safetensors")
    return model_path.with_name(f"{stem}.int8.safetensors")


def quantize_for_cpu(model: OSVOSNet | ObjectNets, process_size: int, engine: str | None = None,
                     cache: str | os.PathLike | None = None) -> Int8Model:
    """``model`` with its convolutions in int8, calibrated on the demo frames at ``process_size``. With
    ``cache`` (a file), the calibration is read from there when it is this model's, else made and kept there."""
    engine = engine or int8_engine()
    if engine is None:
        return Int8Model(model, None, engine)  # refused there, with what to use instead
    key = _cache_key(model, process_size, engine) if cache is not None else {}
    observers = _read_cache(Path(cache), key) if cache is not None else None
    if observers is not None:
        try:
            quantised = Int8Model(model, None, engine, observers=observers)
            log.info("inference in int8 (%d network%s), calibration from %s", len(quantised.nets),
                     "s" if len(quantised.nets) > 1 else "", cache)
            return quantised
        except ValueError as e:
            log.warning("int8: %s: %s; calibrating again", cache, e)
    quantised = Int8Model(model, list(_demo_frames(process_size)), engine)
    log.info("inference in int8 (%d network%s)", len(quantised.nets), "s" if len(quantised.nets) > 1 else "")
    if cache is not None:
        _write_cache(Path(cache), key, quantised.observer_state())
    return quantised
