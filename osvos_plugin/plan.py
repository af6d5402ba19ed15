"""What a render will do, decided before it does anything: the job a host describes, and its plan.

``plan_render`` looks at the job, its settings and what is on disk (the plate's frames, the mattes
already written) and decides once: which frames to render and which to keep (resume), on which frames
the keyframes were painted (the mask-frame rule), which frames to check and decode, and which frames
self-training learns from. It writes nothing, so a host or a test can ask what a render would do.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .io import PlateError, format_frame_path, resolve_sequence
from .selftrain import frames_to_learn_from
from .settings import RenderSettings


@dataclass
class Keyframe:
    """A painted mask and the Source frame it was painted on (None: the mask frame, else the range's first)."""

    mask: str | os.PathLike
    frame: int | None = None


@dataclass
class RenderJob:
    source: str  # plate pattern: plate.####.exr, plate.%04d.exr, plate.@.exr, plate.$F4.exr, or one file
    output: str  # matte pattern, same syntax
    keyframes: list[Keyframe] = field(default_factory=list)
    params: dict[str, Any] = field(default_factory=dict)  # plugin.json parameter names -> values
    parent: str | os.PathLike | None = None  # parent network; None: the shipped one
    load_model: str | os.PathLike | None = None  # an already fine-tuned model: skip fine-tuning
    save_model: str | os.PathLike | None = None  # keep the fine-tuned model for other processes
    overwrite: bool = False
    resize_mask: bool = False


Frame = tuple[int, Path]  # (frame number, plate file)


@dataclass(frozen=True)
class RenderPlan:
    settings: RenderSettings
    frames: list[Frame]  # the range, in order
    outputs: list[Path]  # the matte of each frame of the range
    todo: list[int]  # indices into ``frames`` to render; the others are kept (resume)
    keyframes: list[tuple[str | os.PathLike, int]]  # (mask, frame painted on); empty without fine-tuning
    self_train_frames: list[Frame]  # spread over the whole shot on disk, maybe outside the range
    need_model: bool  # something to render, or a model to save
    fine_tune: bool  # a model is needed and none is loaded

    @property
    def to_render(self) -> list[Frame]:
        return [self.frames[i] for i in self.todo]

    @property
    def to_check(self) -> list[Frame]:
        """Every frame whose header is checked: the range first (so indices hold), then self-training's."""
        in_range = {f for f, _ in self.frames}
        return self.frames + [fp for fp in self.self_train_frames if fp[0] not in in_range]

    @property
    def to_decode(self) -> list[int]:
        """Frames decoded by the check and kept for what follows: those to render and self-training's."""
        return [f for f, _ in self.to_render + self.self_train_frames]

    @property
    def pixel_frames(self) -> set[int]:
        """Frames whose pixels are checked too: every frame that will be read."""
        return set(self.to_decode) | {f for _, f in self.keyframes}


def check_output_pattern(job: RenderJob, frames: list[int]) -> list[Path]:
    outs = [format_frame_path(job.output, f) for f in frames]
    if len(set(outs)) != len(outs):
        raise PlateError(
            f"output {job.output!r} has no frame number token (#### or %04d) but {len(frames)} frames are rendered."
        )
    sources = {str(format_frame_path(job.source, f)) for f in frames}
    clash = [str(o) for o in outs if str(o) in sources]
    if clash:
        raise PlateError(f"output {clash[0]} is a Source frame: refusing to overwrite the plate.")
    return outs


def plan_render(job: RenderJob, settings: RenderSettings) -> RenderPlan:
    frames = resolve_sequence(job.source, settings.frames or None)
    outputs = check_output_pattern(job, [f for f, _ in frames])
    todo = [i for i, out in enumerate(outputs) if job.overwrite or not out.exists()]
    need_model = bool(todo) or job.save_model is not None
    fine_tune = need_model and job.load_model is None
    keyframes = []
    if fine_tune:
        # The mask_frame parameter places the first keyframe; a keyframe without a frame is the range's first.
        first = frames[0][0]
        for i, kf in enumerate(job.keyframes):
            default = settings.mask_frame if i == 0 and settings.mask_frame is not None else first
            keyframes.append((kf.mask, default if kf.frame is None else kf.frame))
    return RenderPlan(settings, frames, outputs, todo, keyframes,
                      _self_train_frames(job, settings, frames, {f for _, f in keyframes}), need_model, fine_tune)


def _self_train_frames(job: RenderJob, settings: RenderSettings, frames: list[Frame],
                       painted: set[int]) -> list[Frame]:
    """Self-training's frames, picked from every frame on disk whatever the range (see selftrain)."""
    if not painted or settings.self_train_iterations <= 0:
        return []
    shot = frames
    if settings.frames:
        try:
            shot = resolve_sequence(job.source)
        except PlateError:  # a single file, or no frames on disk beyond the range: the range is the shot
            shot = frames
    return frames_to_learn_from(shot, [f for f, _ in shot], settings.self_train_frames, painted)
