"""``osvos-render``: the headless matte render that artists and render farms run.

Flags, defaults and help for the node's parameters come from plugin.json. Exit codes a farm can act on:
0 done, 1 internal error, 2 usage, 3 bad input (plates, masks, parameters), 4 model or weights file,
5 output could not be written, 130 interrupted (rerun resumes).
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from pathlib import Path

from ..io import MaskError, OutputError, PlateError
from ..manifest import Parameter, load_manifest
from ..pipeline import Keyframe, RenderJob, render
from ..training import Cancelled
from ..weights import WeightsError
from .progress import ProgressPrinter

EXIT_OK, EXIT_INTERNAL, EXIT_USAGE, EXIT_INPUT, EXIT_MODEL, EXIT_OUTPUT, EXIT_INTERRUPTED = 0, 1, 2, 3, 4, 5, 130
log = logging.getLogger("osvos_plugin.cli.render")


def _param_help(p: Parameter) -> str:
    extra = [f"default: {p.default}" if p.default not in (None, "") else "default: none"]
    if p.min is not None or p.max is not None:
        extra.append(f"range {p.min}..{p.max}")
    return f"{p.help} ({'; '.join(extra)})"


def add_manifest_arguments(parser: argparse.ArgumentParser) -> None:
    """One flag per plugin.json parameter. Defaults stay None here: the manifest fills them in later,
    so what the user typed is told apart from what they left alone."""
    groups: dict[str, argparse._ArgumentGroup] = {}
    for p in load_manifest().parameters:
        group = groups.get(p.group) or groups.setdefault(p.group, parser.add_argument_group(p.group or "Node"))
        kwargs: dict = {"dest": p.name, "default": None, "help": _param_help(p)}
        if p.type == "bool":
            group.add_argument(p.flag, action=argparse.BooleanOptionalAction, **kwargs)
        elif p.type == "choice":
            group.add_argument(p.flag, choices=p.choices, **kwargs)
        else:
            group.add_argument(p.flag, type={"int": int, "float": float}.get(p.type, str), metavar=p.type.upper(),
                               **kwargs)


def build_parser() -> argparse.ArgumentParser:
    m = load_manifest()
    parser = argparse.ArgumentParser(
        prog="osvos-render",
        description=f"{m.label} {m.version}: {m.description} Run `osvos-render demo` for the bundled demo shot.",
        epilog="Exit codes: 0 done, 1 internal error, 2 usage, 3 bad input, 4 model file, 5 output not written, "
        "130 interrupted (run again to resume).",
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
    parser.add_argument("--progress", choices=["auto", "bar", "json", "none"], default="auto",
                        help="auto: a bar on a terminal, silent otherwise; json: one JSON object per update "
                        "on stdout, for host adapters.")
    parser.add_argument("-v", "--verbose", action="store_true", help="Log what the engine does.")
    add_manifest_arguments(parser)
    return parser


def job_from_args(args: argparse.Namespace) -> RenderJob:
    params = {p.name: getattr(args, p.name) for p in load_manifest().parameters if getattr(args, p.name) is not None}
    keyframes = [Keyframe(mask) for mask in args.mask[:1]]
    keyframes += [Keyframe(mask, int(frame)) for frame, mask in args.keyframe]
    if len(args.mask) > 1:
        raise ValueError("--mask is given more than once: give extra keyframes as --keyframe FRAME MASK")
    return RenderJob(
        source=args.source, output=args.output, keyframes=keyframes, params=params, parent=args.parent,
        load_model=args.load_model, save_model=args.save_model, overwrite=args.overwrite,
        resize_mask=args.resize_mask,
    )


class Interrupt:
    """First Ctrl-C asks for a clean stop between frames; a second one stops at once."""

    def __init__(self) -> None:
        self.event = threading.Event()
        self._old = None

    def __enter__(self) -> threading.Event:
        if threading.current_thread() is threading.main_thread():
            self._old = signal.signal(signal.SIGINT, self._handle)
        return self.event

    def _handle(self, signum, frame) -> None:
        if self.event.is_set():
            raise KeyboardInterrupt
        self.event.set()
        print("\nosvos-render: stopping after the current frames (Ctrl-C again to stop now)", file=sys.stderr)

    def __exit__(self, *exc) -> None:
        if self._old is not None:
            signal.signal(signal.SIGINT, self._old)


def run_job(job: RenderJob, progress_mode: str) -> int:
    printer = ProgressPrinter(progress_mode)
    try:
        with Interrupt() as cancel:
            summary = render(job, progress=printer, cancel=cancel)
    except (PlateError, MaskError) as e:
        return _fail(str(e), EXIT_INPUT)
    except WeightsError as e:
        return _fail(str(e), EXIT_MODEL)
    except OutputError as e:
        return _fail(str(e), EXIT_OUTPUT)
    except ValueError as e:
        return _fail(str(e), EXIT_INPUT)
    except (Cancelled, KeyboardInterrupt):
        printer.close()
        return _fail("interrupted; every matte written so far is whole: run the same command again to resume.",
                     EXIT_INTERRUPTED)
    finally:
        printer.close()
    print(f"osvos-render: {summary.line()}", file=sys.stderr if progress_mode == "json" else sys.stdout)
    return EXIT_OK


def _fail(message: str, code: int) -> int:
    print(f"osvos-render: error: {message}", file=sys.stderr)
    return code


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["demo"]:
        from .demo import main as demo_main

        return demo_main(argv[1:])
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(message)s")
    try:
        job = job_from_args(args)
    except ValueError as e:
        return _fail(str(e), EXIT_USAGE)
    try:
        return run_job(job, args.progress)
    except Exception as e:  # last resort: one line, and the traceback when asked for
        if args.verbose:
            log.exception("internal error")
        return _fail(f"internal error: {e!r} (run with -v and report it)", EXIT_INTERNAL)


if __name__ == "__main__":
    sys.exit(main())
