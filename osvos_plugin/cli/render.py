"""``osvos-render``: the headless matte render that artists and render farms run.

Flags, defaults and help for the node's parameters come from plugin.json; exit codes are the contract's
(``osvos_contract.protocol``): 0 done, 1 internal error, 2 usage, 3 bad input (plates, masks,
parameters), 4 model or weights file, 5 output could not be written, 130 interrupted (rerun resumes).
"""

from __future__ import annotations

import argparse
import sys
import threading
from pathlib import Path

from osvos_contract.manifest import load_manifest

from ..errors import UsageError
from ..pipeline import Keyframe, RenderJob, render
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
    if len(args.mask) > 1:
        raise UsageError("--mask is given more than once: give extra keyframes as --keyframe FRAME MASK")
    return RenderJob(
        source=args.source, output=args.output, keyframes=keyframes, params=manifest_values(args),
        parent=args.parent, load_model=args.load_model, save_model=args.save_model, overwrite=args.overwrite,
        resize_mask=args.resize_mask,
    )


def run_job(job: RenderJob, progress_mode: str, cancel: threading.Event | None = None) -> None:
    """Render ``job`` with a progress printer and print the summary line; errors propagate to the runner."""
    printer = ProgressPrinter(progress_mode)
    try:
        summary = render(job, progress=printer, cancel=cancel)
    finally:
        printer.close()
    print(f"{PROG}: {summary.line()}", file=sys.stderr if progress_mode == "json" else sys.stdout)


def _main(args: argparse.Namespace, cancel: threading.Event) -> int:
    run_job(job_from_args(args), args.progress, cancel)
    return 0


def main(argv: list[str] | None = None) -> int:
    return run(build_parser(), _main, argv, stopping="stopping after the current frames",
               interrupted="interrupted; every matte written so far is whole: run the same command again to resume.",
               input_errors=(ValueError,))


if __name__ == "__main__":
    sys.exit(main())
