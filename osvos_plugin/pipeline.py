"""The one small API where engine, plate I/O and hosts meet: a render job in, a matte sequence out.

``osvos-render`` and every host adapter describe what to do as a ``RenderJob`` and call ``render``:
cheap checks -> plan (``plan.py``) -> lock the output -> check the plates -> get the model -> write the
mattes. Everything that can be wrong with the inputs is found before fine-tuning starts; frames already
written are kept (resume) when they are whole and current, unless ``overwrite``; each matte is written
atomically, read back before it is renamed into place, and records what made it.
"""

from __future__ import annotations

import itertools
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from osvos_contract.patterns import without_object_token

from .device import resolve_device, use_threads
from .errors import InputError, ModelError, OutputError
from .finetune import finetune
from .inference import Segmenter
from .io import (
    AsyncWriter,
    PlateInfo,
    PrefetchReader,
    PreparedPlates,
    check_matte_path,
    format_frame_path,
    io_thread_budget,
    load_keyframes,
    load_object_keyframes,
    read_mask,
    validate_plates,
    write_matte,
)
from .jobs import CancelFlag, Progress, ProgressFn, is_cancelled
from .models import default_parent_path
from .network import OSVOSNet
from .outputs import FINGERPRINT_KEY, file_digest, output_lock
from .plan import Keyframe, RenderJob, RenderPlan, plan_render, recipe
from .preview import preview_name, write_movie, write_preview_frame
from .quantize import calibration_cache_path
from .review import (
    FrameStats,
    frame_ranges,
    frame_runs,
    matte_stats,
    objects_stats,
    previous_stats,
    review,
    review_lock,
    write_review,
)
from .selftrain import self_train
from .settings import RenderSettings
from .weights import FINE_TUNED, hed_weights_path, load_checkpoint, read_checkpoint_info, save_checkpoint

log = logging.getLogger(__name__)

__all__ = ["Keyframe", "RenderJob", "RenderSummary", "render"]


@dataclass
class RenderSummary:
    frames: int  # in the range
    written: int
    skipped: int  # already on disk (resume)
    finetune_s: float
    infer_s: float
    total_s: float
    outputs: list[Path] = field(default_factory=list)
    stale: int = 0  # of the written: on disk before, made by another model or other settings
    incomplete: int = 0  # of the written: on disk before, but not whole
    check: str = ""  # the frames to check ("check frames 1040-1052: ..."), "" when none is flagged
    review: Path | None = None  # the per-frame report (JSON) beside the mattes
    model_note: str = ""  # how the model came about when not from the parent alone (the kept model)
    regrown: int = 0  # of the written: segmented again smaller, the object grown past its training
    regrown_ranges: list[tuple[int, int]] = field(default_factory=list)  # those frames, as (first, last) ranges

    @property
    def fps(self) -> float:
        return self.written / self.infer_s if self.infer_s > 0 else 0.0

    def line(self) -> str:
        line = (
            f"{self.written} frame{'' if self.written == 1 else 's'} written, {self.skipped} kept, "
            f"in {self.total_s:.1f} s "
            f"(fine-tune {self.finetune_s:.1f} s{', ' + self.model_note if self.model_note else ''}, "
            f"inference {self.infer_s:.1f} s, {self.fps:.2f} fps)"
        )
        redone = [f"{n} {'was' if n == 1 else 'were'} {why}" for n, why in (
            (self.stale, "rendered with another model or other settings"),
            (self.incomplete, "incomplete or unreadable")) if n]
        line += f"; of the frames on disk, {' and '.join(redone)}: rendered again" if redone else ""
        if self.regrown:
            line += (f"; {self.regrown} frame{'' if self.regrown == 1 else 's'} ({frame_ranges(self.regrown_ranges)}) "
                     "segmented again smaller, the object larger than fine-tuning showed it")
        if self.check:
            line += f"; {self.check}" + (f" (see {self.review.name})" if self.review is not None else "")
        return line


