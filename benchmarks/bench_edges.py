"""Edges decided at plate resolution (issue 17), measured on held-out sequences.

The 1080p / UHD situation in miniature: the network at ``process_size`` 240 on the 854x480 plates (the
edge decided at a quarter of the plate's pixels), its probability brought to the plate bilinearly or with
the plate as the guide (``edge_refine``), against the network at 480. Per sequence one fine-tune at each
size (frame 0's ground truth, plugin.json's recipe), then every frame segmented once per upsampling, and
each matte variant (hard; the old soft matte; the edge ramp of ``edge_softness``; a grown or shrunk edge)
derived from the same probabilities. Reported per variant:

- J and F of the matte taken at alpha >= 0.5 (first and last frames excluded, as DAVIS does);
- ``core1`` / ``bg0``: the share of the object's core (the ground truth eroded by 5 px) where the alpha is
  exactly 1, and of the far background (beyond 10 px of it) where it is exactly 0;
- ``flicker``: mean |alpha(t) - alpha(t-1)| x 1000 over the static pixels near the edge (within 8 px of
  the ground truth's edge at both frames, the ground truth unchanged there, the plate changed by under
  3% there), i.e. what the refinement adds frame to frame where nothing moved.

``--timing`` instead times the upsampling alone (bilinear, guided), the alpha's one-pixel ramp and the Core
Threshold's regions (``hold_cores``) per frame at 1920x1080 and 3840x2160 on this machine (frame 0 of the
first sequence, its ground truth as the probability at 480x270; the best of three).

    .venv/bin/python benchmarks/bench_edges.py --parent <held-out twin> --json edges.json

The sequences must be held out from the parent's training (the default: the five held out). Never DAVIS val.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np

from osvos_plugin.data.davis import default_davis_root, load_sequence
from osvos_plugin.evaluation.metrics import f_measure, jaccard
from osvos_plugin.finetune import finetune
from osvos_plugin.inference import Segmenter
from osvos_plugin.parent import HELD_OUT, seen_sequences
from osvos_plugin.settings import RenderSettings
from osvos_plugin.weights import load_checkpoint

log = logging.getLogger("bench_edges")

# (network size, guided upsampling) -> the matte variants derived from its probabilities
RUNS = {
    "480 bilinear": (480, False),
    "240 bilinear": (240, False),
    "240 guided": (240, True),
    "480 guided": (480, True),
}
MATTES = {  # name -> InferenceConfig overrides
    "hard": {},
    "soft (re-centred)": {"soft": True},
    "softness 1": {"edge_softness": 1.0},
    "softness 2": {"edge_softness": 2.0},
    "grow -1, softness 1": {"edge_grow": -1.0, "edge_softness": 1.0},
}


def _ring(gt: np.ndarray, inner: int, outer: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(core: gt eroded by ``inner``, far background: beyond ``outer`` of gt, band: within 8 px of the edge)."""
    g = gt.astype(np.uint8)
    k = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * inner + 1, 2 * inner + 1))
    core = cv2.erode(g, k).astype(bool)
    k = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * outer + 1, 2 * outer + 1))
    far = ~cv2.dilate(g, k).astype(bool)
    k = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (17, 17))
    band = cv2.dilate(g, k).astype(bool) & ~cv2.erode(g, k).astype(bool)
    return core, far, band


