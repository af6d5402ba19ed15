"""``osvos-render``: the headless matte render that artists and render farms run.

Flags, defaults and help for the node's parameters come from plugin.json; exit codes are the contract's
(``osvos_contract.protocol``): 0 done, 1 internal error, 2 usage, 3 bad input (plates, masks,
parameters), 4 model or weights file, 5 output could not be written, 130 interrupted (rerun resumes).
"""

from __future__ import annotations

import argparse
import re
import sys
import threading
from pathlib import Path

from osvos_contract.manifest import load_manifest

from ..errors import InputError, UsageError
from ..pipeline import Keyframe, RenderJob, render
from ..settings import RenderSettings
from .progress import ProgressPrinter
from .runner import add_manifest_arguments, add_progress_argument, epilog, manifest_values, run

PROG = "osvos-render"


def build_parser() -> argparse.ArgumentParser:
    m = load_manifest()
    parser = argparse.ArgumentParser(
        prog=PROG,
        description=f"{m.label} {m.version}: {m.description} Run `osvos-demo` for the bundled demo shot.",
        epilog=epilog(),
    )
    parser.add_argument("source", metavar="PLATE_PATTERN",
                        help="The Source plate: plate.####.exr, plate.%%04d.exr, plate.@.exr, plate.$F4.exr, "
                        "or a single file.")
    parser.add_argument("--mask", action="append", default=[], metavar="MASK",
                        help="The painted mask for --mask-frame (alpha, or luminance when it has none).")
    parser.add_argument("--keyframe", nargs=2, action="append", default=[], metavar=("FRAME", "MASK"),
                        help="An extra painted keyframe: its frame number and mask. Repeatable.")
    parser.add_argument("--object", nargs=2, action="append", default=[], metavar=("NAME", "MASK"),
                        help="Several objects: one object's mask, painted on --mask-frame; the mattes get a layer "
                        "NAME.A per object (A holds them all). Repeatable. A palette (indexed-colour) PNG given to "
                        "--mask holds several objects at once (obj1, obj2, ... by index).")
    parser.add_argument("--object-keyframe", nargs=3, action="append", default=[], metavar=("NAME", "FRAME", "MASK"),
                        help="One object painted on another frame (a correction, or an object that appears later). "
                        "Repeatable.")
    parser.add_argument("--output", "-o", required=True, metavar="PATTERN",
                        help="Where the mattes go, e.g. matte.####.exr (folders are created).")
    parser.add_argument("--parent", type=Path, default=None,
                        help="Parent network (safetensors). Default: the shipped models/osvos-parent.safetensors.")
    model = parser.add_mutually_exclusive_group()
    model.add_argument("--save-model", type=Path, default=None,
                       help="Save the fine-tuned network here, so other processes can --load-model it.")
    model.add_argument("--load-model", type=Path, default=None,
                       help="Use this fine-tuned network: no fine-tuning, inference only (farm fan-out).")
    parser.add_argument("--overwrite", action="store_true",
                        help="Render every frame again; by default frames already written are kept (resume).")
    parser.add_argument("--resize-mask", action="store_true",
                        help="Resize a mask whose size differs from the plate instead of stopping.")
    parser.add_argument("--preview", type=Path, default=None, metavar="DIR",
                        help="Also write each frame's plate with the matte tinted (one colour per object) as "
                        "DIR/<matte name>.####.png as they land, and the range as DIR/<matte name>.mp4.")
    farm = parser.add_argument_group("Render farm")
    farm.add_argument("--train-only", action="store_true",
                      help="Fine-tune and --save-model, write no matte: a farm job's first task.")
    farm.add_argument("--job-bundle", type=Path, default=None, metavar="DIR",
                      help="Write an Open Job Description / Deadline Cloud job bundle for this render into DIR "
                      "instead of rendering: one fine-tune task, then the frames in chunks.")
    farm.add_argument("--chunk-size", type=int, default=None, metavar="N",
                      help="Frames per render task of --job-bundle (default: 10).")
    farm.add_argument("--gpu-finetune", action="store_true",
                      help="--job-bundle: the fine-tune task asks for a worker with a GPU; chunks run anywhere.")
    add_progress_argument(parser)
    parser.add_argument("-v", "--verbose", action="store_true", help="Log what the engine does.")
    add_manifest_arguments(parser)
    return parser