def render(job: RenderJob, progress: ProgressFn | None = None, cancel: CancelFlag = None) -> RenderSummary:
    """Fine-tune on the keyframes (or load a fine-tuned model), then write a matte for every frame."""
    t0 = time.monotonic()
    settings = RenderSettings.resolve(job.params)
    _check_before_reading(job, settings)
    plan = plan_render(job, settings)  # reads only; refuses outputs that are inputs
    check_matte_path(plan.outputs[0], settings.output_format)
    explicit = [f for f, _ in plan.frames] if plan.settings.frames else None  # a chunk shares the shot's lock
    with output_lock(job.output, explicit):
        return _render(job, plan, t0, progress, cancel)


def _render(job: RenderJob, plan: RenderPlan, t0: float, progress: ProgressFn | None,
            cancel: CancelFlag) -> RenderSummary:
    s = plan.settings
    # The check decodes every frame that will be read anyway, so it keeps them in ``prepared``, shrunk
    # and colour-converted, and neither self-training nor inference decodes the shot a second time. Edge
    # refinement and boundary snapping need the plate at full size (the guide; the regions' colours): then
    # the network shrinks the frames itself. A Second Pass Size above the processing size keeps them that large.
    keep_size = (None if s.edge_refine or s.boundary_snap or s.process_size <= 0
                 else max(s.process_size, s.second_pass_size))
    with PreparedPlates(plan.to_decode, colorspace=s.input_colorspace, max_size=keep_size) as prepared:
        infos = _check_plates(plan, prepared, progress, cancel)
        log.info("%d frames in range, %d to render (%d decoded ahead)", len(plan.frames), len(plan.todo),
                 len(prepared))
        t_ft = time.monotonic()
        model = _model_for(job, plan, prepared, progress, cancel) if plan.need_model else None
        finetune_s = time.monotonic() - t_ft
        t_inf = time.monotonic()
        stats: list[FrameStats] = []
        preview = None if job.preview is None else (lambda frame: _preview_path(job, frame))
        written = (_write_mattes(plan, model, infos, prepared, progress, cancel, stats, preview,
                                 _model_file(job, plan)) if plan.todo else [])
        infer_s = time.monotonic() - t_inf
    if job.preview is not None and not job.train_only:
        _preview_movie(job, plan)
    rescaled = {st.frame for st in stats if st.rescaled_to}  # this render's frames (before the kept join below)
    regrown = frame_runs([f for f, _ in plan.frames], [i for i, (f, _) in enumerate(plan.frames) if f in rescaled])
    check, report = ("", None) if job.train_only else _review(job, plan, stats)
    note = plan.kept.note if plan.kept is not None and plan.fine_tune else ""
    return RenderSummary(len(plan.frames), len(written), len(plan.frames) - len(plan.todo), finetune_s, infer_s,
                         time.monotonic() - t0, written, plan.stale, plan.incomplete, check, report, note,
                         len(rescaled), regrown)


def _review(job: RenderJob, plan: RenderPlan, stats: list[FrameStats]) -> tuple[str, Path | None]:
    """The frames to check, over the whole range: a kept matte's figures come from the last report when its
    fingerprint matches, else it is read back. The report goes beside the mattes; one that cannot be written
    is a warning, not a failed render. A render of an explicit range (a farm chunk) adds its frames to the
    report's others that are still current, under a lock, so the chunks of a shot build one report."""
    todo = set(plan.todo)
    unread = 0
    explicit = bool(plan.settings.frames)
    with review_lock(job.output):
        before = previous_stats(job.output) if explicit or len(todo) < len(plan.frames) else {}
        for i, (frame, plate) in enumerate(plan.frames):
            if i not in todo:
                fingerprint = plan.fingerprint.for_frame(plate)
                if frame in before and before[frame].fingerprint == fingerprint:
                    stats.append(before[frame])
                    continue
                try:
                    mattes = [read_mask(path, allow_empty=True) for path in plan.files(i)]
                    kept = objects_stats(frame, np.stack(mattes)) if plan.object_files else matte_stats(frame,
                                                                                                        mattes[0])
                    stats.append(replace(kept, fingerprint=fingerprint))
                except (InputError, OSError, ValueError) as e:
                    log.warning("frames to check: the kept matte %s could not be read (%s)", plan.outputs[i], e)
                    unread += 1
        if explicit:
            rendered = {f for f, _ in plan.frames}
            stats = sorted(stats + [st for f, st in before.items() if f not in rendered and st.fingerprint ==
                                    plan.fingerprint.for_frame(format_frame_path(job.source, f))],
                           key=lambda st: st.frame)
        note = f"every frame of the range but {unread} kept matte(s) that could not be read" if unread else ""
        result = review(stats, note)
        try:
            path = write_review(result, job.output)
        except OutputError as e:
            log.warning("the frames-to-check report was not written: %s", e)
            path = None
    return result.sentence, path