def matte_scores(frames: list[np.ndarray], gts: list[np.ndarray], alphas: list[np.ndarray]) -> dict[str, float]:
    """J, F, core1, bg0 and flicker (see the module docstring) of one variant's alphas."""
    inner = range(1, len(frames) - 1)
    js, fs, core1, bg0 = [], [], [], []
    for i in inner:
        pred = alphas[i] >= 0.5
        js.append(jaccard(gts[i], pred))
        fs.append(f_measure(gts[i], pred))
        core, far, _ = _ring(gts[i], 5, 10)
        if core.any():
            core1.append(float((alphas[i][core] == 1.0).mean()))
        if far.any():
            bg0.append(float((alphas[i][far] == 0.0).mean()))
    diffs = []
    for i in range(1, len(frames)):
        _, _, band_a = _ring(gts[i], 5, 10)
        _, _, band_b = _ring(gts[i - 1], 5, 10)
        still = (np.abs(frames[i] - frames[i - 1]).max(axis=2) < 0.03) & (gts[i] == gts[i - 1]) & band_a & band_b
        if still.sum() >= 50:
            diffs.append(float(np.abs(alphas[i][still] - alphas[i - 1][still]).mean()))
    return {"J": float(np.mean(js)), "F": float(np.mean(fs)), "core1": float(np.mean(core1)) if core1 else 1.0,
            "bg0": float(np.mean(bg0)), "flicker": 1000 * float(np.mean(diffs)) if diffs else float("nan"),
            "flicker_frames": len(diffs)}


def run_sequence(parent, root: Path, name: str, settings: RenderSettings, runs: dict) -> list[dict]:
    seq = load_sequence(root, name)
    frames = [f.astype(np.float32) / 255 for f in seq.frames]
    gts = [m > 127 for m in seq.masks]
    keyframe = [(frames[0], gts[0].astype(np.float32))]
    models: dict[int, tuple[object, float]] = {}
    rows = []
    for run, (size, guided) in runs.items():
        if size not in models:
            t = time.perf_counter()
            models[size] = (finetune(parent, keyframe, replace(settings.finetune(), process_size=size)),
                            time.perf_counter() - t)
        model, ft_s = models[size]
        base = replace(settings.inference(), process_size=size, edge_refine=guided)
        seg = Segmenter(model, base)
        t = time.perf_counter()
        probs = []
        for i in range(0, len(frames), settings.batch_size):
            probs.extend(seg.probabilities(frames[i:i + settings.batch_size]))
        infer_s = (time.perf_counter() - t) / len(frames)
        for matte, overrides in MATTES.items():
            rule = Segmenter(model, replace(base, **overrides))
            alphas = [rule.matte(p) for p in probs]
            row = {"sequence": name, "run": run, "matte": matte, "finetune_s": ft_s, "infer_s_per_frame": infer_s,
                   **matte_scores(frames, gts, alphas)}
            log.info("%-17s %-13s %-20s J %.3f F %.3f core1 %.3f bg0 %.3f flicker %.2f", name, run, matte,
                     row["J"], row["F"], row["core1"], row["bg0"], row["flicker"])
            rows.append(row)
    return rows


def timing(root: Path, name: str, repeats: int = 3) -> list[dict]:
    """Seconds per frame of the upsampling alone (bilinear vs guided) at 1080p and UHD, network at 480."""
    import torch
    import torch.nn.functional as F

    from osvos_plugin.edges import alpha_from_probability, guided_upsample
    from osvos_plugin.inference import EDGE_EPS, EDGE_RADIUS, hold_cores

    seq = load_sequence(root, name)
    prob = np.clip(seq.masks[0].astype(np.float32) / 255, 0, 1)
    small = cv2.resize(prob, (480, 270), interpolation=cv2.INTER_AREA)
    rows = []
    for label, (w, h) in {"1920x1080": (1920, 1080), "3840x2160": (3840, 2160)}.items():
        plate = cv2.resize(seq.frames[0].astype(np.float32) / 255, (w, h), interpolation=cv2.INTER_LINEAR)
        out = {}
        up = guided_upsample(small, plate, EDGE_RADIUS * 0.5 * (h / 270 + w / 480), EDGE_EPS)
        for how in ("bilinear", "guided", "softness 1", "core threshold"):
            best = float("inf")
            for _ in range(repeats):
                t = time.perf_counter()
                if how == "bilinear":
                    F.interpolate(torch.from_numpy(small)[None, None], size=(h, w), mode="bilinear",
                                  align_corners=False).numpy()
                elif how == "guided":
                    guided_upsample(small, plate, EDGE_RADIUS * 0.5 * (h / 270 + w / 480), EDGE_EPS)
                elif how == "softness 1":  # the alpha's one-pixel ramp, on the guided probability
                    alpha_from_probability(up, 0.75, 1.0)
                else:  # the regions above the Threshold and their cores, on the guided probability
                    hold_cores(up, 0.65, 0.95)
                best = min(best, time.perf_counter() - t)
            out[how] = best
        rows.append({"size": label, **{f"{k}_s": v for k, v in out.items()}})
        log.info("%s: bilinear %.3f s, guided %.3f s, softness-1 alpha %.3f s, core threshold %.3f s a frame", label,
                 out["bilinear"], out["guided"], out["softness 1"], out["core threshold"])
    return rows


