"""The OSVOS network (Caelles et al., CVPR 2017) and the HED contour network that shares its trunk.

Both are fully convolutional VGG16 trunks (conv1 to conv5, no FC, ceil-mode pooling) with side outputs
upsampled bilinearly to the exact input size. The models take RGB in [0, 1] and normalise inside
``forward``, so every caller (engine, CLI, TorchScript export) feeds them the same thing and the input
convention of the weights travels with the model.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

# Output channels of each conv, one list per stage (conv1_x ... conv5_x); a pool precedes stages 2-5.
VGG16_CFG: list[list[int]] = [[64, 64], [128, 128], [256, 256, 256], [512, 512, 512], [512, 512, 512]]

# Stages whose last conv feeds an OSVOS side output: conv2_2, conv3_3, conv4_3, conv5_3.
OSVOS_SIDE_STAGES = (1, 2, 3, 4)
SIDE_CHANNELS = 16

# Input conventions: how RGB in [0, 1] becomes what the trunk's first conv was trained on.
CAFFE_BGR_MEAN = (104.00699, 116.66877, 122.67892)  # HED / Caffe VGG16: BGR, 0-255, minus mean
IMAGENET_MEAN = (0.485, 0.456, 0.406)  # torchvision VGG16: RGB, 0-1, standardised
IMAGENET_STD = (0.229, 0.224, 0.225)
INPUT_CONVENTIONS = ("caffe_bgr", "imagenet_rgb")


class InputNorm(nn.Module):
    """RGB in [0, 1] -> the trunk's input convention (channel order, scale, mean, std)."""

    def __init__(self, convention: str = "caffe_bgr") -> None:
        super().__init__()
        if convention not in INPUT_CONVENTIONS:
            raise ValueError(f"unknown input convention {convention!r}; expected one of {INPUT_CONVENTIONS}")
        self.convention = convention
        if convention == "caffe_bgr":
            scale = torch.full((3,), 255.0)
            mean = torch.tensor(CAFFE_BGR_MEAN[::-1])  # stored in RGB order, applied before the flip
            std = torch.ones(3)
        else:
            scale = torch.ones(3)
            mean = torch.tensor(IMAGENET_MEAN)
            std = torch.tensor(IMAGENET_STD)
        # x * a + b with a = scale / std and b = -mean / std, per RGB channel.
        self.register_buffer("a", (scale / std).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("b", (-mean / std).view(1, 3, 1, 1), persistent=False)
        self.flip = convention == "caffe_bgr"

    def forward(self, rgb: torch.Tensor) -> torch.Tensor:
        x = rgb * self.a.to(rgb.dtype) + self.b.to(rgb.dtype)
        return x.flip(1) if self.flip else x


def make_vgg16_stages(cfg: list[list[int]] = VGG16_CFG) -> nn.ModuleList:
    """VGG16 conv1-conv5 as one ``nn.Sequential`` per stage; stages 2-5 start with a ceil-mode 2x2 pool."""
    stages = nn.ModuleList()
    in_ch = 3
    for i, widths in enumerate(cfg):
        layers: list[nn.Module] = [] if i == 0 else [nn.MaxPool2d(2, 2, ceil_mode=True)]
        for out_ch in widths:
            layers += [nn.Conv2d(in_ch, out_ch, 3, padding=1), nn.ReLU(inplace=True)]
            in_ch = out_ch
        stages.append(nn.Sequential(*layers))
    return stages


def conv_names(stage: int) -> list[str]:
    """Names (relative to ``stages``) of the convs of one stage, e.g. ``['1.1', '1.3']`` for stage 2."""
    first = 0 if stage == 0 else 1
    return [f"{stage}.{first + 2 * k}" for k in range(len(VGG16_CFG[stage]))]


def object_probabilities(logits: torch.Tensor) -> torch.Tensor:
    """Each object's probability from the network's logits (N, K, H, W): a softmax over the K objects and a
    background whose logit is 0, so objects compete for a pixel; for one object exactly the sigmoid."""
    if logits.shape[1] == 1:
        return torch.sigmoid(logits)
    zero = torch.zeros_like(logits[:, :1])
    return torch.softmax(torch.cat([zero, logits], dim=1), dim=1)[:, 1:]


def _upsample(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False)


class OSVOSNet(nn.Module):
    """OSVOS: VGG16 trunk, four 16-channel side outputs fused by a 1x1 conv, deep supervision heads.

    With several object scores (a shared trunk, ``with_objects``) the objects and a background compete
    for each pixel (``exclusive_objects``); ``ObjectNets`` is the paper's one-network-per-object instead.

    The fusion (1x1 conv over the concatenated upsampled 16-channel maps) is computed as the sum of each
    side's 1-channel projection upsampled on its own. Bilinear interpolation is linear and its weights sum
    to one, so this is exactly the paper's fusion, while upsampling 4 channels instead of 64.
    """

    def __init__(self, input_convention: str = "caffe_bgr", num_objects: int = 1) -> None:
        super().__init__()
        if num_objects < 1:
            raise ValueError(f"num_objects must be at least 1, got {num_objects}")
        self.norm = InputNorm(input_convention)
        self.stages = make_vgg16_stages()
        side_in = [VGG16_CFG[s][-1] for s in OSVOS_SIDE_STAGES]
        self.side_prep = nn.ModuleList(nn.Conv2d(c, SIDE_CHANNELS, 3, padding=1) for c in side_in)
        # One score per object, sharing the trunk and the side features, so several objects cost one
        # network; the objects and a background compete for each pixel (``object_probabilities``). A parent
        # has one score (generic foreground).
        self.side_score = nn.ModuleList(nn.Conv2d(SIDE_CHANNELS, num_objects, 1) for _ in side_in)
        self.fuse = nn.Conv2d(SIDE_CHANNELS * len(side_in), num_objects, 1)
        self.reset_heads()

    exclusive_objects = True
    # The largest extent (``augment.taught_extent``) at which fine-tuning showed the object: set by ``finetune``
    # and kept in a fine-tuned checkpoint's record; 0 for a parent, or a model that does not record it.
    taught_extent = 0.0

    @property
    def num_objects(self) -> int:
        return self.fuse.out_channels

    def probabilities(self, logits: torch.Tensor) -> torch.Tensor:
        """The objects' probabilities from this network's logits (``object_probabilities``)."""
        return object_probabilities(logits)

    def with_objects(self, n: int) -> OSVOSNet:
        """A copy with ``n`` object scores, each starting as this network's first (a parent's generic
        foreground), so every object's fine-tuning starts where a single object's does."""
        if n == self.num_objects:
            return copy.deepcopy(self)
        out = OSVOSNet(self.input_convention, n)
        state = {k: v for k, v in self.state_dict().items() if not k.startswith(("side_score.", "fuse."))}
        out.load_state_dict(state, strict=False)
        with torch.no_grad():
            for src, dst in zip([*self.side_score, self.fuse], [*out.side_score, out.fuse], strict=True):
                dst.weight.copy_(src.weight[:1].expand_as(dst.weight))
                dst.bias.copy_(src.bias[:1].expand_as(dst.bias))
        return out.to(next(self.parameters()).device)

    @property
    def input_convention(self) -> str:
        return self.norm.convention

    def reset_heads(self) -> None:
        """Initialise the side and fusion layers (the trunk comes from pretrained weights)."""
        for m in [*self.side_prep, *self.side_score]:
            nn.init.normal_(m.weight, std=0.01)
            nn.init.zeros_(m.bias)
        nn.init.constant_(self.fuse.weight, 1.0 / self.fuse.in_channels)
        nn.init.zeros_(self.fuse.bias)

    def _side_features(self, rgb: torch.Tensor) -> list[torch.Tensor]:
        return self.trunk_features(self.norm(rgb))

    def trunk_features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The four side features of a normalised input: all of the network's convolutions but the fusion
        (what ``quantize.py`` runs in int8)."""
        preps = []
        for i, stage in enumerate(self.stages):
            x = stage(x)
            if i in OSVOS_SIDE_STAGES:
                preps.append(self.side_prep[OSVOS_SIDE_STAGES.index(i)](x))
        return preps

    def _fused(self, preps: list[torch.Tensor], size: tuple[int, int]) -> torch.Tensor:
        w = self.fuse.weight
        out = None
        for k, p in enumerate(preps):
            part = _upsample(F.conv2d(p, w[:, k * SIDE_CHANNELS:(k + 1) * SIDE_CHANNELS].to(p.dtype)), size)
            out = part if out is None else out + part
        return out + self.fuse.bias.to(out.dtype).view(1, -1, 1, 1)

    def forward(self, rgb: torch.Tensor) -> torch.Tensor:
        """Fused logits (N, objects, H, W) for RGB images (N, 3, H, W) in [0, 1]."""
        preps = self._side_features(rgb)
        return self._fused(preps, rgb.shape[-2:])

    def forward_with_sides(self, rgb: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Fused logits and the four deep-supervision logits, all at the input size (for training)."""
        size = rgb.shape[-2:]
        preps = self._side_features(rgb)
        sides = [_upsample(score(p), size) for score, p in zip(self.side_score, preps, strict=True)]
        return self._fused(preps, size), sides


class ObjectNets(nn.Module):
    """Several objects the paper's way: one whole OSVOS network per object, each fine-tuned on its own mask
    (per-object sigmoid losses, so each learns as a single-object fine-tune does), and every pixel given to
    the most probable object where that one is above the threshold (``exclusive_objects`` False tells
    the Segmenter to decide on the maximum, not the sum). Logits are stacked as ``OSVOSNet``'s with several
    scores, so inference, training and checkpoints treat both alike; it costs one network per object.
    """

    exclusive_objects = False
    taught_extent = 0.0  # as ``OSVOSNet.taught_extent``, for the objects together

    def __init__(self, input_convention: str = "caffe_bgr", num_objects: int = 2) -> None:
        super().__init__()
        if num_objects < 1:
            raise ValueError(f"num_objects must be at least 1, got {num_objects}")
        self.nets = nn.ModuleList(OSVOSNet(input_convention) for _ in range(num_objects))

    @classmethod
    def from_parent(cls, parent: OSVOSNet, n: int) -> ObjectNets:
        """``n`` copies of a one-score ``parent``: each object's fine-tuning starts where a single one's does."""
        if parent.num_objects != 1:
            raise ValueError(f"per-object networks start from a one-object parent, got {parent.num_objects}")
        out = cls(parent.input_convention, n)
        for net in out.nets:
            net.load_state_dict(parent.state_dict())
        return out.to(next(parent.parameters()).device)

    @property
    def num_objects(self) -> int:
        return len(self.nets)

    @property
    def input_convention(self) -> str:
        return self.nets[0].input_convention

    @property
    def norm(self) -> InputNorm:
        return self.nets[0].norm

    def probabilities(self, logits: torch.Tensor) -> torch.Tensor:
        """Each object's own probability (its network's sigmoid); objects are told apart by the Segmenter."""
        return torch.sigmoid(logits)

    def forward(self, rgb: torch.Tensor) -> torch.Tensor:
        """Logits (N, objects, H, W): each object's network's fused score."""
        return torch.cat([net(rgb) for net in self.nets], dim=1)

    def forward_with_sides(self, rgb: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        outs = [net.forward_with_sides(rgb) for net in self.nets]
        fused = torch.cat([f for f, _ in outs], dim=1)
        sides = [torch.cat(parts, dim=1) for parts in zip(*(s for _, s in outs), strict=True)]
        return fused, sides


class HEDContourNet(nn.Module):
    """HED (Xie & Tu, ICCV 2015): a 1-channel 1x1 score on every stage, upsampled and fused.

    Its trunk is OSVOS's initialisation; its contours drive boundary snapping (``snapping.py``,
    the ``boundary_snap`` node parameter).
    """

    def __init__(self, input_convention: str = "caffe_bgr") -> None:
        super().__init__()
        self.norm = InputNorm(input_convention)
        self.stages = make_vgg16_stages()
        self.dsn = nn.ModuleList(nn.Conv2d(widths[-1], 1, 1) for widths in VGG16_CFG)
        self.fuse = nn.Conv2d(len(VGG16_CFG), 1, 1)

    def forward_with_sides(self, rgb: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        size = rgb.shape[-2:]
        x = self.norm(rgb)
        sides = []
        for stage, dsn in zip(self.stages, self.dsn, strict=True):
            x = stage(x)
            sides.append(_upsample(dsn(x), size))
        return self.fuse(torch.cat(sides, 1)), sides

    def forward(self, rgb: torch.Tensor) -> torch.Tensor:
        """Fused contour logits (N, 1, H, W) for RGB images in [0, 1]."""
        return self.forward_with_sides(rgb)[0]