def _check_before_reading(job: RenderJob, settings: RenderSettings) -> None:
    """What costs nothing to check is checked before the plates are read and fine-tuning starts: the
    device, the model files' headers, the contour network's weights when snapping, and that ``--save-model``
    can be written."""
    use_threads(settings.threads)
    resolve_device(settings.device)
    read_checkpoint_info(job.load_model if job.load_model is not None else job.parent or default_parent_path())
    if settings.boundary_snap:
        hed_weights_path()  # says what to install; not after minutes of fine-tuning
    if job.save_model is not None:
        folder = Path(os.path.abspath(job.save_model)).parent
        while not folder.exists() and folder != folder.parent:
            folder = folder.parent
        if not os.access(folder, os.W_OK):
            raise OutputError(f"cannot write the fine-tuned model {job.save_model}: {folder} is not writable; "
                              "choose another --save-model path.")


def _check_plates(plan: RenderPlan, prepared: PreparedPlates, progress: ProgressFn | None,
                  cancel: CancelFlag) -> list[PlateInfo]:
    """Every frame's header, and the pixels of every frame that will be read (NaN/Inf, truncation), before
    fine-tuning starts; one message lists every bad frame. A cancel stops it (``Cancelled``)."""
    t_check = time.monotonic()

    def checked(done: int, total: int) -> None:
        if progress is not None:
            progress(Progress.timed("check", done, total, time.monotonic() - t_check))

    return validate_plates(plan.to_check, pixel_frames=plan.pixel_frames, prepare=prepared.add,
                           on_checked=checked, should_stop=lambda: is_cancelled(cancel))


def _model_for(job: RenderJob, plan: RenderPlan, prepared: PreparedPlates, progress: ProgressFn | None,
               cancel: CancelFlag) -> OSVOSNet:
    """The loaded fine-tuned model, or the parent fine-tuned on the keyframes (and self-trained)."""
    if not plan.fine_tune:
        model, info = load_checkpoint(job.load_model, expect=FINE_TUNED)
        log.info("using fine-tuned model %s (%s)", job.load_model, info.provenance.get("kind", "?"))
        if model.num_objects != max(1, len(plan.objects)):
            raise ModelError(f"{job.load_model}: the model has {model.num_objects} object scores but records "
                             f"{len(plan.objects)} object names; save it again with osvos-render --save-model.")
        return model
    s = plan.settings
    if plan.kept is not None and plan.kept.steps == 0:
        model, _ = load_checkpoint(plan.kept.path, expect=FINE_TUNED)
        log.info("%s: %s", plan.kept.path, plan.kept.note)
        return model
    if plan.objects:
        keyframes = load_object_keyframes(job.source, [(m, f, o) for (m, f), o in zip(
            plan.keyframes, plan.keyframe_objects, strict=True)], list(plan.objects), dict(plan.frames),
            s.input_colorspace, job.resize_mask, overlap=s.object_overlap)
    else:
        keyframes = load_keyframes(job.source, plan.keyframes, dict(plan.frames), s.input_colorspace,
                                   job.resize_mask)
    if plan.kept is not None:  # a correction: the kept model learns the new keyframes with the old ones
        kept, _ = load_checkpoint(plan.kept.path, expect=FINE_TUNED)
        log.info("%s: %s", plan.kept.path, plan.kept.note)
        model = finetune(kept, keyframes, replace(s.finetune(), iterations=plan.kept.steps), progress=progress,
                         cancel=cancel)
        _keep(job, plan, model)
        return model
    parent, _ = load_checkpoint(plan.parent, expect="osvos-vgg16")
    model = finetune(parent, keyframes, s.finetune(), progress=progress, cancel=cancel)
    if plan.self_train_frames:
        # read from ``prepared``; the frames still to render stay there for inference
        rendered = {f for f, _ in plan.to_render}
        later = [prepared.read(path, f, keep=f in rendered).rgb for f, path in plan.self_train_frames]
        model = self_train(model, keyframes, later, s.self_train(), progress=progress, cancel=cancel)
    _keep(job, plan, model)
    return model


