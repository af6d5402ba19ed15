"""Image geometry and conversions shared by training, inference, plate reading, parent data and the export.

One long-side rule decides every processing size in the project, so a plate shrunk by the reader, a
keyframe shrunk for fine-tuning and a frame shrunk inside the exported Nuke model all come out the same
size. ``fit_long_side`` and ``resize`` are TorchScript-compatible: the export compiles them into the model.
"""

# No ``from __future__ import annotations`` here: TorchScript reads these annotations at run time.

import numpy as np
import torch
import torch.nn.functional as F


def fit_long_side(h: int, w: int, long_side: int) -> tuple[int, int]:
    """(h, w) scaled so that the longer side is ``long_side`` (aspect kept, at least 16 px each)."""
    s = float(long_side) / float(max(h, w))
    return max(16, int(round(h * s))), max(16, int(round(w * s)))


def resize(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Area filter when shrinking (no aliasing), bilinear when enlarging."""
    h, w = x.shape[-2], x.shape[-1]
    if h == size[0] and w == size[1]:
        return x
    if size[0] < h and size[1] < w:
        return F.interpolate(x, size=[size[0], size[1]], mode="area")
    return F.interpolate(x, size=[size[0], size[1]], mode="bilinear", align_corners=False)


def to_tensor_image(rgb: np.ndarray) -> torch.Tensor:
    """(H, W, 3) float in [0, 1] -> (1, 3, H, W) float32."""
    return torch.from_numpy(np.ascontiguousarray(rgb, dtype=np.float32)).permute(2, 0, 1)[None]


def to_tensor_mask(mask: np.ndarray) -> torch.Tensor:
    """(H, W) float in [0, 1] -> (1, 1, H, W) float32."""
    return torch.from_numpy(np.ascontiguousarray(mask, dtype=np.float32))[None, None]
