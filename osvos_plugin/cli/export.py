"""``osvos-export``: a fine-tuned model (``osvos-render --save-model``) as TorchScript for Nuke's Inference
node, so studios can run the matte inside Nuke without the engine.

Exit codes, as ``osvos-render``: 0 done, 1 internal error, 2 usage, 4 model file (missing, corrupt, not an
OSVOS network), 5 output could not be written.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from ..export import NUKE_CHANNELS_IN, NUKE_CHANNELS_OUT, ExportError, export_torchscript
from ..manifest import load_manifest
from ..weights import WeightsError, load_checkpoint

EXIT_OK, EXIT_INTERNAL, EXIT_USAGE, EXIT_MODEL, EXIT_OUTPUT = 0, 1, 2, 4, 5
log = logging.getLogger("osvos_plugin.cli.export")


def build_parser() -> argparse.ArgumentParser:
    size = load_manifest().parameter("process_size")
    parser = argparse.ArgumentParser(
        prog="osvos-export",
        description="Export a fine-tuned OSVOS model as TorchScript for Nuke: load it in a CatFileCreator "
        f"node with Channels In '{NUKE_CHANNELS_IN}' and Channels Out '{NUKE_CHANNELS_OUT}', and feed "
        "the Inference node sRGB-encoded RGB (put a Colorspace linear -> sRGB node before it).",
        epilog="Exit codes: 0 done, 1 internal error, 2 usage, 4 model file, 5 output not written. "
        "Export with the torch version of the Nuke release that will load the file "
        "(Nuke 14: torch 1.12; Nuke 15.1 and later: torch 2.1).",
    )
    parser.add_argument("model", type=Path, metavar="MODEL.safetensors",
                        help="A fine-tuned model written by osvos-render --save-model.")
    parser.add_argument("output", type=Path, metavar="OUT.pt", help="Where the TorchScript file goes.")
    parser.add_argument(size.flag, dest="process_size", type=int, default=None, metavar="INT",
                        help=f"{size.help} 0 runs at the input's own size. (default: {size.default}; "
                        "it stays adjustable as the model's process_size attribute)")
    threshold = load_manifest().parameter("threshold")
    parser.add_argument(threshold.flag, dest="threshold", type=float, default=None, metavar="FLOAT",
                        help="Probability at which the exported soft matte is 0.5, as the render's soft matte "
                        f"(default: {threshold.default}; 0.5 gives the network's probability itself)")
    parser.add_argument("--overwrite", action="store_true", help="Replace OUT.pt if it exists.")
    parser.add_argument("-v", "--verbose", action="store_true", help="Log what the exporter does.")
    return parser


def _fail(message: str, code: int) -> int:
    print(f"osvos-export: error: {message}", file=sys.stderr)
    return code


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(message)s")
    size = load_manifest().parameter("process_size")
    process_size = size.default if args.process_size is None else args.process_size
    if process_size != 0:
        try:
            process_size = size.validate(process_size)
        except ValueError as e:
            return _fail(f"{e} (or 0 for the input's own size)", EXIT_USAGE)
    threshold = load_manifest().parameter("threshold").default if args.threshold is None else args.threshold
    if not 0.0 < threshold < 1.0:
        return _fail(f"--threshold must be strictly between 0 and 1 for a soft matte, got {threshold}", EXIT_USAGE)
    if args.output.suffix.lower() == ".safetensors" or args.output.resolve() == args.model.resolve():
        return _fail(f"{args.output}: the output must be a new .pt file, not the model", EXIT_USAGE)
    if args.output.exists() and not args.overwrite:
        return _fail(f"{args.output} exists; pass --overwrite to replace it", EXIT_OUTPUT)
    try:
        model, info = load_checkpoint(args.model)
    except WeightsError as e:
        return _fail(str(e), EXIT_MODEL)
    try:
        path = export_torchscript(model, args.output, process_size,
                                  metadata={"source_model": str(args.model), "provenance": info.provenance},
                                  threshold=threshold)
    except ExportError as e:
        return _fail(str(e), EXIT_OUTPUT)
    except Exception as e:  # last resort: one line, and the traceback when asked for
        if args.verbose:
            log.exception("internal error")
        return _fail(f"internal error: {e!r} (run with -v and report it)", EXIT_INTERNAL)
    print(f"osvos-export: wrote {path} (process size {process_size or 'native'}, threshold {threshold}); "
          "in Nuke's CatFileCreator: "
          f"Channels In {NUKE_CHANNELS_IN}, Channels Out {NUKE_CHANNELS_OUT}")
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