def _keep(job: RenderJob, plan: RenderPlan, model: OSVOSNet) -> None:
    """Save the fine-tuned model where the render keeps it (keep_model) and where ``--save-model`` asks, with
    what a later render needs to reuse or continue from it. Keeping is a convenience: a failure to keep is
    a warning; a failure to save where asked is an error."""
    s = plan.settings
    record = s.provenance(str(plan.parent), job.source, [[str(m), f] for m, f in plan.keyframes],
                          [f for f, _ in plan.self_train_frames])
    if plan.objects:
        record["objects"] = list(plan.objects)
    record.update(
        parent_digest=plan.identity.get("parent", ""), recipe=recipe(s, job.resize_mask), identity=plan.identity,
        taught_extent=float(getattr(model, "taught_extent", 0.0)),
        keyframe_digests=[[file_digest(m), int(f), o] for (m, f), o in zip(
            plan.keyframes, plan.keyframe_objects, strict=True)])
    if plan.keep is not None:
        try:
            save_checkpoint(model, plan.keep, provenance=record)
        except OutputError as e:
            log.warning("the fine-tuned model was not kept (%s); a correction will fine-tune from the parent", e)
    if job.save_model is not None:
        save_checkpoint(model, job.save_model, provenance=record)
        log.info("fine-tuned model saved to %s", job.save_model)


def _preview_path(job: RenderJob, frame: int) -> Path:
    return Path(job.preview) / f"{preview_name(without_object_token(job.output))}.{frame:04d}.png"


def _preview_movie(job: RenderJob, plan: RenderPlan) -> None:
    """The range's previews as one MP4 beside them (those of kept frames too, where an earlier render
    wrote them)."""
    pngs = [p for p in (_preview_path(job, f) for f, _ in plan.frames) if p.is_file()]
    movie = write_movie(pngs, Path(job.preview) / f"{preview_name(without_object_token(job.output))}.mp4")
    log.info("preview: %d frames in %s%s", len(pngs), job.preview, f", {movie.name}" if movie else "")


def _model_file(job: RenderJob, plan: RenderPlan) -> Path | None:
    """The file of the model this render segments with (loaded, kept or saved), if it has one: its int8
    calibration is kept beside it, for the shot's other chunks and later renders."""
    for path in (job.load_model if not plan.fine_tune else None, plan.keep, job.save_model):
        if path is not None:
            return Path(path)
    return None


