"""What a render will do, decided before it does anything: the job a host describes, and its plan.

``plan_render`` looks at the job, its settings and what is on disk (the plate's frames, the mattes
already written) and decides once: which frames to render and which to keep (resume: a matte is kept
only when it reads back whole and was made by the same model and settings), on which frames the
keyframes were painted (the mask-frame rule), which frames to check and decode, and which frames
self-training learns from. It refuses outputs that are inputs. It writes nothing, so a host or a test
can ask what a render would do.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from osvos_contract.patterns import OBJECT_TOKEN, object_output, split_token, without_object_token

from . import __version__
from .device import inference_precision, resolve_device
from .errors import InputError
from .inference import GROWN_RULE
from .io import (
    PlateError,
    check_frames_exist,
    format_frame_path,
    object_names,
    painted_share,
    read_matte_metadata,
    read_plate_info,
    resolve_sequence,
)
from .models import default_parent_path
from .outputs import (
    FINGERPRINT_KEY,
    MODEL_PARAMETERS,
    Fingerprint,
    Inputs,
    file_digest,
    model_identity,
    refuse_overwriting_inputs,
)
from .selftrain import frames_to_learn_from
from .settings import RenderSettings
from .weights import WeightsError, read_checkpoint_info

log = logging.getLogger(__name__)


@dataclass
class Keyframe:
    """A painted mask and the Source frame it was painted on (None: the mask frame, else the range's first)."""

    mask: str | os.PathLike
    frame: int | None = None
    object: str | None = None  # several objects: the object painted (None: the mask itself, or its labels)


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
    train_only: bool = False  # fine-tune and save the model, write no matte (a farm's first task)
    preview: str | os.PathLike | None = None  # a folder for overlay previews (PNG per frame, an MP4)


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
    fingerprint: Fingerprint  # what made the mattes; each records it, for the frame's plate
    parent: Path | None = None  # the network fine-tuned, when fine-tuning
    stale: int = 0  # mattes on disk made by another model or other settings: rendered again
    incomplete: int = 0  # mattes on disk that do not read back whole: rendered again
    keyframe_objects: tuple[str | None, ...] = ()  # per keyframe: the object painted (None: the mask's own)
    objects: tuple[str, ...] = ()  # several objects: their names (the mattes' layers); () for one object
    keep: Path | None = None  # where the fine-tuned model is kept (keep_model)
    kept: KeptModel | None = None  # the shot's kept model, reused or continued from
    identity: dict = field(default_factory=dict)  # the model identity the mattes' fingerprint holds

    @property
    def to_render(self) -> list[Frame]:
        return [self.frames[i] for i in self.todo]

    @property
    def object_files(self) -> bool:
        """Several objects written as a file per object (PNG) rather than an EXR with a layer each."""
        return bool(self.objects) and self.settings.output_format != "exr"

    def files(self, i: int) -> list[Path]:
        """The files frame ``i``'s matte is written to: one, or one per object (``object_output``)."""
        return matte_files(self.outputs[i], self.objects, self.settings.output_format)

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
    return outs


def plan_render(job: RenderJob, settings: RenderSettings) -> RenderPlan:
    frames = resolve_sequence(job.source, settings.frames or None)
    check_frames_exist(frames)  # a range far beyond the plate fails now, not after the per-frame work below
    outputs = check_output_pattern(job, [f for f, _ in frames])
    plates = dict(frames)
    # The mask_frame parameter places the first keyframe; a keyframe without a frame is the range's first.
    keyframes, painted = [], []
    for i, kf in enumerate(job.keyframes):
        # the first keyframe's frame (and, with several objects, every keyframe given without one) is the
        # mask frame's
        first = i == 0 or (kf.object is not None and kf.frame is None)
        default = settings.mask_frame if first and settings.mask_frame is not None else frames[0][0]
        keyframes.append((kf.mask, default if kf.frame is None else kf.frame))
        painted.append(kf.object)
    parent = None if job.load_model is not None else Path(job.parent) if job.parent else default_parent_path()
    objects = _objects(job, keyframes, painted, settings)
    settings = _sized(job, settings, keyframes, plates)
    def files(out: Path) -> list[Path]:
        return matte_files(out, objects, settings.output_format)

    _refuse_overwriting_inputs(job, frames, [f for out in outputs for f in files(out)], keyframes, parent)
    identity = model_identity(
        load_model=job.load_model, parent=parent, resize_mask=job.resize_mask, objects=objects,
        recipe=settings.engine_recipe(),
        keyframes=[(m, f, plates.get(f) or format_frame_path(job.source, f)) for m, f in keyframes])
    keep = kept_model_path(without_object_token(job.output)) if job.load_model is None and settings.keep_model else None
    kept = _kept_model(keep, settings, job, identity, keyframes, painted) if keep is not None else None
    if kept is not None:  # the mattes record how their model was made: reused as it was, or continued
        identity = kept.identity
    params = settings.as_params()
    if params.get("precision") == "auto":  # what auto runs as on this machine makes the mattes' numbers
        params["precision"] = f"auto ({inference_precision('auto', resolve_device(settings.device))})"
    if params.get("grown_object_rescale"):  # which rule it runs, as the mattes' numbers depend on it
        params["grown_object_rescale"] = f"on ({GROWN_RULE})"
    fingerprint = Fingerprint.of(__version__, params, identity)
    todo, stale, incomplete = ([], 0, 0) if job.train_only else _resume(job, frames, outputs, fingerprint, files)
    if kept is not None and kept.new_frames:  # a correction: the frames nearest it first, to be seen first
        todo.sort(key=lambda i: (min(abs(frames[i][0] - f) for f in kept.new_frames), frames[i][0]))
    need_model = bool(todo) or job.save_model is not None
    fine_tune = need_model and job.load_model is None
    keyframes = keyframes if fine_tune else []
    return RenderPlan(settings, frames, outputs, todo, keyframes,
                      _self_train_frames(job, settings, frames, {f for _, f in keyframes}), need_model, fine_tune,
                      fingerprint, parent if fine_tune else None, stale, incomplete,
                      tuple(painted) if fine_tune else (), tuple(objects), keep, kept, identity)


def _sized(job: RenderJob, settings: RenderSettings, keyframes: list[tuple[str | os.PathLike, int]],
           plates: dict[int, Path]) -> RenderSettings:
    """The settings with the processing size the object asks for (Large Object Scale): decided on the first
    keyframe's frame, so that a correction painted later keeps the kept model's size, and capped at that
    frame's plate's long side (overscan included: what the network sees). A loaded model runs at the size
    its record says it was fine-tuned at (a farm's render tasks, after its training task)."""
    if settings.large_object_scale <= 1.0:
        return settings
    if job.load_model is not None:
        try:
            made_at = read_checkpoint_info(job.load_model).provenance.get("process_size")
        except WeightsError:  # the render's own check of the file says why
            made_at = None
        return settings.made_at(made_at)
    if not keyframes:
        return settings
    first = keyframes[0][1]
    share = painted_share([m for m, f in keyframes if f == first])
    try:
        long_side = max(read_plate_info(plates.get(first) or format_frame_path(job.source, first)).canvas_window[2:])
    except PlateError:  # the plate check names the frame and says why
        long_side = None
    sized = settings.for_object(share, long_side)
    if share is not None:
        log.info("the object painted on frame %d covers %.1f%% of the frame: the network runs at %d px",
                 first, 100 * share, sized.process_size)
    return sized


def kept_model_path(output: str | os.PathLike) -> Path:
    """Where a render keeps its fine-tuned model: ``<matte folder>/.osvos/<matte name>.model.safetensors``."""
    token = split_token(output)
    name = (token.before.rstrip("._-") if token else Path(output).stem) or "matte"
    return Path(output).parent / ".osvos" / f"{name}.model.safetensors"


def recipe(settings: RenderSettings, resize_mask: bool) -> dict:
    """What fine-tuning did besides the keyframes: a kept model is reused or continued only under the same."""
    return {**{k: getattr(settings, k) for k in MODEL_PARAMETERS if k != "mask_frame"},
            "process_size": settings.process_size, "resize_mask": bool(resize_mask),
            "engine": settings.engine_recipe()}


@dataclass(frozen=True)
class KeptModel:
    """The shot's kept model, and what this render does with it."""

    path: Path
    steps: int  # 0: reused as it is (same keyframes); else fine-tuned this many steps on all keyframes
    identity: dict  # the model identity its mattes record
    note: str  # for the summary line
    new_frames: tuple[int, ...] = ()  # the frames of the keyframes it did not have (a correction's)


def _kept_model(keep: Path, settings: RenderSettings, job: RenderJob, identity: dict,
                keyframes: list[tuple[str | os.PathLike, int]], painted: list[str | None]) -> KeptModel | None:
    """Reuse the kept model when it was made from the same parent, recipe and keyframes; continue from it
    when this render's keyframes are those plus new ones (a correction); else None (fine-tune from the
    parent, and keep the new model in its place). An unreadable kept model is a warning, and replaced."""
    if not keep.is_file():
        return None
    try:
        record = read_checkpoint_info(keep).provenance
    except WeightsError as e:
        log.warning("the kept model %s cannot be used (%s); fine-tuning from the parent, it will be replaced",
                    keep, e)
        return None
    mine = {(file_digest(m), int(f), o) for (m, f), o in zip(keyframes, painted, strict=True)}
    theirs = {(d, int(f), o) for d, f, o in record.get("keyframe_digests", [])}
    why = ("another parent" if record.get("parent_digest") != identity.get("parent")
           else "other fine-tuning settings" if record.get("recipe") != recipe(settings, job.resize_mask)
           else "other objects" if record.get("identity", {}).get("objects", []) != identity.get("objects", [])
           else "other keyframes" if not theirs or not theirs <= mine else "")
    if why:
        log.info("the kept model %s was made with %s: fine-tuning from the parent", keep, why)
        return None
    if theirs == mine:
        return KeptModel(keep, 0, record["identity"], "the shot's kept model, reused")
    n = settings.continue_iterations
    return KeptModel(keep, n, {**identity, "continued": {"from": record["identity"], "steps": n}},
                     f"continued from the shot's kept model with {len(mine - theirs)} new keyframe(s), {n} steps",
                     tuple(sorted({f for _, f, _ in mine - theirs})))


def _objects(job: RenderJob, keyframes: list[tuple[str | os.PathLike, int]], painted: list[str | None],
             settings: RenderSettings) -> list[str]:
    """The objects of the render ([] for one): from the keyframes, or the loaded model's record; what
    several objects cannot do yet (and ``{object}`` outputs without them) is refused here, before anything is
    read or learnt."""
    if job.load_model is not None:
        try:  # a render has read this header already (its cheap checks); a plan alone may not have the file
            objects = list(read_checkpoint_info(job.load_model).provenance.get("objects") or [])
        except WeightsError:
            objects = []
    else:
        objects = object_names([(m, f, name) for (m, f), name in zip(keyframes, painted, strict=True)])
    if OBJECT_TOKEN in str(job.output) and (not objects or settings.output_format == "exr"):
        raise InputError(
            f"output {job.output}: {OBJECT_TOKEN} names a file per object, for several objects written as PNG; "
            + ("this render has one object: take {object} out of the output." if not objects else
               "an EXR holds every object as a layer: take {object} out, or use --output-format png8 or png16."))
    if len(objects) > settings.max_objects:
        raise InputError(f"{len(objects)} objects ({', '.join(objects[:12])}{', ...' if len(objects) > 12 else ''}) "
                         f"but Max Objects is {settings.max_objects}: a palette mask with this many indices is "
                         "probably not a label image; check the masks, or raise --max-objects.")
    if objects:
        if settings.self_train_iterations and job.load_model is None:
            raise InputError("self-training learns one object; set --self-train-iterations 0 for several objects.")
    return objects


def _refuse_overwriting_inputs(job: RenderJob, frames: list[Frame], outputs: list[Path],
                               keyframes: list[tuple[str | os.PathLike, int]], parent: Path | None) -> None:
    """Outputs are compared with inputs as files, not as spellings (``in/../in/``, symlinked folders)."""
    inputs = Inputs()
    inputs.add("mask", [m for m, _ in keyframes])
    inputs.add("model", [p for p in (parent, job.load_model) if p is not None])
    # an output that does not exist cannot be a hard link to a plate: the plates' inodes only then
    inputs.add("plate", [p for _, p in frames], stat=any(o.exists() for o in outputs))
    inputs.add("plate", [format_frame_path(job.source, f) for _, f in keyframes])
    refuse_overwriting_inputs(inputs, [("matte", o) for o in outputs])
    if job.save_model is not None:
        inputs.add("matte", outputs, stat=False)
        refuse_overwriting_inputs(inputs, [("fine-tuned model", job.save_model)])


def matte_files(out: Path, objects: Sequence[str], output_format: str) -> list[Path]:
    """The files of one frame's matte ``out``: itself, or one per object when several objects go to PNG."""
    if objects and output_format != "exr":
        return [object_output(out, name) for name in objects]
    return [out]


def _resume(job: RenderJob, frames: list[Frame], outputs: list[Path], fingerprint: Fingerprint,
            files: Callable[[Path], list[Path]] = lambda out: [out]) -> tuple[list[int], int, int]:
    """(indices to render, how many of them are on disk but stale, how many on disk but not whole). A frame
    written as a file per object is kept only when every object's file is whole and current."""
    todo, stale, incomplete = [], 0, 0
    for i, out in enumerate(outputs):
        paths = files(out)
        if job.overwrite or not all(p.exists() for p in paths):
            todo.append(i)
            continue
        metas = [read_matte_metadata(p) for p in paths]
        if any(meta is None for meta in metas):
            incomplete += 1
            todo.append(i)
        elif any(meta.get(FINGERPRINT_KEY) != fingerprint.for_frame(frames[i][1]) for meta in metas):
            stale += 1
            todo.append(i)
    return todo, stale, incomplete


def _self_train_frames(job: RenderJob, settings: RenderSettings, frames: list[Frame],
                       painted: set[int]) -> list[Frame]:
    """Self-training's frames, picked from every frame on disk whatever the range (see selftrain)."""
    if not painted or settings.self_train_iterations <= 0:
        return []
    shot = frames
    if settings.frames:
        try:
            shot = resolve_sequence(job.source, warn_gaps=False)
        except PlateError:  # a single file, or no frames on disk beyond the range: the range is the shot
            shot = frames
    return frames_to_learn_from(shot, [f for f, _ in shot], settings.self_train_frames, painted)
