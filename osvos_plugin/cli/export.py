"""``osvos-export``: a fine-tuned model (``osvos-render --save-model``) as TorchScript for Nuke's Inference
node, so studios can run the matte inside Nuke without the engine.

Exit codes, as ``osvos-render``: 0 done, 1 internal error, 2 usage, 4 model file (missing, corrupt, not an
OSVOS network), 5 output could not be written.
"""

from __future__ import annotations

import argparse
import sys
import threading
from pathlib import Path

from osvos_contract.manifest import load_manifest

from ..errors import OutputError, UsageError
from ..export import NUKE_CHANNELS_IN, NUKE_CHANNELS_OUT, export_torchscript
from ..weights import load_checkpoint
from .runner import epilog, run


def build_parser() -> argparse.ArgumentParser:
    size = load_manifest().parameter("process_size")
    parser = argparse.ArgumentParser(
        prog="osvos-export",
        description="Export a fine-tuned OSVOS model as TorchScript for Nuke: load it in a CatFileCreator "
        f"node with Channels In '{NUKE_CHANNELS_IN}' and Channels Out '{NUKE_CHANNELS_OUT}', and feed "
        "the Inference node sRGB-encoded RGB (put a Colorspace linear -> sRGB node before it).",
        epilog=epilog((0, 1, 2, 4, 5), "Export with the torch version of the Nuke release that will load the file "
        "(Nuke 14: torch 1.12; Nuke 15.1 and later: torch 2.1)."),
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


def _main(args: argparse.Namespace, cancel: threading.Event) -> int:
    size = load_manifest().parameter("process_size")
    process_size = size.default if args.process_size is None else args.process_size
    if process_size != 0:
        try:
            process_size = size.validate(process_size)
        except ValueError as e:
            raise UsageError(f"{e} (or 0 for the input's own size)") from None
    threshold = load_manifest().parameter("threshold").default if args.threshold is None else args.threshold
    if not 0.0 < threshold < 1.0:
        raise UsageError(f"--threshold must be strictly between 0 and 1 for a soft matte, got {threshold}")
    if args.output.suffix.lower() == ".safetensors" or args.output.resolve() == args.model.resolve():
        raise UsageError(f"{args.output}: the output must be a new .pt file, not the model")
    if args.output.exists() and not args.overwrite:
        raise OutputError(f"{args.output} exists; pass --overwrite to replace it")
    model, info = load_checkpoint(args.model)
    path = export_torchscript(model, args.output, process_size,
                              metadata={"source_model": str(args.model), "provenance": info.provenance},
                              threshold=threshold)
    print(f"osvos-export: wrote {path} (process size {process_size or 'native'}, threshold {threshold}); "
          "in Nuke's CatFileCreator: "
          f"Channels In {NUKE_CHANNELS_IN}, Channels Out {NUKE_CHANNELS_OUT}")
    return 0


def main(argv: list[str] | None = None) -> int:
    return run(build_parser(), _main, argv)


if __name__ == "__main__":
    sys.exit(main())
