"""``osvos-render demo``: the whole pipeline on the bundled demo shot, scored against its ground truth."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import numpy as np

from ..evaluation.metrics import jaccard
from ..io import format_frame_path, read_mask, read_plate, resolve_sequence
from ..pipeline import Keyframe, RenderJob
from ..preview import write_previews
from .render import EXIT_OK, add_manifest_arguments, run_job

DEMO_DIR = Path(__file__).resolve().parents[1] / "demo" / "bear"
PLATE = str(DEMO_DIR / "plate" / "bear.####.jpg")
TRUTH = str(DEMO_DIR / "truth" / "bear.####.png")
FIRST = 1001


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="osvos-render demo",
        description="Render the bundled demo shot (DAVIS 'bear', 20 frames, CC BY 4.0): fine-tune on the painted "
        f"frame {FIRST}, write EXR mattes and an overlay preview, and print J against the ground truth.",
    )
    p.add_argument("--output-dir", type=Path, default=Path("demo_out"),
                   help="Where everything goes (default: demo_out).")
    p.add_argument("--parent", type=Path, default=None, help="Parent network (default: the shipped one).")
    p.add_argument("--progress", choices=["auto", "bar", "json", "none"], default="auto")
    add_manifest_arguments(p)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
    from ..manifest import load_manifest

    params = {q.name: getattr(args, q.name) for q in load_manifest().parameters if getattr(args, q.name) is not None}
    out = args.output_dir
    job = RenderJob(source=PLATE, output=str(out / "mattes" / "bear.####.exr"),
                    keyframes=[Keyframe(format_frame_path(TRUTH, FIRST), FIRST)], params=params, parent=args.parent,
                    overwrite=True)
    print(f"osvos-render demo: DAVIS 'bear' frames {FIRST}-{FIRST + 19}, mask painted on {FIRST}, output in {out}/")
    code = run_job(job, args.progress)
    if code != EXIT_OK:
        return code
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
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
