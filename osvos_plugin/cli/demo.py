"""``osvos-demo``: the whole pipeline on the bundled demo shot, scored against its ground truth."""

from __future__ import annotations

import argparse
import sys
import threading
from pathlib import Path

import numpy as np

from ..evaluation.metrics import jaccard
from ..io import format_frame_path, read_mask, read_plate, resolve_sequence
from ..pipeline import Keyframe, RenderJob
from ..preview import write_previews
from .render import run_job
from .runner import add_manifest_arguments, add_progress_argument, epilog, manifest_values, run

DEMO_DIR = Path(__file__).resolve().parents[1] / "demo" / "bear"
PLATE = str(DEMO_DIR / "plate" / "bear.####.jpg")
TRUTH = str(DEMO_DIR / "truth" / "bear.####.png")
FIRST = 1001


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="osvos-demo",
        description="Render the bundled demo shot (DAVIS 'bear', 20 frames, CC BY 4.0): fine-tune on the painted "
        f"frame {FIRST}, write EXR mattes and an overlay preview, and print J against the ground truth.",
        epilog=epilog(),
    )
    p.add_argument("--output-dir", type=Path, default=Path("demo_out"),
                   help="Where everything goes (default: demo_out).")
    p.add_argument("--parent", type=Path, default=None, help="Parent network (default: the shipped one).")
    add_progress_argument(p)
    p.add_argument("-v", "--verbose", action="store_true", help="Log what the engine does.")
    add_manifest_arguments(p)
    return p


def _main(args: argparse.Namespace, cancel: threading.Event) -> int:
    out = args.output_dir
    job = RenderJob(source=PLATE, output=str(out / "mattes" / "bear.####.exr"),
                    keyframes=[Keyframe(format_frame_path(TRUTH, FIRST), FIRST)], params=manifest_values(args),
                    parent=args.parent, overwrite=True)
    print(f"osvos-demo: DAVIS 'bear' frames {FIRST}-{FIRST + 19}, mask painted on {FIRST}, output in {out}/")
    run_job(job, args.progress, cancel)
    frames = [f for f, _ in resolve_sequence(PLATE)]
    scores, items = [], []
    for f in frames:
        matte = read_mask(format_frame_path(job.output, f), allow_empty=True)
        truth = read_mask(format_frame_path(TRUTH, f), allow_empty=True)
        scores.append(jaccard(truth > 0.5, matte > 0.5))
        items.append((f, read_plate(format_frame_path(PLATE, f)).rgb, matte))
    pngs, mp4 = write_previews(items, out / "preview", "bear")
    j = float(np.mean(scores[1:-1]))  # DAVIS convention: first (painted) and last frames excluded
    print(f"preview: {pngs[0].parent}/bear.####.png" + (f" and {mp4}" if mp4 else ""))
    print(f"J mean against the ground truth (frames {FIRST + 1}-{frames[-2]}): {j:.3f}")
    return 0


def main(argv: list[str] | None = None) -> int:
    return run(build_parser(), _main, argv, stopping="stopping after the current frames",
               interrupted="interrupted; run osvos-demo again to start over.", input_errors=(ValueError,))


if __name__ == "__main__":
    sys.exit(main())
