"""``osvos-eval``: DAVIS J and F of a folder of predicted masks, printed as a table, optionally as JSON/CSV.

    osvos-eval --davis-root DAVIS --predictions results/osvos [--sequences bear,boat | --split val.txt]
               [--json eval.json] [--csv eval.csv]

Exit codes: 0 done, 1 internal error, 2 usage, 3 bad input (missing folder or frame, unreadable file,
size mismatch: the message names the file), 5 a result file could not be written, 130 interrupted.
"""

from __future__ import annotations

import argparse
import logging
import sys

from ..evaluation import (
    DEFAULT_BOUND_TH,
    DEFAULT_RESOLUTION,
    EvaluationInputError,
    evaluate_folder,
    read_split,
)

EXIT_OK, EXIT_INTERNAL, EXIT_USAGE, EXIT_INPUT, EXIT_OUTPUT, EXIT_INTERRUPTED = 0, 1, 2, 3, 5, 130
log = logging.getLogger("osvos_plugin.cli.evaluate")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="osvos-eval",
        description="DAVIS metrics (J region similarity, F boundary measure: mean, recall, decay) of "
        "predicted masks PRED/<seq>/<frame>.png (or .exr mattes) against "
        "ROOT/Annotations/<resolution>/<seq>/<frame>.png. As in the official benchmark the first and last "
        "frames are not scored; overall numbers are means over sequences. PNG predictions are object at >= "
        "half range (>= 128 for 8-bit), EXR at >= 0.5 in A (or the first channel); ground truth is object "
        "where non-zero.",
        epilog="Exit codes: 0 done, 1 internal error, 2 usage, 3 bad input (missing/unreadable file, size "
        "mismatch), 5 result file not written, 130 interrupted.",
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


def _sequences(args: argparse.Namespace, parser: argparse.ArgumentParser) -> list[str] | None:
    if args.split:
        return read_split(args.split)
    if args.sequences is not None:
        names = [s.strip() for s in args.sequences.split(",") if s.strip()]
        if not names:
            parser.error("--sequences: no sequence name given")
        return names
    return None


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        if args.workers < 1:
            parser.error("--workers must be at least 1")
        if args.bound_th <= 0:
            parser.error("--bound-th must be positive")
    except SystemExit as exc:  # argparse: --help (0) or a usage error (2)
        return int(exc.code) if isinstance(exc.code, int) else EXIT_USAGE
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")

    try:
        try:
            sequences = _sequences(args, parser)
        except SystemExit as exc:
            return int(exc.code) if isinstance(exc.code, int) else EXIT_USAGE
        result = evaluate_folder(args.davis_root, args.predictions, sequences, resolution=args.resolution,
                                 bound_th=args.bound_th, workers=args.workers)
    except EvaluationInputError as exc:
        print(f"osvos-eval: error: {exc}", file=sys.stderr)
        return EXIT_INPUT
    except KeyboardInterrupt:
        print("osvos-eval: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception:  # a farm wants an exit code; the traceback goes to the log
        log.exception("internal error")
        return EXIT_INTERNAL

    print(result.format_table(per_sequence=not args.overall_only))
    for path, write in ((args.json, result.write_json), (args.csv, result.write_csv)):
        if path:
            try:
                write(path)
            except OSError as exc:
                print(f"osvos-eval: error: {path}: cannot write ({exc.strerror or exc})", file=sys.stderr)
                return EXIT_OUTPUT
            print(f"wrote {path}", file=sys.stderr)
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