def summarise(rows: list[dict]) -> None:
    """Markdown: the mean over sequences per (run, matte), then J per sequence for the hard mattes."""
    keys = sorted({(r["run"], r["matte"]) for r in rows}, key=lambda k: (list(RUNS).index(k[0]),
                                                                         list(MATTES).index(k[1])))
    print("| network, upsampling | matte | J | F | J&F | core at 1 | far bg at 0 | flicker (x1000) | s/frame |")
    print("|---|---|---|---|---|---|---|---|---|")
    for run, matte in keys:
        sel = [r for r in rows if r["run"] == run and r["matte"] == matte]
        m = {k: float(np.nanmean([r[k] for r in sel])) for k in ("J", "F", "core1", "bg0", "flicker",
                                                                 "infer_s_per_frame")}
        print(f"| {run} | {matte} | {m['J']:.3f} | {m['F']:.3f} | {(m['J'] + m['F']) / 2:.3f} | {m['core1']:.3f} | "
              f"{m['bg0']:.4f} | {m['flicker']:.2f} | {m['infer_s_per_frame']:.3f} |")
    seqs = sorted({r["sequence"] for r in rows})
    print("\n| network, upsampling (hard matte) | " + " | ".join(seqs) + " |")
    print("|---|" + "---|" * len(seqs))
    for run in RUNS:
        sel = {r["sequence"]: r for r in rows if r["run"] == run and r["matte"] == "hard"}
        if sel:
            print(f"| {run} | " + " | ".join(f"{sel[s]['J']:.3f} / {sel[s]['F']:.3f}" if s in sel else "-"
                                             for s in seqs) + " |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--parent", help="A parent trained without the sequences (e.g. --hold-out).")
    ap.add_argument("--davis-root", type=Path, default=None)
    ap.add_argument("--sequences", default=",".join(HELD_OUT))
    ap.add_argument("--runs", default=",".join(RUNS), help="Which of: " + ", ".join(RUNS))
    ap.add_argument("--iterations", type=int, default=None, help="Fine-tuning steps (default: plugin.json's)")
    ap.add_argument("--allow-seen", action="store_true", help="Run even if the parent saw a sequence.")
    ap.add_argument("--timing", action="store_true", help="Only time the upsampling at 1080p and UHD.")
    ap.add_argument("--summarise", type=Path, default=None, help="Only print the tables of this JSON file.")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.summarise:
        summarise(json.loads(args.summarise.read_text())["rows"])
        return
    root = args.davis_root or default_davis_root()
    names = args.sequences.split(",")
    if args.timing:
        rows = timing(root, names[0])
        if args.json:
            args.json.write_text(json.dumps({"timing": rows}, indent=1))
        return
    if not args.parent:
        ap.error("--parent is required")
    parent, info = load_checkpoint(args.parent)
    seen = seen_sequences(info.provenance, names)
    if seen and not args.allow_seen:
        raise SystemExit(f"{args.parent} was trained on {', '.join(seen)}: use a parent that held them out "
                         "(osvos-train-parent --hold-out), or --allow-seen")
    params = {} if args.iterations is None else {"iterations": args.iterations}
    settings = RenderSettings.resolve(params)
    runs = {k: RUNS[k] for k in args.runs.split(",")}
    rows = [r for name in names for r in run_sequence(parent, root, name, settings, runs)]
    summarise(rows)
    if args.json:
        args.json.write_text(json.dumps({"parent": args.parent, "settings": settings.as_params(), "rows": rows},
                                        indent=1))


if __name__ == "__main__":
    main()
