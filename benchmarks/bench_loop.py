"""The artist's loop on held-out sequences (issue 19), as an artist would run it.

Per sequence: fine-tune the parent on frame 0's ground truth and segment every frame (the first render);
take the worst-scoring frame, add its ground truth as a keyframe and continue from the first render's
model for ``continue_iterations`` steps (a correction, as a render with the kept model does), against a
full fine-tune from the parent on both keyframes. Also scored:
- the frames-to-check report of the first render (``osvos_plugin.review``, on the mattes a default render
  writes) against the frames that score J < 0.5: precision and recall of the flag;
- whether a confidence floor could empty the matte where the object is hidden or gone: J on the frames
  whose ground truth is empty, and on the others, if frames under each floor were written empty.

    .venv/bin/python benchmarks/bench_loop.py --parent /work/runs/twin-heldout/parent.safetensors \
        --json loop.json

The sequences must be held out from the parent's training (the default: the five held out); a parent
whose record lists one of them is refused unless ``--allow-seen``. Never DAVIS val.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from osvos_plugin.data.davis import default_davis_root, load_sequence
from osvos_plugin.evaluation.metrics import jaccard
from osvos_plugin.finetune import finetune
from osvos_plugin.inference import Segmenter
from osvos_plugin.parent import HELD_OUT, seen_sequences
from osvos_plugin.review import matte_stats, review
from osvos_plugin.settings import RenderSettings
from osvos_plugin.weights import load_checkpoint

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_quality import finetune_overrides  # noqa: E402  (a sibling script)

log = logging.getLogger("bench_loop")
FLOORS = (0.2, 0.3, 0.4, 0.5)


def flag_scores(flagged: set[int], scores: dict[int, float], bad: float = 0.5) -> dict[str, float | int]:
    """Precision and recall of ``flagged`` frames against the frames scoring under ``bad``."""
    worst = {f for f, j in scores.items() if j < bad}
    hit = len(flagged & worst)
    return {"flagged": len(flagged), "bad": len(worst), "hit": hit,
            "precision": hit / len(flagged) if flagged else float("nan"),
            "recall": hit / len(worst) if worst else float("nan")}


def confidence(prob: np.ndarray) -> float:
    """The review's confidence of a soft matte: mean |2p - 1| where p > 0.01 (1.0 where nothing is)."""
    some = prob > 0.01
    return float(np.abs(2.0 * prob[some] - 1.0).mean()) if some.any() else 1.0


def floor_effect(gts: list[np.ndarray], preds: list[np.ndarray], confs: list[float],
                 floors: tuple[float, ...] = FLOORS) -> list[dict]:
    """Mean J on empty-truth frames and on the others when frames under each confidence floor are emptied."""
    empty = [not g.any() for g in gts]
    rows = []
    for floor in (0.0, *floors):
        js = [jaccard(g, np.zeros_like(p) if c < floor else p) for g, p, c in zip(gts, preds, confs, strict=True)]
        hidden = [j for j, e in zip(js, empty, strict=True) if e]
        seen = [j for j, e in zip(js, empty, strict=True) if not e]
        rows.append({"floor": floor, "emptied": sum(c < floor for c in confs),
                     "J_hidden": float(np.mean(hidden)) if hidden else float("nan"),
                     "J_visible": float(np.mean(seen)) if seen else float("nan")})
    return rows


def _segment(model, settings: RenderSettings, frames: list[np.ndarray]) -> tuple[list[np.ndarray], list[float]]:
    seg = Segmenter(model, settings.inference())
    preds, confs = [], []
    for i in range(0, len(frames), settings.batch_size):
        for prob in seg.probabilities(frames[i:i + settings.batch_size]):
            preds.append(seg.matte(prob) > 0.5)
            confs.append(confidence(prob))
    return preds, confs


def _with(cfg, overrides: dict):
    overrides = dict(overrides)
    return replace(cfg, augment=replace(cfg.augment, **overrides.pop("augment", {})), **overrides)