def _write_mattes(plan: RenderPlan, model: OSVOSNet, infos: list[PlateInfo], prepared: PreparedPlates,
                  progress: ProgressFn | None, cancel: CancelFlag, stats: list[FrameStats],
                  preview: Callable[[int], Path] | None = None,
                  model_file: Path | None = None) -> list[Path]:
    """Segment every frame to render and write its matte; returns the mattes written, in order. The
    statistics of each matte (``review.matte_stats``, with the size it was segmented again at if Rescale Grown
    Objects did) are added to ``stats``. ``preview``: where each
    frame's overlay goes (the plate as the network saw it, the matte tinted), by frame number. ``model_file``:
    the model's file, beside which int8 inference keeps its calibration."""
    s = plan.settings
    segmenter = Segmenter(model, s.inference(), int8_cache=None if model_file is None
                          else calibration_cache_path(model_file))
    # Frames not kept by ``prepared`` are read from the plates, shrunk to the processing size before their
    # colour conversion; the matte still comes out at the plate's canvas size (the display window grown to
    # hold any overscan), and ``write_matte`` cuts the data or display window from it. On a CPU the network
    # keeps every core busy, so reads and writes run on one thread each (see ``io_thread_budget``).
    on_cpu = segmenter.device.type == "cpu"
    by_frame = {plan.frames[i][0]: (plan.outputs[i], infos[i], plan.files(i)) for i in plan.todo}
    written = []
    with io_thread_budget(1 if on_cpu else None), AsyncWriter() as writer, PrefetchReader(
        plan.to_render, prepared.read, workers=1 if on_cpu else 2
    ) as reader:
        plates = iter(reader)
        for start, count, canvas_size in _canvas_runs([infos[i] for i in plan.todo]):
            # The plate itself is the stream's key: the rgba writer needs its pixels, and at most one batch
            # of plates is alive at a time.
            frames = ((pl, pl.rgb) for pl in itertools.islice(plates, count))
            for plate, matte in segmenter.stream(frames, total=len(plan.todo), progress=_offset(progress, start),
                                                 cancel=cancel, out_size=canvas_size):
                out, info, files = by_frame[plate.info.frame]
                rgba_source = plate if s.output_format == "rgba" else None  # don't queue plates needlessly
                fingerprint = plan.fingerprint.for_frame(info.path)
                if preview is not None:
                    writer.submit(write_preview_frame, preview(plate.info.frame), plate.rgb, matte)
                layers: tuple = ()
                if plan.object_files:  # a file per object
                    frame_stats = objects_stats(plate.info.frame, matte)
                    for path, one in zip(files, matte, strict=True):
                        writer.submit(write_matte, path, one, info, s.output_format, rgba_source,
                                      metadata={FINGERPRINT_KEY: fingerprint})
                else:
                    if plan.objects:  # A holds every object, each object its own layer
                        frame_stats = objects_stats(plate.info.frame, matte)
                        layers, matte = tuple(zip(plan.objects, matte, strict=True)), matte.max(axis=0)
                    else:
                        frame_stats = matte_stats(plate.info.frame, matte)
                    writer.submit(write_matte, out, matte, info, s.output_format, rgba_source,
                                  metadata={FINGERPRINT_KEY: fingerprint}, layers=layers)
                written.append(out)
                stats.append(replace(frame_stats, fingerprint=fingerprint, rescaled_to=segmenter.rescaled_to))
    if s.grown_object_rescale and not getattr(model, "taught_extent", 0.0):
        log.warning("Rescale Grown Objects: the model does not record how large fine-tuning showed the object "
                    "(saved before this was recorded), so no frame was rescaled; fine-tune it again to use it")
    return written


def _canvas_runs(infos: list[PlateInfo]) -> list[tuple[int, int, tuple[int, int]]]:
    """(first index, count, canvas (h, w)) of each run of consecutive frames whose canvas has one size: the
    network's mattes come out at that size. One run for a shot without overscan (the display size), or
    whose overscan does not change from frame to frame."""
    runs: list[tuple[int, int, tuple[int, int]]] = []
    for i, info in enumerate(infos):
        size = (info.canvas_window[3], info.canvas_window[2])
        if runs and runs[-1][2] == size:
            runs[-1] = (runs[-1][0], runs[-1][1] + 1, size)
        else:
            runs.append((i, 1, size))
    return runs


def _offset(progress: ProgressFn | None, start: int) -> ProgressFn | None:
    """``progress`` for a run of frames that starts ``start`` frames into the inference."""
    if progress is None or start == 0:
        return progress

    def report(p: Progress) -> None:
        # the run's ETA is for total - p.done frames at its own pace; start of them are already done
        left = p.total - p.done
        eta = p.eta_s if p.eta_s is None or left <= 0 else p.eta_s * max(0, left - start) / left
        progress(replace(p, done=min(p.total, p.done + start), eta_s=eta))

    return report
