"""int8 inference on a CPU: the network's convolutions in 8-bit integers, for CPUs without fast bfloat16.

A fine-tuning step or a frame at float32 already runs near what such a CPU's cores can do (BENCHMARKS.md),
so only less arithmetic per value makes inference faster there. PyTorch's static quantisation (FX graph
mode, the x86 backend: per-channel int8 weights, int8 activations) quantises the VGG16 trunk and the side
convolutions; input normalisation, the fusion and the bilinear upsampling stay float32. Activation ranges
are calibrated on frames of the bundled demo shot, not on the shot being rendered, so every render and
every farm chunk quantises a given model the same way (a matte's fingerprint holds the model and the
``precision`` parameter, which is then all that decides it). Fine-tuning always runs in float32.

The kernels are oneDNN's, with the x86 backend's observers: activations in 7 bits (``reduce_range``), since
without AVX-512 VNNI the 8-bit products are summed in 16 bits and would saturate; full 8-bit activations
disagree with float32 on a fifth of the matte there. PyTorch's ``x86`` engine runs the same numbers slower
on AVX2 (BENCHMARKS.md, "Inference in int8").
"""

from __future__ import annotations

import copy
import logging
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


class _Trunk(torch.nn.Module):
    """The convolutions up to the four side features: what quantisation speeds up."""

    def __init__(self, net: OSVOSNet) -> None:
        super().__init__()
        self.stages, self.side_prep = net.stages, net.side_prep

    forward = OSVOSNet.trunk_features


class _Int8Net(torch.nn.Module):
    """One OSVOS network with an int8 trunk; the same logits as the network, to within quantisation."""

    def __init__(self, net: OSVOSNet, calibration: list[torch.Tensor]) -> None:
        super().__init__()
        from torch.ao.quantization import get_default_qconfig_mapping, quantize_fx

        self.net = copy.deepcopy(net).float().eval().to(memory_format=torch.contiguous_format)
        with warnings.catch_warnings():  # FX quantisation warns that torchao is to replace it
            warnings.simplefilter("ignore")
            prepared = quantize_fx.prepare_fx(_Trunk(self.net), get_default_qconfig_mapping("x86"),
                                              (self.net.norm(calibration[0]),))
            with torch.inference_mode():
                for x in calibration:
                    prepared(self.net.norm(x))
            self.trunk = quantize_fx.convert_fx(prepared)

    def forward(self, rgb: torch.Tensor) -> torch.Tensor:
        preps = self.trunk(self.net.norm(rgb.float().contiguous()))
        return self.net._fused(preps, rgb.shape[-2:])


class Int8Model(torch.nn.Module):
    """A fine-tuned model (one network, or one per object) whose trunks run in int8 on the CPU. It answers
    as the model does (logits, ``probabilities``, ``exclusive_objects``), so the Segmenter uses it as is."""

    def __init__(self, model: OSVOSNet | ObjectNets, calibration: list[torch.Tensor],
                 engine: str | None = None) -> None:
        """``engine``: PyTorch's quantised engine (default: ``int8_engine()``); the benchmark compares them."""
        super().__init__()
        engine = engine or int8_engine()
        if engine is None:
            raise RuntimeError("precision int8 needs an x86-64 CPU (PyTorch's onednn or x86 engine); "
                               "use precision auto or fp32 on this machine")
        torch.backends.quantized.engine = engine  # the kernels are packed for it when each net converts
        nets = list(model.nets) if isinstance(model, ObjectNets) else [model]
        self.nets = torch.nn.ModuleList(_Int8Net(net, calibration) for net in nets)
        self.exclusive_objects = getattr(model, "exclusive_objects", True)
        self._probabilities = model.probabilities
        self.num_objects = model.num_objects

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


def quantize_for_cpu(model: OSVOSNet | ObjectNets, process_size: int, engine: str | None = None) -> Int8Model:
    """``model`` with its convolutions in int8, calibrated on the demo frames at ``process_size``."""
    quantised = Int8Model(model, list(_demo_frames(process_size)), engine)
    log.info("inference in int8 (%d network%s)", len(quantised.nets), "s" if len(quantised.nets) > 1 else "")
    return quantised
