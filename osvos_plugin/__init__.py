"""osvos-plugin: One-Shot Video Object Segmentation as a matte node.

The small API that the CLI and host adapters use::

    from osvos_plugin import RenderJob, Keyframe, render
    summary = render(RenderJob("plate.####.exr", "matte.####.exr", [Keyframe("roto.png", 1001)]))

and, for code that holds frames in memory::

    from osvos_plugin import load_parent, finetune, FinetuneConfig, self_train, Segmenter, InferenceConfig
    model = finetune(load_parent(), [(rgb, mask)], FinetuneConfig())
    model = self_train(model, [(rgb, mask)], later_frames)  # optional: learn from the shot's own frames
    matte = Segmenter(model, InferenceConfig(soft=True)).predict(rgb)
"""

from osvos_contract.manifest import load_manifest

from .errors import Cancelled, InputError, ModelError, OSVOSError, OutputError, UsageError
from .finetune import FinetuneConfig, finetune
from .inference import InferenceConfig, Segmenter
from .jobs import Progress
from .models import default_parent_path, load_parent
from .network import HEDContourNet, OSVOSNet
from .pipeline import Keyframe, RenderJob, RenderSummary, render
from .selftrain import SelfTrainConfig, self_train
from .settings import RenderSettings
from .weights import WeightsError, load_checkpoint, save_checkpoint

__version__ = "0.1.0"

__all__ = [
    "Cancelled",
    "FinetuneConfig",
    "HEDContourNet",
    "InferenceConfig",
    "InputError",
    "Keyframe",
    "ModelError",
    "OSVOSError",
    "OSVOSNet",
    "OutputError",
    "Progress",
    "RenderJob",
    "RenderSettings",
    "RenderSummary",
    "Segmenter",
    "SelfTrainConfig",
    "UsageError",
    "WeightsError",
    "default_parent_path",
    "finetune",
    "load_checkpoint",
    "load_manifest",
    "load_parent",
    "render",
    "save_checkpoint",
    "self_train",
]
