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
from ..plan import kept_model_path
from ..preview import write_previews
from ..settings import RenderSettings
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
    p.add_argument("--skip-hd", action="store_true", help="Leave out the plate-resolution (1080p) case.")
    add_progress_argument(p)
    p.add_argument("-v", "--verbose", action="store_true", help="Log what the engine does.")
    add_manifest_arguments(p)
    return p


HD = (1920, 1080)  # the plate-resolution case: the demo shot enlarged to 1080p
PICTURE_FRAME = 1010


def plate_resolution_case(out: Path, model: Path, params: dict, progress: str,
                          cancel: threading.Event) -> tuple[dict[str, float], Path]:
    """The shot enlarged to 1080p, rendered with the fine-tuned model twice: the network's 480 px answer
    enlarged bilinearly, and with plate-resolution edges (``edge_refine``: the plate guides it). Returns J
    of each against the enlarged ground truth and a picture: plate, both mattes, and 4x crops of an edge."""
    import cv2

    hd = out / "hd"
    (hd / "plate").mkdir(parents=True, exist_ok=True)
    frames = [f for f, _ in resolve_sequence(PLATE)]
    for f in frames:
        img = cv2.imread(format_frame_path(PLATE, f))
        cv2.imwrite(str(hd / "plate" / f"bear.{f}.png"), cv2.resize(img, HD, interpolation=cv2.INTER_CUBIC))
    plate = str(hd / "plate" / "bear.####.png")
    scores, mattes = {}, {}
    for name, extra in (("bilinear", {"edge_refine": False}), ("plate edges", {"edge_refine": True})):
        folder = hd / name.replace(" ", "_")
        job = RenderJob(source=plate, output=str(folder / "bear.####.exr"), params={**params, **extra},
                        load_model=model, overwrite=True)
        print(f"osvos-demo: the shot at {HD[0]}x{HD[1]}, {name}")
        run_job(job, progress, cancel)
        js = []
        for f in frames[1:-1]:
            truth = cv2.resize(read_mask(format_frame_path(TRUTH, f), allow_empty=True), HD,
                               interpolation=cv2.INTER_LINEAR) > 0.5
            js.append(jaccard(truth, read_mask(format_frame_path(job.output, f), allow_empty=True) > 0.5))
        scores[name] = float(np.mean(js))
        mattes[name] = read_mask(format_frame_path(job.output, PICTURE_FRAME), allow_empty=True)
    rgb = read_plate(format_frame_path(plate, PICTURE_FRAME)).rgb
    return scores, _edge_picture(rgb, mattes, out / "edges.png")


def _edge_picture(rgb: np.ndarray, mattes: dict[str, np.ndarray], path: Path) -> Path:
    """Top: the plate and each matte; bottom: the same 4x around a point of the matte's edge."""
    import cv2

    h, w = rgb.shape[:2]
    panel = (640, 360)
    first = next(iter(mattes.values())) > 0.5
    ys, xs = np.nonzero(first & ~cv2.erode(first.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool))
    k = int(np.argmin(ys)) if len(ys) else 0  # the top of the object's outline
    cy, cx = (int(ys[k]), int(xs[k])) if len(ys) else (h // 2, w // 2)
    ch, cw = panel[1] // 4, panel[0] // 4
    y0, x0 = int(np.clip(cy - ch // 2, 0, h - ch)), int(np.clip(cx - cw // 2, 0, w - cw))
    plate8 = (np.clip(rgb, 0, 1) * 255).round().astype(np.uint8)
    views = [("plate", plate8)] + [(name, np.repeat((np.clip(m, 0, 1) * 255).round().astype(np.uint8)[..., None], 3, 2))
                                   for name, m in mattes.items()]
    top, bottom = [], []
    for name, img in views:
        full = cv2.resize(img, panel, interpolation=cv2.INTER_AREA)
        crop = cv2.resize(img[y0:y0 + ch, x0:x0 + cw], panel, interpolation=cv2.INTER_NEAREST)
        for pic, label in ((full, name), (crop, f"{name}, 4x")):
            cv2.putText(pic, label, (12, 30), cv2.FONT_HERSHEY_SIMPLEX, 0.8, (255, 60, 40), 2, cv2.LINE_AA)
        cv2.rectangle(full, (x0 * panel[0] // w, y0 * panel[1] // h),
                      ((x0 + cw) * panel[0] // w, (y0 + ch) * panel[1] // h), (255, 60, 40), 2)
        top.append(full)
        bottom.append(crop)
    picture = np.vstack([np.hstack(top), np.hstack(bottom)])
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), cv2.cvtColor(picture, cv2.COLOR_RGB2BGR))
    return path


def _main(args: argparse.Namespace, cancel: threading.Event) -> int:
    out = args.output_dir
    output = str(out / "mattes" / "bear.####.exr")
    # the 1080p case uses the fine-tuned model the render keeps beside its mattes (or saves, without Keep Model)
    keep = RenderSettings.resolve(manifest_values(args)).keep_model
    model = kept_model_path(output) if keep else out / "model" / "bear.safetensors"
    job = RenderJob(source=PLATE, output=output, keyframes=[Keyframe(format_frame_path(TRUTH, FIRST), FIRST)],
                    params=manifest_values(args), parent=args.parent, overwrite=True,
                    save_model=None if keep else model)
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
    if not args.skip_hd:
        scores, picture = plate_resolution_case(out, model, manifest_values(args), args.progress, cancel)
        print(f"at {HD[0]}x{HD[1]}: J " + ", ".join(f"{name} {v:.3f}" for name, v in scores.items())
              + f"; picture: {picture}")
    return 0


def main(argv: list[str] | None = None) -> int:
    return run(build_parser(), _main, argv, stopping="stopping after the current frames",
               interrupted="interrupted; run osvos-demo again to start over.", input_errors=(ValueError,))


if __name__ == "__main__":
    sys.exit(main())