def job_from_args(args: argparse.Namespace) -> RenderJob:
    keyframes = [Keyframe(mask) for mask in args.mask[:1]]
    for frame, mask in args.keyframe:
        try:
            keyframes.append(Keyframe(mask, int(frame)))
        except ValueError:
            raise UsageError(f"--keyframe {frame} {mask}: the frame number {frame!r} is not a whole number; "
                             "give --keyframe FRAME MASK, e.g. --keyframe 1080 roto.1080.png") from None
    for name, mask in args.object:
        keyframes.append(Keyframe(mask, None, _object_name(name)))
    for name, frame, mask in args.object_keyframe:
        try:
            keyframes.append(Keyframe(mask, int(frame), _object_name(name)))
        except ValueError:
            raise UsageError(f"--object-keyframe {name} {frame} {mask}: the frame number {frame!r} is not a whole "
                             "number") from None
    if len(args.mask) > 1:
        raise UsageError("--mask is given more than once: give extra keyframes as --keyframe FRAME MASK")
    if args.train_only and args.save_model is None:
        raise UsageError("--train-only saves the fine-tuned model and renders nothing: give --save-model PATH")
    return RenderJob(
        source=args.source, output=args.output, keyframes=keyframes, params=manifest_values(args),
        parent=args.parent, load_model=args.load_model, save_model=args.save_model, overwrite=args.overwrite,
        resize_mask=args.resize_mask, train_only=args.train_only, preview=args.preview,
    )


def _object_name(name: str) -> str:
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_-]{0,63}", name):
        raise UsageError(f"object name {name!r}: use letters, digits, '_' and '-' (it names the EXR layer), "
                         "starting with a letter, e.g. --object hero roto_hero.png")
    return name


def write_bundle(args: argparse.Namespace) -> None:
    """``--job-bundle DIR``: the render as a farm job (osvos_contract.farm) instead of rendering here."""
    from osvos_contract import farm

    if not args.mask:
        raise UsageError("--job-bundle needs --mask: the farm job fine-tunes on it")
    if args.keyframe or args.object or args.object_keyframe or args.load_model or args.parent or args.train_only:
        raise UsageError("--job-bundle writes a one-mask job with the shipped parent: leave out --keyframe, "
                         "--object, --load-model, --parent and --train-only")
    chunk = farm.DEFAULT_CHUNK if args.chunk_size is None else args.chunk_size
    try:
        values = farm.bundle_values(args.source, args.mask[0], args.output, manifest_values(args), chunk_size=chunk)
    except ValueError as e:
        raise InputError(f"--job-bundle: {e}") from None
    folder = farm.write_job_bundle(args.job_bundle, values, gpu_finetune=args.gpu_finetune)
    print(f"{PROG}: job bundle written to {folder} ({values['Frames']}, {values['ChunkSize']} frames a task); "
          f"submit it with `deadline bundle submit {folder}`, or run it here with "
          f"`openjd run {folder / 'template.json'} -p file://{folder / 'job_parameters.json'} --run-dependencies`")


def run_job(job: RenderJob, progress_mode: str, cancel: threading.Event | None = None) -> None:
    """Render ``job`` with a progress printer and print the summary line; errors propagate to the runner."""
    stages: tuple[str, ...] = ()
    if job.train_only or job.load_model is not None:  # a farm task: progress over the stages it runs
        learn = ("finetune", "selftrain") if RenderSettings.resolve(job.params).self_train_iterations else ("finetune",)
        stages = ("check", *learn) if job.train_only else ("check", "infer")
    printer = ProgressPrinter(progress_mode, stages=stages)
    try:
        summary = render(job, progress=printer, cancel=cancel)
    finally:
        printer.close()
    print(f"{PROG}: {summary.line()}", file=sys.stderr if progress_mode == "json" else sys.stdout)


def _main(args: argparse.Namespace, cancel: threading.Event) -> int:
    if args.job_bundle is not None:
        write_bundle(args)
        return 0
    if args.chunk_size is not None or args.gpu_finetune:
        raise UsageError("--chunk-size and --gpu-finetune are for --job-bundle")
    run_job(job_from_args(args), args.progress, cancel)
    return 0


def main(argv: list[str] | None = None) -> int:
    return run(build_parser(), _main, argv, stopping="stopping after the current frames",
               interrupted="interrupted; every matte written so far is whole: run the same command again to resume.",
               input_errors=(ValueError,))


if __name__ == "__main__":
    sys.exit(main())
