"""Fold validation (issue 16): each fold's sequences segmented with the parent trained without that fold.

For every recipe variant, fold and sequence: fine-tune the fold's parent on frame 0's ground truth as a
render would (plugin.json's defaults, overridden by the variant), segment every frame, and score J and F
(DAVIS metrics, first and last frames excluded) at several thresholds from the same probabilities, plus a
threshold the shot picks for itself (``calib``: the one that best reproduces the painted mask on views of
the keyframe the fine-tuning did not see exactly: shrunk, zoomed and shifted). A change is worth adopting
only when it wins on most sequences of both folds, not only on the mean, so the summary counts wins
per fold against the first variant.

Jobs run in parallel processes (``--jobs``), which on a GPU keeps it busy while one process is bound by
its host; results go to a JSON-lines file as they finish, and ``--summarise`` prints the tables again.

    .venv/bin/python benchmarks/bench_folds.py --variants "base;ps854:process_size=854" \
        --jsonl folds.jsonl --jobs 2

with the fold parents of ``models/folds/`` (``--parent a=PATH`` for another).

DAVIS val is never used: the folds are DAVIS-2016 train sequences (``osvos_plugin.parent.FOLDS``).
"""

from __future__ import annotations

import argparse
import json
import logging
import multiprocessing as mp
import time
from pathlib import Path

import numpy as np

THRESHOLDS = (0.5, 0.6, 0.75, 0.85)
CALIB_GRID = tuple(np.round(np.arange(0.3, 0.951, 0.05), 2))


def parse_variants(text: str) -> list[tuple[str, dict]]:
    """``name:param=value,param=value;name2`` -> [(name, {param: value})] (values as JSON where they parse)."""
    out = []
    for part in filter(None, (p.strip() for p in text.split(";"))):
        name, _, rest = part.partition(":")
        params = {}
        for kv in filter(None, rest.split(",")):
            k, _, v = kv.partition("=")
            try:
                params[k.strip()] = json.loads(v)
            except json.JSONDecodeError:
                params[k.strip()] = v.strip()
        out.append((name.strip(), params))
    return out


