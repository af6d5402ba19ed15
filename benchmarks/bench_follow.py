"""Following the object from frame to frame (OnAVOS's distractor rule), scored on held-out sequences.

Issue 16's distractor lever: what is far from where the object was on the previous frame is background.
Each sequence is fine-tuned on frame 0's ground truth as a render does (plugin.json's defaults), every
frame's probability is kept (``--cache``: one compressed file per sequence, reused by later runs with the
same parent and settings), and
the matte at the threshold is then *followed* from the painted frame on: a connected part of it is kept
only where it touches the previous matte grown by ``margin`` times the object's size (the square root of
its area), so a look-alike blob that appears far away is dropped. Where nothing is kept the object is
taken as gone (hidden, or out of frame), and the area searched grows with every frame it stays gone, so
an object that comes back elsewhere is found again. ``pixels`` instead keeps only the pixels within the
grown region. Scored with the DAVIS metrics (first and last frames excluded) against the plain matte:

    .venv/bin/python benchmarks/bench_follow.py --parent <twin> --cache /tmp/follow --margins 0.5,1,1.5,2

This is an exploration (results: docs/experiments.md); following is no node parameter.
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import json
import logging
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

from osvos_plugin.data.davis import DavisSequence, default_davis_root, load_sequence
from osvos_plugin.evaluation.davis import evaluate_sequence
from osvos_plugin.finetune import finetune
from osvos_plugin.inference import Segmenter
from osvos_plugin.models import default_parent_path, load_parent
from osvos_plugin.network import OSVOSNet
from osvos_plugin.outputs import file_digest
from osvos_plugin.parent import HELD_OUT
from osvos_plugin.settings import RenderSettings

log = logging.getLogger("bench_follow")


def follow(probs: list[np.ndarray], painted: np.ndarray, threshold: float, margin: float,
           mode: str = "components", grow: bool = True, min_radius: int = 8,
           recover: float = 0.0) -> list[np.ndarray]:
    """Hard mattes (uint8 0/1) of ``probs`` (frames in order from the painted one, which is ``probs[0]``'s
    frame), each cut to what lies near the previous frame's matte (``painted`` before the first).

    ``mode``: "components" keeps each connected part of the matte that touches the previous matte grown
    by ``margin`` x sqrt(its area) pixels (at least ``min_radius``); "pixels" keeps the pixels inside that
    grown region. A frame left empty leaves the previous matte in charge; with ``grow`` the radius is
    multiplied by 1 + the frames since the object was last seen. ``recover`` > 0 (components): a part
    dropped though it is more than ``recover`` times the area of all that is kept is kept too, so a speck
    of false positive near the object's old place cannot hold the search while the object is elsewhere.
    """
    if mode not in ("components", "pixels"):
        raise ValueError(f"mode must be components or pixels, got {mode!r}")
    prev = (painted > 0).astype(np.uint8)
    gone = 0
    out = []
    for prob in probs:
        matte = (prob > threshold).astype(np.uint8)
        if prev.any():
            radius = margin * np.sqrt(float(prev.sum())) * ((1 + gone) if grow else 1)
            # the previous matte grown by the radius: a distance transform costs the same at any radius
            near = (cv2.distanceTransform(1 - prev, cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
                    <= round(max(min_radius, radius))).astype(np.uint8)
            if mode == "pixels":
                matte &= near
            else:
                count, labels = cv2.connectedComponents(matte, connectivity=8)
                touching = np.unique(labels[(near > 0) & (matte > 0)])
                keep = touching[touching > 0]
                if recover > 0 and count > 1 and keep.size:
                    areas = np.bincount(labels.ravel(), minlength=count)
                    dropped = np.setdiff1d(np.arange(1, count), keep)
                    keep = np.concatenate([keep, dropped[areas[dropped] > recover * areas[keep].sum()]])
                matte = np.isin(labels, keep).astype(np.uint8) if count > 1 else matte
        out.append(matte)
        if matte.any():
            prev, gone = matte, 0
        else:
            gone += 1
    return out


def for_sequence(settings: RenderSettings, seq: DavisSequence) -> RenderSettings:
    """The settings a render of ``seq`` painted on frame 0 runs with (Large Object Scale, from the painted
    object's share of the frame)."""
    return settings.for_object(float(np.mean(seq.masks[0] > 127)))


def cache_key(parent_path: Path, settings: RenderSettings) -> str:
    """What made a sequence's probabilities: the parent's bytes and the fine-tuning and inference settings.
    A cached file made by anything else is made again, never reused."""
    what = f"{file_digest(parent_path)}|{settings.finetune()!r}|{settings.inference()!r}"
    return hashlib.sha256(what.encode()).hexdigest()


def probabilities(parent: Callable[[], OSVOSNet], seq: DavisSequence, settings: RenderSettings,
                  cache: Path | None, key: str) -> np.ndarray:
    """(N, H, W) float16 probabilities of a sequence, fine-tuned on frame 0 as a render does; cached under
    ``key`` (``cache_key``). ``parent``: loads the parent, called only when the cache cannot answer."""
    path = None if cache is None else cache / f"{seq.name}.npz"
    if path is not None and path.is_file():
        with np.load(path) as kept:
            if "key" in kept and str(kept["key"]) == key:
                return kept["prob"]
        log.info("%s: made by another parent or other settings; fine-tuning again", path)
    t = time.perf_counter()
    model = finetune(parent(), [(seq.frames[0].astype(np.float32) / 255, (seq.masks[0] > 127).astype(np.float32))],
                     settings.finetune())
    t_ft = time.perf_counter() - t
    seg = Segmenter(model, settings.inference())
    t = time.perf_counter()
    prob = np.stack([seg.probabilities([f.astype(np.float32) / 255])[0] for f in seq.frames]).astype(np.float16)
    log.info("%s: fine-tuned in %.0f s, %.2f s a frame", seq.name, t_ft, (time.perf_counter() - t) / len(prob))
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(path, prob=prob, key=np.array(key))
    return prob


def table(rows: list[dict], labels: list[str], names: list[str], base: str = "plain") -> str:
    """A markdown table of ``rows`` ({variant, sequence, J, F}): mean J, F and J&F of each variant, on how many
    sequences its J&F beats ``base``'s by more than 0.0005 (issue 16's rule counts wins), and J&F per sequence."""
    jf = {(r["variant"], r["sequence"]): (r["J"] + r["F"]) / 2 for r in rows}
    lines = ["| variant | J | F | J&F | wins | " + " | ".join(names) + " |",
             "|---|---|---|---|---|" + "---|" * len(names)]
    for label in labels:
        rs = [r for r in rows if r["variant"] == label]
        j, f = np.mean([r["J"] for r in rs]), np.mean([r["F"] for r in rs])
        wins = sum(jf[label, n] > jf[base, n] + 5e-4 for n in names)
        lines.append(f"| {label} | {j:.3f} | {f:.3f} | {(j + f) / 2:.3f} | {wins}/{len(names)} | "
                     + " | ".join(f"{jf[label, n]:.3f}" for n in names) + " |")
    return "\n" + "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--parent", default=None, help="Parent checkpoint (default: the shipped one).")
    ap.add_argument("--davis-root", type=Path, default=None)
    ap.add_argument("--sequences", default=",".join(HELD_OUT))
    ap.add_argument("--cache", type=Path, default=None, help="Folder for each sequence's probabilities.")
    ap.add_argument("--margins", default="0.5,1,1.5,2")
    ap.add_argument("--modes", default="components,pixels")
    ap.add_argument("--no-grow", action="store_true", help="Also score each variant without the growing search.")
    ap.add_argument("--recover", default="0", help="Comma-separated recover ratios to score (0: off).")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    settings = RenderSettings.resolve({})
    root = args.davis_root or default_davis_root()
    parent_path = Path(args.parent) if args.parent else default_parent_path()
    parent = functools.cache(lambda: load_parent(parent_path))
    variants = [("plain", None, 0.0, True, 0.0)] + [
        (f"{mode} {margin:g}{'' if grow else ' fixed'}{f' recover {rec:g}' if rec else ''}", mode, margin, grow, rec)
        for mode in args.modes.split(",") for margin in map(float, args.margins.split(","))
        for grow in ((True, False) if args.no_grow else (True,)) for rec in map(float, args.recover.split(","))]
    rows = []
    names = args.sequences.split(",")
    for name in names:
        seq = load_sequence(root, name)
        sized = for_sequence(settings, seq)
        prob = probabilities(parent, seq, sized, args.cache, cache_key(parent_path, sized)).astype(np.float32)
        gt = [m > 127 for m in seq.masks]
        for label, mode, margin, grow, rec in variants:
            mattes = ([p > settings.threshold for p in prob] if mode is None else
                      [m > 0 for m in follow(list(prob), gt[0], settings.threshold, margin, mode, grow,
                                             recover=rec)])
            res = evaluate_sequence(gt, mattes)
            rows.append({"variant": label, "sequence": name, "J": res.J.mean, "F": res.F.mean})
            log.info("%-18s %-22s J %.3f F %.3f", name, label, res.J.mean, res.F.mean)
    print(table(rows, [v[0] for v in variants], names))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
