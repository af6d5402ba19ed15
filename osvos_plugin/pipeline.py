"""The one small API where engine, plate I/O and hosts meet: a render job in, a matte sequence out.

``osvos-render`` and every host adapter describe what to do as a ``RenderJob`` and call ``render``.
Everything that can be wrong with the inputs is found before fine-tuning starts; frames already
written are kept (resume) unless ``overwrite``; each matte is written atomically.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from .finetune import FinetuneConfig, finetune
from .inference import InferenceConfig, Segmenter
from .io import (
    AsyncWriter,
    CheckStopped,
    MaskError,
    PlateError,
    PrefetchReader,
    PreparedPlates,
    format_frame_path,
    io_thread_budget,
    read_mask,
    read_plate,
    resolve_sequence,
    validate_plates,
    write_matte,
)
from .manifest import load_manifest
from .models import default_parent_path
from .network import OSVOSNet
from .selftrain import SelfTrainConfig, pick_frames, self_train
from .training import CancelFlag, Cancelled, Progress, ProgressFn, is_cancelled
from .weights import load_checkpoint, save_checkpoint

log = logging.getLogger(__name__)


@dataclass
class Keyframe:
    """A painted mask and the Source frame it was painted on (None: the first frame of the range)."""

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


@dataclass
class RenderSummary:
    frames: int  # in the range
    written: int
    skipped: int  # already on disk (resume)
    finetune_s: float
    infer_s: float
    total_s: float
    outputs: list[Path] = field(default_factory=list)

    @property
    def fps(self) -> float:
        return self.written / self.infer_s if self.infer_s > 0 else 0.0

    def line(self) -> str:
        return (
            f"{self.written} frames written, {self.skipped} kept, in {self.total_s:.1f} s "
            f"(fine-tune {self.finetune_s:.1f} s, inference {self.infer_s:.1f} s, {self.fps:.2f} fps)"
        )


def _check_output_pattern(job: RenderJob, frames: list[int]) -> list[Path]:
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


def load_keyframes(
    job: RenderJob, frames: list[tuple[int, Path]], colorspace: str
) -> list[tuple[np.ndarray, np.ndarray]]:
    """(rgb, mask) pairs for fine-tuning, every problem reported in one message."""
    if not job.keyframes:
        raise MaskError("no mask given: paint the object on one frame and pass it with --mask.")
    first_frame, first_path = frames[0]
    problems, pairs = [], []
    for kf in job.keyframes:
        number = first_frame if kf.frame is None else kf.frame
        path = dict(frames).get(number) or format_frame_path(job.source, number)
        try:
            plate = read_plate(path, frame=number, colorspace=colorspace)
            mask = read_mask(kf.mask, expected_size=(plate.info.width, plate.info.height), resize=job.resize_mask)
        except (PlateError, MaskError) as e:
            problems.append(str(e))
            continue
        pairs.append((plate.rgb, mask))
    if problems:
        raise MaskError("\n".join(problems))
    return pairs


def render(
    job: RenderJob,
    progress: ProgressFn | None = None,
    cancel: CancelFlag = None,
) -> RenderSummary:
    """Fine-tune on the keyframes (or load a fine-tuned model), then write a matte for every frame."""
    t0 = time.monotonic()
    p = load_manifest().resolve(job.params)
    frames = resolve_sequence(job.source, p["frames"] or None)
    outputs = _check_output_pattern(job, [f for f, _ in frames])
    todo = [i for i, out in enumerate(outputs) if job.overwrite or not out.exists()]
    if job.keyframes and p["mask_frame"] is not None and job.keyframes[0].frame is None:
        # the mask_frame parameter places the first keyframe; a copy, so the caller's job is left as it was
        first = replace(job.keyframes[0], frame=p["mask_frame"])
        job = replace(job, keyframes=[first, *job.keyframes[1:]])
    need_model = bool(todo) or job.save_model is not None
    keyframe_numbers = (
        {frames[0][0] if kf.frame is None else kf.frame for kf in job.keyframes}
        if need_model and job.load_model is None else set()
    )
    to_render = [frames[i] for i in todo]
    pseudo_frames = _self_train_frames(job, p, frames, keyframe_numbers)
    in_range = {f for f, _ in frames}
    to_check = frames + [fp for fp in pseudo_frames if fp[0] not in in_range]  # the range first: indices hold

    # Every frame's header is checked, and the pixels of every frame that will be read (NaN/Inf,
    # truncation), before fine-tuning starts. The check decodes those frames anyway, so it hands them,
    # shrunk and colour-converted, to ``prepared``, and inference does not decode the shot a second time.
    with PreparedPlates(
        [f for f, _ in to_render + pseudo_frames], colorspace=p["input_colorspace"],
        max_size=p["process_size"] or None,
    ) as prepared:
        t_check = time.monotonic()

        def checked(done: int, total: int) -> None:
            if progress is not None:
                progress(Progress("check", done, total, None, time.monotonic() - t_check))

        try:
            infos = validate_plates(
                to_check, pixel_frames={f for f, _ in to_render + pseudo_frames} | keyframe_numbers,
                prepare=prepared.add,
                on_checked=checked, should_stop=lambda: is_cancelled(cancel),
            )
        except CheckStopped as e:
            raise Cancelled(str(e)) from None
        log.info("%d frames in range, %d to render (%d decoded ahead)", len(frames), len(todo), len(prepared))

        t_ft = time.monotonic()
        # self-training reads its frames from ``prepared`` too; those still to render stay there for inference
        rendered = {f for f, _ in to_render}
        pseudo = [(f, prepared.read(path, f, keep=f in rendered).rgb) for f, path in pseudo_frames]
        model = _model_for(job, p, frames, pseudo, need=need_model, progress=progress, cancel=cancel)
        finetune_s = time.monotonic() - t_ft
        written: list[Path] = []
        t_inf = time.monotonic()
        if todo:
            segmenter = Segmenter(model, InferenceConfig(
                process_size=p["process_size"], batch_size=p["batch_size"], soft=p["soft_matte"],
                threshold=p["threshold"], flip_average=p["flip_average"], device=p["device"],
                precision=p["precision"],
            ))
            # Frames not kept by ``prepared`` are read from the plates, shrunk to the processing size
            # before their colour conversion; the matte still comes out at the plate's size. On a CPU the
            # network keeps every core busy, so reads and writes run on one thread each (see
            # ``io_thread_budget``): less memory, the same time.
            on_cpu = segmenter.device.type == "cpu"
            plate_size = (infos[todo[0]].height, infos[todo[0]].width)
            by_frame = {frames[i][0]: (outputs[i], infos[i]) for i in todo}
            with io_thread_budget(1 if on_cpu else None), AsyncWriter() as writer, PrefetchReader(
                to_render, prepared.read, workers=1 if on_cpu else 2
            ) as reader:
                # The plate itself is the stream's key: the rgba writer needs its pixels, and at most one
                # batch of plates is alive at a time.
                for plate, matte in segmenter.stream(((pl, pl.rgb) for pl in reader), total=len(todo),
                                                     progress=progress, cancel=cancel, out_size=plate_size):
                    out, info = by_frame[plate.info.frame]
                    rgba_source = plate if p["output_format"] == "rgba" else None  # don't queue plates needlessly
                    writer.submit(write_matte, out, matte, info, p["output_format"], rgba_source)
                    written.append(out)
        infer_s = time.monotonic() - t_inf
    return RenderSummary(len(frames), len(written), len(frames) - len(todo), finetune_s, infer_s,
                         time.monotonic() - t0, written)


def _self_train_frames(
    job: RenderJob, p: dict, frames: list[tuple[int, Path]], keyframe_numbers: set[int]
) -> list[tuple[int, Path]]:
    """The frames whose pseudo-labels self-training learns from: spread over the whole shot on disk,
    whatever the frame range, so that every render of a shot (a range, a farm's fine-tune-once step, a
    resume) trains the same model."""
    if not keyframe_numbers or p["self_train_iterations"] <= 0:
        return []
    shot = frames
    if p["frames"]:
        try:
            shot = resolve_sequence(job.source)
        except PlateError:  # a single file, or no frames on disk beyond the range: the range is the shot
            shot = frames
    painted = [i for i, (f, _) in enumerate(shot) if f in keyframe_numbers]
    return [shot[i] for i in pick_frames(p["self_train_frames"], len(shot), exclude=painted)]


def _model_for(
    job: RenderJob, p: dict, frames: list[tuple[int, Path]], pseudo: list[tuple[int, np.ndarray]], need: bool,
    progress, cancel,
) -> OSVOSNet | None:
    if not need:
        return None
    if job.load_model is not None:
        model, info = load_checkpoint(job.load_model, expect="osvos-vgg16")
        log.info("using fine-tuned model %s (%s)", job.load_model, info.provenance.get("kind", "?"))
        return model
    keyframes = load_keyframes(job, frames, p["input_colorspace"])
    parent_path = Path(job.parent) if job.parent else default_parent_path()
    parent, _ = load_checkpoint(parent_path, expect="osvos-vgg16")
    cfg = FinetuneConfig(
        iterations=p["iterations"], learning_rate=p["learning_rate"], optimizer=p["optimizer"], seed=p["seed"],
        process_size=p["process_size"], device=p["device"], precision=p["precision"],
    )
    model = finetune(parent, keyframes, cfg, progress=progress, cancel=cancel)
    if pseudo:  # (frame, rgb at the processing size) for self-training
        model = self_train(model, keyframes, [rgb for _, rgb in pseudo], SelfTrainConfig(
            iterations=p["self_train_iterations"], seed=p["seed"], process_size=p["process_size"],
            device=p["device"], precision=p["precision"], flip_average=p["flip_average"],
        ), progress=progress, cancel=cancel)
    if job.save_model is not None:
        save_checkpoint(model, job.save_model, provenance={
            "kind": "fine-tuned", "parent": str(parent_path), "source": job.source,
            "keyframes": [[str(k.mask), k.frame] for k in job.keyframes],
            "iterations": cfg.iterations, "learning_rate": cfg.learning_rate, "seed": cfg.seed,
            "scales": list(cfg.augment.scales), "zoom_to": cfg.augment.zoom_to, "zoom_max": cfg.augment.zoom_max,
            "self_train_iterations": p["self_train_iterations"] if pseudo else 0,
            "self_train_frames": [f for f, _ in pseudo],
        })
        log.info("fine-tuned model saved to %s", job.save_model)
    return model
