"""osvos-plugin: One-Shot Video Object Segmentation as a matte node.

The small API that the CLI and host adapters use::

    from osvos_plugin import RenderJob, Keyframe, render
    summary = render(RenderJob("plate.####.exr", "matte.####.exr", [Keyframe("roto.png", 1001)]))

and, for code that holds frames in memory::

    from osvos_plugin import load_parent, finetune, FinetuneConfig, self_train, Segmenter, InferenceConfig
    model = finetune(load_parent(), [(rgb, mask)], FinetuneConfig())
    model = self_train(model, [(rgb, mask)], later_frames)  # optional: learn from the shot's own frames
    matte = Segmenter(model, InferenceConfig(soft=True)).predict(rgb)

Names are imported on first use, so that a command starts (and answers Ctrl-C) before torch is loaded.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS = {
    "load_manifest": "osvos_contract.manifest",
    "Cancelled": ".errors", "InputError": ".errors", "ModelError": ".errors", "OSVOSError": ".errors",
    "OutputError": ".errors", "UsageError": ".errors",
    "FinetuneConfig": ".finetune", "finetune": ".finetune",
    "InferenceConfig": ".inference", "Segmenter": ".inference",
    "Progress": ".jobs",
    "default_parent_path": ".models", "load_parent": ".models",
    "HEDContourNet": ".network", "OSVOSNet": ".network",
    "Keyframe": ".pipeline", "RenderJob": ".pipeline", "RenderSummary": ".pipeline", "render": ".pipeline",
    "SelfTrainConfig": ".selftrain", "self_train": ".selftrain",
    "RenderSettings": ".settings",
    "WeightsError": ".weights", "load_checkpoint": ".weights", "save_checkpoint": ".weights",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))


if TYPE_CHECKING:
    from osvos_contract.manifest import load_manifest  # noqa: F401

    from .errors import Cancelled, InputError, ModelError, OSVOSError, OutputError, UsageError  # noqa: F401
    from .finetune import FinetuneConfig, finetune  # noqa: F401
    from .inference import InferenceConfig, Segmenter  # noqa: F401
    from .jobs import Progress  # noqa: F401
    from .models import default_parent_path, load_parent  # noqa: F401
    from .network import HEDContourNet, OSVOSNet  # noqa: F401
    from .pipeline import Keyframe, RenderJob, RenderSummary, render  # noqa: F401
    from .selftrain import SelfTrainConfig, self_train  # noqa: F401
    from .settings import RenderSettings  # noqa: F401
    from .weights import WeightsError, load_checkpoint, save_checkpoint  # noqa: F401