def run_sequence(parent, root: Path, name: str, settings: RenderSettings, overrides: dict | None = None,
                 full: bool = True, continue_overrides: dict | None = None) -> dict:
    """The loop on one sequence; ``overrides``: FinetuneConfig fields for every fine-tune (``--finetune``),
    ``continue_overrides`` for the correction alone, on top of them (``--continue-finetune``); ``full``: also
    the full fine-tune on both keyframes."""
    seq = load_sequence(root, name)
    frames = [f.astype(np.float32) / 255 for f in seq.frames]
    gts = [m > 127 for m in seq.masks]
    first = (frames[0], gts[0].astype(np.float32))
    cfg = _with(settings.finetune(), overrides or {})
    out: dict = {"sequence": name, "frames": len(frames)}

    t = time.perf_counter()
    model = finetune(parent, [first], cfg)
    out["first_finetune_s"] = time.perf_counter() - t
    preds, confs = _segment(model, settings, frames)
    scores = {i: jaccard(g, p) for i, (g, p) in enumerate(zip(gts, preds, strict=True))}
    out["J_first"] = float(np.mean([scores[i] for i in range(1, len(frames) - 1)]))
    report = review([matte_stats(i, p.astype(np.float32)) for i, p in enumerate(preds)])
    flagged = {f for ranges in report.flagged.values() for a, b in ranges for f in range(a, b + 1)}
    out["flag"] = flag_scores(flagged, {i: j for i, j in scores.items() if 0 < i < len(frames) - 1})
    out["flag_sentence"] = report.sentence
    out["confidence_floor"] = floor_effect(gts[1:-1], preds[1:-1], confs[1:-1])

    candidates = [i for i in range(1, len(frames) - 1) if gts[i].any()]
    worst = min(candidates, key=lambda i: scores[i])
    second = (frames[worst], gts[worst].astype(np.float32))
    out.update(worst_frame=worst, J_worst_before=scores[worst])

    t = time.perf_counter()
    continued = finetune(model, [first, second], _with(replace(cfg, iterations=settings.continue_iterations),
                                                       continue_overrides or {}))
    out["continue_s"] = time.perf_counter() - t
    preds_c, _ = _segment(continued, settings, frames)
    inner = range(1, len(frames) - 1)
    out["J_continued"] = float(np.mean([jaccard(gts[i], preds_c[i]) for i in inner]))
    out["J_full"], out["full_s"] = float("nan"), float("nan")
    if full:
        t = time.perf_counter()
        model_f = finetune(parent, [first, second], cfg)
        out["full_s"] = time.perf_counter() - t
        preds_f, _ = _segment(model_f, settings, frames)
        out["J_full"] = float(np.mean([jaccard(gts[i], preds_f[i]) for i in inner]))
    log.info("%-18s J %.3f -> continued %.3f (%.0f s) / full %.3f (%.0f s); flag P %.2f R %.2f", name,
             out["J_first"], out["J_continued"], out["continue_s"], out["J_full"], out["full_s"],
             out["flag"]["precision"], out["flag"]["recall"])
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--parent", required=True, help="A parent trained without the sequences (e.g. --hold-out).")
    ap.add_argument("--davis-root", type=Path, default=None)
    ap.add_argument("--sequences", default=",".join(HELD_OUT))
    ap.add_argument("--allow-seen", action="store_true", help="Run even if the parent saw a sequence.")
    ap.add_argument("--iterations", type=int, default=None, help="Fine-tuning steps (default: plugin.json's)")
    ap.add_argument("--finetune", default="", metavar="FIELD=VALUE,...",
                    help="FinetuneConfig fields for every fine-tune, as bench_quality.py takes them")
    ap.add_argument("--continue-finetune", default="", metavar="FIELD=VALUE,...",
                    help="FinetuneConfig fields for the correction alone, on top of --finetune's")
    ap.add_argument("--no-full", dest="full", action="store_false",
                    help="Leave out the full fine-tune on both keyframes (the correction alone)")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    try:
        overrides = finetune_overrides(args.finetune)
        continue_overrides = finetune_overrides(args.continue_finetune, "--continue-finetune")
    except ValueError as e:
        ap.error(str(e))
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    parent, info = load_checkpoint(args.parent)
    names = args.sequences.split(",")
    seen = seen_sequences(info.provenance, names)
    if seen and not args.allow_seen:
        raise SystemExit(f"{args.parent} was trained on {', '.join(seen)}: use a parent that held them out "
                         "(osvos-train-parent --hold-out), or --allow-seen")
    settings = RenderSettings.resolve({} if args.iterations is None else {"iterations": args.iterations})
    root = args.davis_root or default_davis_root()
    rows = [run_sequence(parent, root, name, settings, overrides, args.full, continue_overrides) for name in names]
    print("| sequence | J first render | worst frame (J) | J continued (s) | J full fine-tune (s) | flag P / R |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['sequence']} | {r['J_first']:.3f} | {r['worst_frame']} ({r['J_worst_before']:.2f}) | "
              f"{r['J_continued']:.3f} ({r['continue_s']:.0f}) | {r['J_full']:.3f} ({r['full_s']:.0f}) | "
              f"{r['flag']['precision']:.2f} / {r['flag']['recall']:.2f} |")
    if args.json:
        record = {"parent": args.parent, "settings": settings.as_params(), "finetune": args.finetune,
                  "continue_finetune": args.continue_finetune, "rows": rows}
        args.json.write_text(json.dumps(record, indent=1, default=float))


if __name__ == "__main__":
    main()
