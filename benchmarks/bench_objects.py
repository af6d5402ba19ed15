"""Several objects: one network per object (the default, the paper's multi-object OSVOS) against one shared
network with a score per object, on shots composited from two DAVIS sequences, scored per object the
DAVIS-2017 way.

A shot pastes sequence B's object (its ground-truth mask, frame by frame) over sequence A's frames, so
both objects have exact masks and A's object is partly hidden where B's passes in front of it. Both
methods fine-tune on frame 0 with the same budget per network, through the engine's own ``finetune`` and
``Segmenter`` (the ``object_networks`` parameter), and segment every ``--stride``-th frame:
- per_object: a network per object, each pixel to the most probable object above the threshold;
- shared: one network, one score per object, objects and background competing per pixel.

    .venv/bin/python benchmarks/bench_objects.py --pairs bear+dog-agility,kite-walk+soccerball \
        --iterations 100 --process-size 240

Figures go to BENCHMARKS.md (time) and the model card (quality), with the machine named.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from osvos_plugin.data.davis import default_davis_root, load_sequence
from osvos_plugin.evaluation import evaluate_objects
from osvos_plugin.finetune import finetune
from osvos_plugin.inference import Segmenter
from osvos_plugin.models import load_parent
from osvos_plugin.settings import RenderSettings


def composite(root: Path, a: str, *pasted: str) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Frames of ``a`` with each ``pasted`` sequence's object pasted over them in turn, and label images
    (1: a's object, 2: the first pasted one's, ...)."""
    seqs = [load_sequence(root, name) for name in (a, *pasted)]
    n = min(len(s.frames) for s in seqs)
    frames, labels = [], []
    for i in range(n):
        img = seqs[0].frames[i].astype(np.float32) / 255
        lab = np.where(seqs[0].masks[i] > 127, 1, 0).astype(np.uint8)
        for k, seq in enumerate(seqs[1:], start=2):
            over = seq.masks[i] > 127
            img[over] = seq.frames[i][over].astype(np.float32) / 255
            lab[over] = k
        frames.append(img)
        labels.append(lab)
    return frames, labels


def timing(parent, frames, labels, settings: RenderSettings, methods: tuple[str, ...]) -> list[dict]:
    """Fine-tuning seconds a step and inference seconds a frame for 1, 2, ... objects (the first k of the
    composite's), each method, at the settings' size and precision."""
    rows = []
    count = int(labels[0].max())
    sample = frames[:6]
    for k in range(1, count + 1):
        masks0 = np.stack([(labels[0] == j).astype(np.float32) for j in range(1, k + 1)])
        for method in methods if k > 1 else methods[:1]:
            cfg = replace(settings.finetune(), object_networks=method)
            t = time.perf_counter()
            model = finetune(parent, [(frames[0], masks0 if k > 1 else masks0[0])], cfg)
            step_s = (time.perf_counter() - t) / max(1, cfg.iterations)
            seg = Segmenter(model, settings.inference())
            seg.probabilities(sample[:1])  # warm-up
            t = time.perf_counter()
            for i in range(0, len(sample), settings.batch_size):
                seg.probabilities(sample[i:i + settings.batch_size])
            frame_s = (time.perf_counter() - t) / len(sample)
            rows.append({"objects": k, "method": method if k > 1 else "one object", "finetune_step_s": step_s,
                         "infer_frame_s": frame_s})
            print(f"| {k} | {rows[-1]['method']} | {step_s:.2f} | {frame_s:.2f} |", flush=True)
    return rows


def run_pair(parent, frames, labels, settings: RenderSettings, stride: int,
             methods: tuple[str, ...] = ("per_object", "shared"), objects: int = 2) -> dict:
    masks0 = np.stack([(labels[0] == k).astype(np.float32) for k in range(1, objects + 1)])
    idx = list(range(0, len(frames), stride))
    out = {}
    for method in methods:
        t = time.perf_counter()
        start, networks = parent, method
        if method == "shared_ovr":  # scouting: the shared network, each object's score its own one-vs-rest
            start, networks = parent.with_objects(objects), "shared"
            start.exclusive_objects = False  # per-object sigmoid losses; decided on the maximum
            start.probabilities = torch.sigmoid
        model = finetune(start, [(frames[0], masks0)], replace(settings.finetune(), object_networks=networks))
        out[f"{method}_finetune_s"] = time.perf_counter() - t
        seg = Segmenter(model, settings.inference())
        pred = []
        for i in idx:
            matte = seg.matte(seg.probabilities([frames[i]])[0])  # (K, H, W), a pixel to one object at most
            pred.append(np.where(matte.max(0) > 0.5, matte.argmax(0) + 1, 0).astype(np.uint8))
        out[method] = evaluate_objects([labels[i] for i in idx], pred)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--davis-root", type=Path, default=None)
    ap.add_argument("--pairs", default="bear+dog-agility,kite-walk+soccerball",
                    help="Shots, comma-separated: A+B pastes B's object over A's frames (A+B+C: three objects).")
    ap.add_argument("--parent", default=None, help="Parent checkpoint (default: the shipped one); for held-out "
                    "figures one trained without the shots' sequences (osvos-train-parent --hold-out).")
    ap.add_argument("--iterations", type=int, default=None, help="(default: plugin.json's)")
    ap.add_argument("--process-size", type=int, default=None, help="(default: plugin.json's)")
    ap.add_argument("--stride", type=int, default=2, help="Score every n-th frame.")
    ap.add_argument("--methods", default="per_object,shared",
                    help="object_networks values to compare; shared_ovr (scouting): one shared network whose "
                    "object scores are each trained one-vs-rest, as per_object's networks are")
    ap.add_argument("--timing", default="", metavar="A+B+C",
                    help="Instead of scoring: time fine-tuning (per step) and inference (per frame) for 1, 2 and 3 "
                    "objects of this composite, e.g. bear+dog-agility+soccerball.")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    asked = {"iterations": args.iterations, "process_size": args.process_size}
    settings = RenderSettings.resolve({k: v for k, v in asked.items() if v is not None})
    parent = load_parent(args.parent)
    root = args.davis_root or default_davis_root()
    rows = []
    if args.timing:
        print("| objects | method | fine-tune s/step | inference s/frame |\n|---|---|---|---|")
        frames, labels = composite(root, *args.timing.split("+"))
        rows = timing(parent, frames, labels, settings, tuple(args.methods.split(",")))
        if args.json:
            args.json.write_text(json.dumps({"settings": settings.as_params(), "rows": rows}, indent=1))
        return
    print("| shot (A + pasted B) | method | J | F | J&F | fine-tune (s) |\n|---|---|---|---|---|---|")
    for pair in args.pairs.split(","):
        names = pair.split("+")
        frames, labels = composite(root, *names)
        methods = tuple(args.methods.split(","))
        res = run_pair(parent, frames, labels, replace(settings), args.stride, methods, len(names))
        for method in methods:
            r = res[method]
            rows.append({"pair": pair, "method": method, "J": r.J.mean, "F": r.F.mean,
                         "finetune_s": res[f"{method}_finetune_s"]})
            print(f"| {pair} | {method} | {r.J.mean:.3f} | {r.F.mean:.3f} | {(r.J.mean + r.F.mean) / 2:.3f} | "
                  f"{res[f'{method}_finetune_s']:.0f} |", flush=True)
    if args.json:
        args.json.write_text(json.dumps({"settings": settings.as_params(), "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
