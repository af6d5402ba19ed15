"""Segmenting each frame at more than one scale, scored on held-out sequences (issue 16's growing objects).

An object that comes closer than on the painted frame is seen by the network larger than any sample it
learnt from, and the matte covers a shrinking part of it (recall collapses, precision holds). Segmenting
the frame also at a smaller scale shows the grown object at a size it was taught, and is still one frame
at a time. Each sequence is fine-tuned on frame 0's ground truth as a render does (plugin.json's
defaults, Large Object Scale included; the fine-tuned model is kept under ``--cache`` and reused by later
runs with the same parent and settings), then every frame is segmented at the render's processing size
and at each ``--scales`` multiple of it (flip-averaged, in the render's precision). The probabilities are
brought to the processing size, combined, given the plate's edges as a render does (guided upsampling)
and cut at the threshold; scored with the DAVIS metrics (first and last frames excluded):

    .venv/bin/python benchmarks/bench_scales.py --parent <fold parent> --cache /tmp/scales \
        --sequences drift-turn,car-turn --scales 0.5,0.7

Combinations of the processing size's probability with one other scale's: ``mean``, ``max``, and
``grown`` (the other scale's where its matte is larger than the processing size's by more than
``--grown-ratio``, frame by frame; else the processing size's). And one rule over all the scales,
``taught F``: each frame at the largest scale at which the object, as the processing size's matte
outlines it (the square root of its bounding box's share of the frame, times the scale; ``taught F
part``: of its largest connected part's box), spans at most F
times the largest extent fine-tuning showed it at (the painted object's extent times the largest zoom:
0.5 for a small object, whose zoom follows it). This is an exploration
(results: docs/experiments.md); none of it is a node parameter.
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import importlib.util
import json
import logging
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np

from osvos_plugin.augment import largest_part_extent, object_extent
from osvos_plugin.augment import taught_extent as augment_taught_extent
from osvos_plugin.data.davis import DavisSequence, default_davis_root, load_sequence
from osvos_plugin.edges import guided_upsample
from osvos_plugin.evaluation.davis import evaluate_sequence
from osvos_plugin.finetune import finetune
from osvos_plugin.imaging import fit_long_side
from osvos_plugin.inference import EDGE_EPS, EDGE_RADIUS, Segmenter
from osvos_plugin.models import default_parent_path, load_parent
from osvos_plugin.network import OSVOSNet
from osvos_plugin.outputs import file_digest
from osvos_plugin.parent import HELD_OUT
from osvos_plugin.settings import RenderSettings
from osvos_plugin.weights import load_checkpoint, save_checkpoint

log = logging.getLogger("bench_scales")


def _sibling(name: str):  # noqa: ANN202 - a module
    spec = importlib.util.spec_from_file_location(name, Path(__file__).with_name(f"{name}.py"))
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


bench_follow = _sibling("bench_follow")  # the settings of a sequence's render, and the results table


def fine_tuned(parent: Callable[[], OSVOSNet], parent_path: Path, seq: DavisSequence, settings: RenderSettings,
               cache: Path | None) -> OSVOSNet:
    """``seq`` fine-tuned on frame 0 as a render does; kept under ``cache`` keyed by the parent's bytes and
    the fine-tuning settings, so a model made by anything else is made again, never reused."""
    key = hashlib.sha256(f"{file_digest(parent_path)}|{settings.finetune()!r}".encode()).hexdigest()[:16]
    path = None if cache is None else cache / f"{seq.name}-{key}.safetensors"
    if path is not None and path.is_file():
        return load_checkpoint(path)[0].eval()
    t = time.perf_counter()
    model = finetune(parent(), [(seq.frames[0].astype(np.float32) / 255, (seq.masks[0] > 127).astype(np.float32))],
                     settings.finetune())
    log.info("%s: fine-tuned in %.0f s", seq.name, time.perf_counter() - t)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        save_checkpoint(model, path, {"sequence": seq.name, "key": key})
    return model.eval()


def much_larger(base: np.ndarray, other: np.ndarray, threshold: float, ratio: float) -> bool:
    """Whether ``other``'s matte is over ``ratio`` times ``base``'s (in pixels at the processing size)."""
    return bool((other > threshold).sum() > ratio * max((base > threshold).sum(), 1))


def combine(base: np.ndarray, other: np.ndarray, how: str, threshold: float, grown_ratio: float) -> np.ndarray:
    """One frame's probability from the processing size's (``base``) and another scale's (``other``), both
    (h, w) at the processing size."""
    if how == "mean":
        return 0.5 * (base + other)
    if how == "max":
        return np.maximum(base, other)
    if how == "grown":
        return other if much_larger(base, other, threshold, grown_ratio) else base
    raise ValueError(f"unknown combination {how!r}")


def taught_extent(mask0: np.ndarray, settings: RenderSettings) -> float:
    """The largest extent fine-tuning shows the object painted as ``mask0`` at (the engine's
    ``augment.taught_extent``, what a fine-tuned model records)."""
    return augment_taught_extent([mask0], settings.finetune().augment)


OUTLINES = {"box": object_extent, "part": largest_part_extent}


def scale_for(probs: dict[float, np.ndarray], i: int, threshold: float, limit: float, outline: str = "box") -> float:
    """The largest scale of ``probs`` at which frame ``i``'s object, outlined on the scale-1 matte (``box``:
    the whole matte's bounding box; ``part``: its largest connected part's), spans at most ``limit`` (else
    the smallest scale)."""
    extent = OUTLINES[outline](probs[1.0][i] > threshold)
    fits = [s for s in probs if s * extent <= limit]
    return max(fits) if fits else min(probs)


def by_extent(probs: dict[float, np.ndarray], i: int, threshold: float, limit: float,
              outline: str = "box") -> np.ndarray:
    """Frame ``i``'s probability at ``scale_for``'s scale."""
    return probs[scale_for(probs, i, threshold, limit, outline)][i]


def scale_probabilities(model: OSVOSNet, seq: DavisSequence, settings: RenderSettings,
                        scales: list[float]) -> dict[float, np.ndarray]:
    """{scale: (N, h, w) float32 flip-averaged probabilities at the processing size} for scale 1 and each of
    ``scales`` (the network run at that multiple of the processing size, in the render's precision)."""
    h, w = seq.frames[0].shape[:2]
    size = fit_long_side(h, w, settings.process_size)
    out = {}
    for s in [1.0, *scales]:
        cfg = replace(settings.inference(), process_size=round(settings.process_size * s), edge_refine=False,
                      boundary_snap=False)
        seg = Segmenter(model, cfg)
        t = time.perf_counter()
        out[s] = np.stack([seg.probabilities([f.astype(np.float32) / 255], out_size=size)[0] for f in seq.frames])
        log.info("%s: scale %g (%d px) %.2f s a frame", seq.name, s, cfg.process_size,
                 (time.perf_counter() - t) / len(seq.frames))
    return out


def plate_matte(prob: np.ndarray, rgb: np.ndarray, threshold: float) -> np.ndarray:
    """The render's hard matte: ``prob`` (processing size) upsampled with the plate as the guide, cut."""
    ph, pw = rgb.shape[:2]
    radius = EDGE_RADIUS * 0.5 * (ph / prob.shape[0] + pw / prob.shape[1])
    return guided_upsample(prob, rgb, radius, EDGE_EPS) > threshold


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--parent", default=None, help="Parent checkpoint (default: the shipped one).")
    ap.add_argument("--davis-root", type=Path, default=None)
    ap.add_argument("--sequences", default=",".join(HELD_OUT))
    ap.add_argument("--cache", type=Path, default=None, help="Folder for each sequence's fine-tuned model.")
    ap.add_argument("--scales", default="0.5,0.7", help="Multiples of the processing size to segment at too.")
    ap.add_argument("--combine", default="mean,max,grown")
    ap.add_argument("--grown-ratio", type=float, default=1.5)
    ap.add_argument("--taught", default="0.8,1", help="Factors F of the taught-extent rule (empty: none).")
    ap.add_argument("--outlines", default="box,part", help="How the taught rule outlines the object: box, part.")
    ap.add_argument("--gated", action="store_true",
                    help="Also each taught rule gated by grown: a frame takes the smaller scale only where its matte "
                         "there is over --grown-ratio times the processing size's.")
    ap.add_argument("--large-object-scale", type=float, default=None,
                    help="(default: plugin.json's; 1: every object at Processing Size)")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    asked = {} if args.large_object_scale is None else {"large_object_scale": args.large_object_scale}
    settings = RenderSettings.resolve(asked)
    root = args.davis_root or default_davis_root()
    parent_path = Path(args.parent) if args.parent else default_parent_path()
    parent = functools.cache(lambda: load_parent(parent_path))
    scales = [float(s) for s in args.scales.split(",")]
    ways = args.combine.split(",")
    outlines = args.outlines.split(",")
    if unknown := sorted(set(outlines) - set(OUTLINES)) + sorted(set(ways) - {"mean", "max", "grown"}):
        ap.error(f"unknown outline or combination {', '.join(unknown)}: outlines are box, part; "
                 "combinations mean, max, grown")
    factors = [float(f) for f in filter(None, args.taught.split(","))]
    labels = (["plain"] + [f"{how} {s:g}" for s in scales for how in ways]
              + [f"taught {f:g}{'' if o == 'box' else ' ' + o}{g}" for g in ["", " gated"][:1 + args.gated]
                 for o in outlines for f in factors])
    rows = []
    names = args.sequences.split(",")
    for name in names:
        seq = load_sequence(root, name)
        sized = bench_follow.for_sequence(settings, seq)
        probs = scale_probabilities(fine_tuned(parent, parent_path, seq, sized, args.cache), seq, sized, scales)
        gt = [m > 127 for m in seq.masks]
        plates = [f.astype(np.float32) / 255 for f in seq.frames]
        for label in labels:
            smaller = 0  # frames segmented at a smaller scale than the processing size
            if label == "plain":
                frames = probs[1.0]
            elif label.startswith("taught"):
                _, factor, *outline = label.split()
                gated = outline[-1:] == ["gated"]
                outline = outline[:-1] if gated else outline
                limit = float(factor) * taught_extent(gt[0], sized)
                picks = [scale_for(probs, i, sized.threshold, limit, *outline) for i in range(len(gt))]
                if gated:  # the smaller scale only where it finds a much larger object (``combine``'s grown)
                    picks = [s if s == 1.0 or much_larger(probs[1.0][i], probs[s][i], sized.threshold,
                                                          args.grown_ratio) else 1.0 for i, s in enumerate(picks)]
                frames = [probs[s][i] for i, s in enumerate(picks)]
                smaller = sum(s < 1.0 for s in picks)
            else:
                how, s = label.split()
                frames = [combine(b, o, how, sized.threshold, args.grown_ratio)
                          for b, o in zip(probs[1.0], probs[float(s)], strict=True)]
            res = evaluate_sequence(gt, [plate_matte(p, rgb, sized.threshold) for p, rgb in zip(frames, plates,
                                                                                                 strict=True)])
            rows.append({"variant": label, "sequence": name, "J": res.J.mean, "F": res.F.mean,
                         "process_size": sized.process_size, "frames_smaller": smaller, "frames": len(gt)})
            log.info("%-18s %-10s J %.3f F %.3f (%d of %d frames at a smaller scale)", name, label, res.J.mean,
                     res.F.mean, smaller, len(gt))
    print(bench_follow.table(rows, labels, names))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    cv2.setNumThreads(1)
    main()
