"""Boundary snapping with other contour networks, scored on held-out sequences from kept probabilities.

``bench_follow.py --cache`` keeps each sequence's fine-tuned probabilities (the parent's bytes and the
render's settings in the file). This snaps their edges as ``boundary_snap`` does (``snapping.py``:
contours at the processing size, regions and the majority vote at the plate's size) with each contour
network named (``bsds``: the product's BSDS HED; else a head from ``train_contours.py``) at each region
level, and scores every variant with the DAVIS metrics (first and last frames excluded) against the plain
matte of the same probabilities:
    .venv/bin/python benchmarks/bench_snap.py --cache /work/runs/f18a --parent <fold-a parent> \\
        --sequences bmx-bumps,... --contours bsds,a=/tmp/contours-a.safetensors --levels 0.15,0.3
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import logging
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import torch

from osvos_plugin.data.davis import default_davis_root, load_sequence
from osvos_plugin.device import configure_cpu_threads, resolve_device, resolve_precision
from osvos_plugin.evaluation.davis import evaluate_sequence
from osvos_plugin.imaging import fit_long_side
from osvos_plugin.models import default_parent_path
from osvos_plugin.settings import RenderSettings
from osvos_plugin.snapping import ContourDetector, SnapConfig, snap_probability


def _sibling(name: str):
    spec = importlib.util.spec_from_file_location(name, Path(__file__).with_name(f"{name}.py"))
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


bench_follow = _sibling("bench_follow")
train_contours = _sibling("train_contours")
log = logging.getLogger("bench_snap")


def contour_maps(detector: ContourDetector, frames: np.ndarray, long_side: int, batch: int = 4) -> np.ndarray:
    """(N, h, w) float32 contour probabilities of uint8 RGB frames (N, H, W, 3) at the processing size."""
    h, w = fit_long_side(*frames.shape[1:3], long_side)
    out = []
    for i in range(0, len(frames), batch):
        small = np.stack([cv2.resize(f, (w, h), interpolation=cv2.INTER_AREA) for f in frames[i:i + batch]])
        x = torch.from_numpy(small).permute(0, 3, 1, 2).float().div_(255)
        out.append(detector(x)[:, 0].numpy())
    return np.concatenate(out)


def snapped(prob: np.ndarray, contours: np.ndarray, frame: np.ndarray, threshold: float, cfg: SnapConfig,
            keep: float = 1.0) -> np.ndarray:
    """The render's snap of one plate-size probability map with a processing-size contour map. ``keep`` < 1:
    pixels whose probability is at least ``keep`` stay as they were (the vote may not remove what the network
    is sure of, such as a part thinner than the superpixels)."""
    size = prob.shape
    scale = 0.5 * (size[0] / contours.shape[0] + size[1] / contours.shape[1])
    big = cv2.resize(contours, size[::-1], interpolation=cv2.INTER_LINEAR)
    return spare(prob, snap_probability(prob, big, frame.astype(np.float32) / 255, threshold, cfg, scale), keep)


def spare(prob: np.ndarray, snapped_prob: np.ndarray, keep: float) -> np.ndarray:
    """``snapped_prob`` with the pixels whose own probability is at least ``keep`` as they were (1: none)."""
    return snapped_prob if keep >= 1.0 else np.where(prob >= keep, prob, snapped_prob)


def _label(contours: str, level: float, keep: float) -> str:
    return f"{contours} {level:g}" + (f" keep {keep:g}" if keep < 1 else "")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cache", type=Path, required=True, help="bench_follow.py's --cache folder.")
    ap.add_argument("--parent", default=None, help="The parent the probabilities must come from.")
    ap.add_argument("--davis-root", type=Path, default=None)
    ap.add_argument("--sequences", required=True)
    ap.add_argument("--contours", default="bsds", help="Comma-separated: bsds, or label=head.safetensors.")
    ap.add_argument("--levels", default="0.15")
    ap.add_argument("--keep", default="1",
                    help="Comma-separated: pixels at least this sure are never snapped away (1: off).")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    configure_cpu_threads()
    settings = RenderSettings.resolve({})
    parent_path = Path(args.parent) if args.parent else default_parent_path()
    root = args.davis_root or default_davis_root()
    device = resolve_device("auto")
    dtype = resolve_precision("auto", device)
    nets = {}
    for item in args.contours.split(","):
        label, _, path = item.partition("=")
        if not path and label != "bsds":
            raise SystemExit(f"--contours {item}: name a head file (label=head.safetensors), or bsds")
        if path and not Path(path).is_file():
            raise SystemExit(f"--contours {item}: {path} does not exist; make it with train_contours.py")
        nets[label] = ContourDetector(device, dtype, train_contours.load_contour_net(path or None))
    levels = [float(v) for v in args.levels.split(",")]
    keeps = [float(v) for v in args.keep.split(",")]
    names = args.sequences.split(",")
    labels = ["plain"] + [_label(c, lv, k) for c in nets for lv in levels for k in keeps]
    rows = []
    for name in names:
        if not (args.cache / f"{name}.npz").is_file():
            raise SystemExit(f"{args.cache / name}.npz: no kept probabilities; run bench_follow.py --cache first")
        seq = load_sequence(root, name)
        sized = bench_follow.for_sequence(settings, seq)
        with np.load(args.cache / f"{name}.npz") as kept:
            if "key" not in kept or str(kept["key"]) != bench_follow.cache_key(parent_path, sized):
                raise SystemExit(f"{args.cache / name}.npz: made by another parent or other settings")
            prob = kept["prob"].astype(np.float32)
        gt = [m > 127 for m in seq.masks]
        mattes = {"plain": [p > settings.threshold for p in prob]}
        for c, det in nets.items():
            t = time.perf_counter()
            maps = contour_maps(det, seq.frames, sized.process_size)
            t_c = (time.perf_counter() - t) / len(maps)
            for lv in levels:
                cfg = SnapConfig(level=lv)
                t = time.perf_counter()
                done = [snapped(p, m, f, settings.threshold, cfg) for p, m, f in zip(prob, maps, seq.frames,
                                                                                      strict=True)]
                log.info("%s %s %g: contours %.3f s, snap %.3f s a frame", name, c, lv, t_c,
                         (time.perf_counter() - t) / len(maps))
                for k in keeps:  # one snap a frame, spared as each variant asks
                    mattes[_label(c, lv, k)] = [spare(p, d, k) > settings.threshold
                                                for p, d in zip(prob, done, strict=True)]
        for label in labels:
            res = evaluate_sequence(gt, mattes[label])
            rows.append({"variant": label, "sequence": name, "J": res.J.mean, "F": res.F.mean})
            log.info("%-18s %-14s J %.3f F %.3f", name, label, res.J.mean, res.F.mean)
    print(bench_follow.table(rows, labels, names))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
