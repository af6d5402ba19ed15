"""``osvos-eval``: DAVIS J and F of a folder of predicted masks, printed as a table, optionally as JSON/CSV.

    osvos-eval --davis-root DAVIS --predictions results/osvos [--sequences bear,boat | --split val.txt]
               [--json eval.json] [--csv eval.csv]

Exit codes: 0 done, 1 internal error, 2 usage, 3 bad input (missing folder or frame, unreadable file,
size mismatch: the message names the file), 5 a result file could not be written, 130 interrupted.
"""

from __future__ import annotations

import argparse
import sys
import threading

from osvos_contract.protocol import ExitCode

from ..errors import UsageError
from ..evaluation import DEFAULT_BOUND_TH, DEFAULT_RESOLUTION, evaluate_folder, read_split
from .runner import epilog, fail, run

PROG = "osvos-eval"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="DAVIS metrics (J region similarity, F boundary measure: mean, recall, decay) of "
        "predicted masks PRED/<seq>/<frame>.png (or .exr mattes) against "
        "ROOT/Annotations/<resolution>/<seq>/<frame>.png. As in the official benchmark the first and last "
        "frames are not scored; overall numbers are means over sequences. PNG predictions are object at >= "
        "half range (>= 128 for 8-bit), EXR at >= 0.5 in A (or the first channel); ground truth is object "
        "where non-zero. A sequence whose annotations are palette PNGs with several objects (DAVIS-2017) is "
        "scored per object and averaged over objects; its predictions are palette PNGs or osvos-render EXRs "
        "with a layer per object.",
        epilog=epilog((0, 1, 2, 3, 5, 130), "Bad input: a missing or unreadable file, a size mismatch; "
                      "output not written: a result file."),
    )
    parser.add_argument("--davis-root", required=True, metavar="ROOT",
                        help="DAVIS root (holds Annotations/).")
    parser.add_argument("--predictions", required=True, metavar="PRED",
                        help="Folder of predictions, one sub-folder per sequence.")
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--sequences", metavar="A,B,C", help="Comma-separated sequence names "
                       "(default: every sub-folder of PRED).")
    which.add_argument("--split", metavar="FILE", help="Split file: one sequence per line, or DAVIS-2016 "
                       "ImageSets lines ('/JPEGImages/480p/<seq>/00000.jpg ...').")
    parser.add_argument("--resolution", default=DEFAULT_RESOLUTION,
                        help="Annotation folder (default: %(default)s).")
    parser.add_argument("--json", metavar="OUT.json",
                        help="Write all results (with per-frame values) as JSON.")
    parser.add_argument("--csv", metavar="OUT.csv", help="Write per-sequence and overall rows as CSV.")
    parser.add_argument("--bound-th", type=float, default=DEFAULT_BOUND_TH, metavar="T",
                        help="Boundary tolerance: fraction of the image diagonal if < 1, else pixels "
                        "(default: %(default)s, the DAVIS value; other values are not comparable).")
    parser.add_argument("--workers", type=int, default=1, metavar="N", help="Threads scoring frames "
                        "(default: %(default)s).")
    parser.add_argument("--overall-only", action="store_true", help="Print only the overall line.")
    parser.add_argument("-v", "--verbose", action="store_true", help="Log progress per sequence.")
    return parser


def _sequences(args: argparse.Namespace) -> list[str] | None:
    if args.split:
        return read_split(args.split)
    if args.sequences is not None:
        names = [s.strip() for s in args.sequences.split(",") if s.strip()]
        if not names:
            raise UsageError("--sequences: no sequence name given")
        return names
    return None


def _main(args: argparse.Namespace, cancel: threading.Event) -> int:
    if args.workers < 1:
        return fail(PROG, "--workers must be at least 1", ExitCode.USAGE)
    if args.bound_th <= 0:
        return fail(PROG, "--bound-th must be positive", ExitCode.USAGE)
    result = evaluate_folder(args.davis_root, args.predictions, _sequences(args), resolution=args.resolution,
                             bound_th=args.bound_th, workers=args.workers)
    print(result.format_table(per_sequence=not args.overall_only))
    for path, write in ((args.json, result.write_json), (args.csv, result.write_csv)):
        if path:
            try:
                write(path)
            except OSError as exc:
                return fail(PROG, f"{path}: cannot write ({exc.strerror or exc})", ExitCode.OUTPUT)
            print(f"wrote {path}", file=sys.stderr)
    return ExitCode.OK


def main(argv: list[str] | None = None) -> int:
    return run(build_parser(), _main, argv, interrupted="interrupted", log_format="%(levelname)s %(name)s: %(message)s")


if __name__ == "__main__":
    sys.exit(main())
