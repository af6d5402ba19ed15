"""``osvos-export``: a fine-tuned model (``osvos-render --save-model``) as TorchScript for Nuke's Inference
node, so studios can run the matte inside Nuke without the engine: a plain .pt, or with ``--cattery`` a
Cattery folder (cat.json, a gizmo with the colour conversion, the CatFileCreator steps). Refuses when the
running torch writes files the ``--nuke`` release cannot load (``--ignore-torch-version`` writes anyway).

Exit codes, as ``osvos-render``: 0 done, 1 internal error, 2 usage, 4 model file (missing, corrupt, not an
OSVOS network), 5 output could not be written.
"""

from __future__ import annotations

import argparse
import logging
import sys
import threading
from pathlib import Path

from osvos_contract.manifest import load_manifest

from ..errors import OutputError, UsageError
from ..export import (
    DEFAULT_NUKE,
    NUKE_CHANNELS_IN,
    NUKE_CHANNELS_OUT,
    check_torch_for_nuke,
    export_torchscript,
    nuke_torch,
    write_cattery_package,
)
from ..weights import load_checkpoint
from .runner import epilog, run


def build_parser() -> argparse.ArgumentParser:
    size = load_manifest().parameter("process_size")
    parser = argparse.ArgumentParser(
        prog="osvos-export",
        description="Export a fine-tuned OSVOS model as TorchScript for Nuke: turn it into a .cat in a "
        f"CatFileCreator node (NukeX) with Channels In '{NUKE_CHANNELS_IN}' and Channels Out "
        f"'{NUKE_CHANNELS_OUT}', and feed the Inference node sRGB-encoded RGB (a Colorspace linear -> sRGB "
        "node before it). --cattery writes all of that as a Cattery folder.",
        epilog=epilog((0, 1, 2, 4, 5), "A Nuke release loads TorchScript from its own torch or an older one: "
        "Nuke 13: torch 1.6; Nuke 14 and 15.0: torch 1.12 (not possible with osvos-plugin, which needs torch "
        "2.1); Nuke 15.1 and later: torch 2.1."),
    )
    parser.add_argument("model", type=Path, metavar="MODEL.safetensors",
                        help="A fine-tuned model written by osvos-render --save-model.")
    parser.add_argument("output", type=Path, metavar="OUT",
                        help="Where the TorchScript file goes (OUT.pt), or with --cattery the package folder "
                        "(its name names the model, e.g. ~/.nuke/Cattery/OSVOS_shot010).")
    parser.add_argument("--cattery", action="store_true",
                        help="Write a Cattery folder: NAME.pt, cat.json, NAME.gizmo (Colorspace linear -> sRGB, "
                        "Inference, the matte into the alpha), osvos.json and the CatFileCreator steps.")
    parser.add_argument("--nuke", default=DEFAULT_NUKE, metavar="VERSION",
                        help=f"The oldest Nuke release that will load the model (default: {DEFAULT_NUKE}); the "
                        "export refuses when the running torch is newer than that release's.")
    parser.add_argument("--ignore-torch-version", action="store_true",
                        help="Write even when the running torch is newer than the Nuke release's (the file may "
                        "not load there).")
    parser.add_argument(size.flag, dest="process_size", type=int, default=None, metavar="INT",
                        help=f"{size.help} 0 runs at the input's own size. (default: the size the model was "
                        f"fine-tuned at, which its record holds, else {size.default}; it stays adjustable as the "
                        "model's process_size attribute)")
    threshold = load_manifest().parameter("threshold")
    parser.add_argument(threshold.flag, dest="threshold", type=float, default=None, metavar="FLOAT",
                        help="Probability at which the exported soft matte is 0.5, as the render's soft matte "
                        f"(default: {threshold.default}; 0.5 gives the network's probability itself)")
    parser.add_argument("--overwrite", action="store_true", help="Replace OUT.pt if it exists.")
    parser.add_argument("-v", "--verbose", action="store_true", help="Log what the exporter does.")
    return parser


def _main(args: argparse.Namespace, cancel: threading.Event) -> int:
    size = load_manifest().parameter("process_size")
    process_size = args.process_size
    if process_size is not None and process_size != 0:
        try:
            process_size = size.validate(process_size)
        except ValueError as e:
            raise UsageError(f"{e} (or 0 for the input's own size)") from None
    threshold = load_manifest().parameter("threshold").default if args.threshold is None else args.threshold
    if not 0.0 < threshold < 1.0:
        raise UsageError(f"--threshold must be strictly between 0 and 1 for a soft matte, got {threshold}")
    try:
        nuke_torch(args.nuke)
        refused = check_torch_for_nuke(args.nuke)
    except ValueError as e:
        raise UsageError(f"--nuke: {e}") from None
    if refused and not args.ignore_torch_version:
        raise UsageError(refused + " (--ignore-torch-version writes it anyway)")
    if refused:
        logging.getLogger("osvos_plugin.export").warning("writing anyway: %s", refused)
        print(f"osvos-export: warning: {refused}", file=sys.stderr)
    if args.output.suffix.lower() == ".safetensors" or args.output.resolve() == args.model.resolve():
        raise UsageError(f"{args.output}: the output must be a new .pt file or folder, not the model")
    if args.output.exists() and not args.overwrite:
        raise OutputError(f"{args.output} exists; pass --overwrite to replace it")
    model, info = load_checkpoint(args.model)
    if process_size is None:  # the size it learnt at (Large Object Scale for a large object), as a render runs it
        recorded = info.provenance.get("process_size")
        process_size = recorded if isinstance(recorded, int) and recorded > 0 else size.default
    metadata = {"source_model": str(args.model), "provenance": info.provenance}
    if args.cattery:
        folder = write_cattery_package(model, args.output, process_size, args.nuke, threshold, metadata)
        print(f"osvos-export: wrote the Cattery folder {folder} for Nuke {args.nuke} (process size "
              f"{process_size or 'native'}, threshold {threshold}); make the .cat in NukeX as "
              f"{folder / 'HOW_TO_MAKE_THE_CAT.txt'} says")
        return 0
    path = export_torchscript(model, args.output, process_size, metadata=metadata, threshold=threshold)
    print(f"osvos-export: wrote {path} (process size {process_size or 'native'}, threshold {threshold}); "
          "in a CatFileCreator (NukeX): "
          f"Channels In {NUKE_CHANNELS_IN}, Channels Out {NUKE_CHANNELS_OUT}")
    return 0


def main(argv: list[str] | None = None) -> int:
    return run(build_parser(), _main, argv)


if __name__ == "__main__":
    sys.exit(main())