def calibration_views(rgb: np.ndarray, mask: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    """Views of the keyframe unlike any one training sample: the frame shrunk to 0.6 inside a border, zoomed
    1.6x on the object, and shifted by a fifth of its width. Borders take the frame's median colour (a
    mirrored border could copy the object where the mask says background)."""
    import cv2

    h, w = mask.shape
    fill = [float(c) for c in np.median(rgb.reshape(-1, 3), axis=0)]
    views = []
    small = cv2.resize(rgb, (int(w * 0.6), int(h * 0.6)), interpolation=cv2.INTER_AREA)
    msmall = cv2.resize(mask, small.shape[1::-1], interpolation=cv2.INTER_LINEAR)
    top, left = (h - small.shape[0]) // 2, (w - small.shape[1]) // 2
    pad = (top, h - small.shape[0] - top, left, w - small.shape[1] - left)
    views.append((cv2.copyMakeBorder(small, *pad, cv2.BORDER_CONSTANT, value=fill),
                  cv2.copyMakeBorder(msmall, *pad, cv2.BORDER_CONSTANT, value=0)))
    ys, xs = np.nonzero(mask > 0.5)
    if len(ys):
        cy, cx = ys.mean(), xs.mean()
        ch, cw = h / 1.6, w / 1.6
        y0 = int(np.clip(cy - ch / 2, 0, h - ch))
        x0 = int(np.clip(cx - cw / 2, 0, w - cw))
        crop = (slice(y0, y0 + int(ch)), slice(x0, x0 + int(cw)))
        views.append((cv2.resize(rgb[crop], (w, h), interpolation=cv2.INTER_LINEAR),
                      cv2.resize(mask[crop], (w, h), interpolation=cv2.INTER_LINEAR)))
    dx = w // 5
    shift = np.float32([[1, 0, dx], [0, 1, 0]])
    views.append((cv2.warpAffine(rgb, shift, (w, h), borderMode=cv2.BORDER_CONSTANT, borderValue=fill),
                  cv2.warpAffine(mask, shift, (w, h), borderMode=cv2.BORDER_CONSTANT, borderValue=0)))
    return [(v, (m > 0.5)) for v, m in views]


def pick_threshold(probs: list[np.ndarray], masks: list[np.ndarray]) -> float:
    """The threshold of ``CALIB_GRID`` with the best mean IoU over (probability, mask) pairs."""

    def iou(t: float) -> float:
        vals = []
        for p, m in zip(probs, masks, strict=True):
            pred = p > t
            union = np.logical_or(pred, m).sum()
            vals.append(np.logical_and(pred, m).sum() / union if union else 1.0)
        return float(np.mean(vals))

    return max(CALIB_GRID, key=iou)


def run_job(job: dict) -> dict:
    """Fine-tune and score one (variant, fold, sequence); a failure is reported, not raised, so one bad job
    does not end the others."""
    try:
        return _run_job(job)
    except Exception as e:  # noqa: BLE001 - reported in the results
        logging.exception("%s %s %s failed", job["variant"], job["fold"], job["sequence"])
        return {k: job[k] for k in ("variant", "fold", "sequence")} | {"error": f"{type(e).__name__}: {e}"}


def _run_job(job: dict) -> dict:
    import torch

    from osvos_plugin.data.davis import load_sequence
    from osvos_plugin.evaluation.davis import evaluate_sequence
    from osvos_plugin.finetune import finetune
    from osvos_plugin.inference import Segmenter
    from osvos_plugin.models import load_parent
    from osvos_plugin.settings import RenderSettings

    out = {k: job[k] for k in ("variant", "fold", "sequence")}
    if time.time() > job["deadline"]:
        return {**out, "skipped": "deadline"}
    torch.set_num_threads(job["threads"])
    seq = load_sequence(job["root"], job["sequence"])
    idx = list(range(0, len(seq.frames), job["stride"]))
    rgb0 = seq.frames[0].astype(np.float32) / 255
    mask0 = (seq.masks[0] > 127).astype(np.float32)
    settings = RenderSettings.resolve(job["params"]).for_object(float(mask0.mean()))  # as a render sizes it
    t = time.perf_counter()
    model = finetune(load_parent(job["parent"]), [(rgb0, mask0)], settings.finetune())
    if settings.device.startswith("cuda") or torch.cuda.is_available():
        torch.cuda.synchronize()
    out["finetune_s"] = time.perf_counter() - t
    seg = Segmenter(model, settings.inference())
    t = time.perf_counter()
    probs = []
    for i in range(0, len(idx), 8):
        batch = [seq.frames[k].astype(np.float32) / 255 for k in idx[i:i + 8]]
        probs += seg.probabilities(batch)
    out["infer_s_per_frame"] = (time.perf_counter() - t) / len(idx)
    snapped = _snap_scores(seg, seq, idx, probs, job["snaps"], job["thresholds"]) if job.get("snaps") else {}
    views = calibration_views(rgb0, mask0)
    calib = pick_threshold(seg.probabilities([v for v, _ in views]), [m for _, m in views])
    out["calib_threshold"] = calib
    gts = [seq.masks[k] > 127 for k in idx]
    scores = {}
    for th in (*job["thresholds"], calib):
        res = evaluate_sequence(gts, [p > th for p in probs])
        key = "calib" if th == calib and th not in job["thresholds"] else f"{th:g}"
        scores[key] = {"J": float(res.J.mean), "F": float(res.F.mean)}
    if "calib" not in scores:
        scores["calib"] = scores[f"{calib:g}"]
    if snapped:
        out["contour_s_per_frame"] = snapped.pop("contour_s_per_frame")
        scores.update({f"snap {k}": v for k, v in snapped.items()})
    out["scores"] = scores
    out["frames"] = len(idx)
    return out


def _snap_scores(seg, seq, idx: list[int], probs: list[np.ndarray], snaps: list[tuple[str, dict]],
                 thresholds: list[float]) -> dict:
    """Boundary snapping after the fact, on the same probabilities: for each snapping config (``SnapConfig``
    fields) and threshold, J and F of the snapped masks, and the seconds per frame (contours, then regions
    and vote per config), exactly as ``Segmenter`` snaps with ``boundary_snap``."""
    import cv2
    import torch

    from osvos_plugin.evaluation.davis import evaluate_sequence
    from osvos_plugin.imaging import fit_long_side, resize
    from osvos_plugin.snapping import SnapConfig, snap_probability

    gts = [seq.masks[k] > 127 for k in idx]
    t = time.perf_counter()
    contours = []
    for k in idx:
        rgb = seq.frames[k].astype(np.float32) / 255
        h, w = rgb.shape[:2]
        x = resize(torch.from_numpy(rgb).permute(2, 0, 1)[None].to(seg.device),
                   fit_long_side(h, w, seg.cfg.process_size))
        contours.append(seg.contour_maps(x.to(seg.dtype))[0])
    out = {"contour_s_per_frame": (time.perf_counter() - t) / len(idx)}
    for name, params in snaps:
        cfg = SnapConfig(**params)
        for th in thresholds:
            t = time.perf_counter()
            masks = []
            for k, c, p in zip(idx, contours, probs, strict=True):
                rgb = seq.frames[k].astype(np.float32) / 255
                scale = 0.5 * (p.shape[0] / c.shape[0] + p.shape[1] / c.shape[1])
                cu = cv2.resize(c, p.shape[::-1], interpolation=cv2.INTER_LINEAR)
                masks.append(snap_probability(p, cu, rgb, th, cfg, scale) > th)
            res = evaluate_sequence(gts, masks)
            out[f"{name}@{th:g}"] = {"J": float(res.J.mean), "F": float(res.F.mean),
                                     "s_per_frame": (time.perf_counter() - t) / len(idx)}
    return out


def _jf(row: dict, key: str) -> float:
    return (row["scores"][key]["J"] + row["scores"][key]["F"]) / 2


def summarise(rows: list[dict]) -> str:
    """Markdown: per variant and threshold, J, F, J&F per fold and overall, and wins against the first row."""
    rows = [r for r in rows if "scores" in r]
    if not rows:
        return "no results"
    variants = list(dict.fromkeys(r["variant"] for r in rows))
    folds = sorted({r["fold"] for r in rows})
    keys = list(rows[0]["scores"])
    by = {(r["variant"], r["fold"], r["sequence"]): r for r in rows}
    base_v, base_k = variants[0], ("0.75" if "0.75" in keys else keys[0])
    lines = ["| variant | threshold | " + " | ".join(f"fold {f}: J / F / J&F (n) | wins" for f in folds)
             + " | all: J&F | fine-tune s | infer s/frame |",
             "|---|---|" + "---|---|" * len(folds) + "---|---|---|"]
    for v in variants:
        for k in keys:
            cells, alljf = [], []
            for f in folds:
                rs = [r for (vv, ff, _), r in by.items() if vv == v and ff == f]
                if not rs:
                    cells.append("- | -")
                    continue
                j = np.mean([r["scores"][k]["J"] for r in rs])
                fm = np.mean([r["scores"][k]["F"] for r in rs])
                alljf += [(r["scores"][k]["J"] + r["scores"][k]["F"]) / 2 for r in rs]
                wins = n = 0
                for r in rs:
                    b = by.get((base_v, f, r["sequence"]))
                    if b is None:
                        continue
                    n += 1
                    bjf = b["scores"][base_k]["J"] + b["scores"][base_k]["F"]
                    wins += (r["scores"][k]["J"] + r["scores"][k]["F"]) > bjf + 1e-9
                cells.append(f"{j:.3f} / {fm:.3f} / {(j + fm) / 2:.3f} ({len(rs)}) | {wins}/{n}")
            vr = [r for r in rows if r["variant"] == v]
            lines.append(f"| {v} | {k} | " + " | ".join(cells) + f" | {np.mean(alljf):.3f} | "
                         f"{np.mean([r['finetune_s'] for r in vr]):.1f} | "
                         f"{np.mean([r['infer_s_per_frame'] for r in vr]):.3f} |")
    lines += ["", f"Per sequence, J&F at threshold {base_k} (calib: the shot's own threshold):", "",
              "| fold | sequence | " + " | ".join(f"{v} | {v} calib" for v in variants) + " |",
              "|---|---|" + "---|---|" * len(variants)]
    for f in folds:
        for s in sorted({r["sequence"] for r in rows if r["fold"] == f}):
            cells = []
            for v in variants:
                r = by.get((v, f, s))
                if r is None:
                    cells.append("- | -")
                    continue
                cells.append(f"{_jf(r, base_k):.3f} | {_jf(r, 'calib'):.3f} ({r['calib_threshold']:g})")
            lines.append(f"| {f} | {s} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    from osvos_plugin.data.davis import default_davis_root
    from osvos_plugin.models import fold_parent_path
    from osvos_plugin.parent import FOLDS
    from osvos_plugin.weights import WeightsError

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--parent", action="append", default=[], metavar="FOLD=PATH",
                    help="The parent trained without FOLD (osvos-train-parent --hold-out-fold FOLD); repeatable. "
                         "Default: both folds, with the checkout's models/folds/fold-F.safetensors.")
    ap.add_argument("--davis-root", type=Path, default=None)
    ap.add_argument("--variants", default="base", help="name:param=value,...;name2:... (plugin.json names)")
    ap.add_argument("--common", default="", help="param=value,... applied to every variant (e.g. device=cuda)")
    ap.add_argument("--snap", default="", help="Boundary snapping configs scored after the fact on every "
                    "variant's probabilities: name:level=..,spacing=..,band=..;name2:...")
    ap.add_argument("--thresholds", default=",".join(f"{t:g}" for t in THRESHOLDS))
    ap.add_argument("--sequences", default=None, help="Only these (comma-separated); default: each fold's ten.")
    ap.add_argument("--stride", type=int, default=1, help="Score every n-th frame (cheaper on a CPU).")
    ap.add_argument("--jobs", type=int, default=1, help="Parallel processes.")
    ap.add_argument("--threads", type=int, default=None, help="torch threads per process (default: cores / jobs).")
    ap.add_argument("--deadline-s", type=float, default=None, help="Start no job after this many seconds.")
    ap.add_argument("--jsonl", type=Path, default=None, help="Append each result here as it finishes.")
    ap.add_argument("--summarise", type=Path, default=None, help="Only print the tables of this JSON-lines file.")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    if args.summarise:
        print(summarise([json.loads(line) for line in args.summarise.read_text().splitlines() if line.strip()]))
        return
    import os

    try:
        parents = dict(p.split("=", 1) for p in args.parent) or {f: str(fold_parent_path(f)) for f in FOLDS}
    except WeightsError as e:
        ap.error(str(e))
    common = parse_variants("x:" + args.common)[0][1] if args.common else {}
    wanted = set(args.sequences.split(",")) if args.sequences else None
    threads = args.threads or max(1, (os.cpu_count() or 1) // args.jobs)
    deadline = time.time() + args.deadline_s if args.deadline_s else float("inf")
    jobs = [
        {"variant": v, "params": {**common, **params}, "fold": fold, "sequence": s, "parent": parents[fold],
         "root": str(args.davis_root or default_davis_root()), "stride": args.stride, "threads": threads,
         "thresholds": [float(t) for t in args.thresholds.split(",")], "deadline": deadline,
         "snaps": parse_variants(args.snap)}
        for v, params in parse_variants(args.variants)
        for fold in sorted(parents)
        for s in FOLDS[fold]
        if wanted is None or s in wanted
    ]
    rows = []
    ctx = mp.get_context("spawn")
    with ctx.Pool(args.jobs) as pool:
        for r in pool.imap_unordered(run_job, jobs):
            rows.append(r)
            if "scores" in r:
                logging.info("%-8s %s %-18s J&F@0.75 %.3f calib %.3f (t=%g)  fine-tune %.1f s", r["variant"],
                             r["fold"], r["sequence"],
                             (r["scores"].get("0.75", r["scores"]["calib"])["J"]
                              + r["scores"].get("0.75", r["scores"]["calib"])["F"]) / 2,
                             (r["scores"]["calib"]["J"] + r["scores"]["calib"]["F"]) / 2, r["calib_threshold"],
                             r["finetune_s"])
            if args.jsonl:
                with open(args.jsonl, "a") as f:
                    f.write(json.dumps(r) + "\n")
    print(summarise(rows))


if __name__ == "__main__":
    main()
