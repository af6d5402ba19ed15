"""Quality against fine-tuning budget: one-shot OSVOS on DAVIS-layout sequences, scored with J and F.

For each budget (iterations) and sequence: fine-tune the parent on frame 0's ground truth, self-train
(as a render does, unless ``--self-train-iterations 0``), segment every frame, and score with the DAVIS
metrics (first and last frames excluded). Prints Markdown tables (per budget, and per sequence) and
writes JSON. Budget 0 is the parent alone. Inference follows plugin.json (flip averaging, threshold);
``--thresholds 0.6,0.7,0.8`` also scores the same probabilities cut at each (a sweep without a second run).

    .venv/bin/python benchmarks/bench_quality.py --parent models/osvos-parent.safetensors \
        --budgets 0,50,100,200,500,1000 --json quality.json

The default sequences are the five held out from parent training (never DAVIS val). The model card's
held-out tables: ``--folds a,b --budgets 300``, each fold's sequences with the parent trained without that
fold (``models/folds/``).
"""

from __future__ import annotations

import argparse
import copy
import json
import logging
import time
from dataclasses import asdict, is_dataclass, replace
from pathlib import Path

import numpy as np

from osvos_plugin.data.davis import default_davis_root, load_sequence
from osvos_plugin.evaluation.davis import evaluate_sequence
from osvos_plugin.finetune import FinetuneConfig, finetune
from osvos_plugin.inference import Segmenter
from osvos_plugin.models import fold_parent_path, load_parent
from osvos_plugin.parent import FOLDS, HELD_OUT, fold_of
from osvos_plugin.selftrain import frames_to_learn_from, self_train
from osvos_plugin.settings import RenderSettings
from osvos_plugin.weights import WeightsError


def _parsed(kind: type, value: str):
    """A --finetune value as its field's type (``false`` / ``0`` is False for a bool)."""
    if kind is bool:
        return value.strip().lower() in ("1", "true", "yes", "on")
    return kind(value)


def finetune_overrides(text: str, option: str = "--finetune") -> dict:
    """``--finetune FIELD=VALUE,...`` as FinetuneConfig fields (its AugmentConfig's under ``augment``), each
    value as its field's type; ``option`` names the option in messages."""
    overrides: dict = {}
    for item in filter(None, text.split(",")):
        key, sep, value = item.partition("=")
        holder, cfg, name = overrides, FinetuneConfig(), key
        if key.startswith("augment."):  # a field of the fine-tuning's AugmentConfig, e.g. augment.move=0.5
            holder, cfg, name = overrides.setdefault("augment", {}), cfg.augment, key.removeprefix("augment.")
        if not sep or not hasattr(cfg, name):
            raise ValueError(f"{option}: {item!r} is not FIELD=VALUE of a FinetuneConfig field")
        kind = type(getattr(cfg, name))
        try:
            holder[name] = _parsed(kind, value)
        except ValueError:
            raise ValueError(f"{option}: {item!r}: {key} takes {kind.__name__} values") from None
    return overrides


def _finetune_budgets(parent, keyframe, budgets, cfg: FinetuneConfig) -> dict[int, tuple[object, float]]:
    """{budget: (model, fine-tune seconds)}. With the constant schedule one run of the largest budget is
    snapshotted at each smaller one (the same computation as a run of that length; a test checks it);
    with the cosine schedule every budget is its own run, since the schedule depends on the length."""
    out = {}
    if cfg.schedule == "constant":
        wanted = {b for b in budgets if b > 0}
        spent = 0.0
        t = time.perf_counter()

        def snapshot(step, model):
            nonlocal spent, t
            if step + 1 in wanted:
                spent += time.perf_counter() - t
                out[step + 1] = (copy.deepcopy(model).eval(), spent)
                t = time.perf_counter()  # the copy is not fine-tuning time

        if wanted:
            finetune(parent, [keyframe], replace(cfg, iterations=max(wanted)), on_step=snapshot)
        if 0 in budgets:
            out[0] = (finetune(parent, [keyframe], replace(cfg, iterations=0)), 0.0)
        return out
    for b in budgets:
        t = time.perf_counter()
        model = finetune(parent, [keyframe], replace(cfg, iterations=b))
        out[b] = (model, time.perf_counter() - t)
    return out


def _segmented(seg: Segmenter, frames: np.ndarray, keep_probabilities: bool) -> tuple[list, list]:
    """(mattes, probabilities) of uint8 RGB ``frames``, batched as a render batches them; the mattes are
    ``seg.stream``'s (a test checks it), the probabilities kept only when asked (else an empty list)."""
    mattes, probs = [], []
    step = max(1, seg.cfg.batch_size)
    for start in range(0, len(frames), step):
        for prob in seg.probabilities([f.astype(np.float32) / 255 for f in frames[start:start + step]]):
            mattes.append(seg.matte(prob))
            if keep_probabilities:
                probs.append(prob)
    return mattes, probs


def run(parent_path, root, sequences, budgets, settings: RenderSettings, schedule: str, save_dir=None,
        finetune_overrides: dict | None = None, thresholds: list[float] | None = None,
        prob_dir=None) -> list[dict]:
    """Fine-tune and segment each sequence as a render with ``settings`` would, at each budget.
    ``parent_path``: one parent for all (None: the shipped one), or {sequence: parent}. ``thresholds``: also
    score the same probabilities cut at each of these (rows' ``thresholds``: {"0.6": {"J", "F"}}), and
    ``prob_dir``: keep them, as 16-bit PNGs."""
    parents: dict = {}
    rows = []
    for name in sequences:
        path = parent_path.get(name) if isinstance(parent_path, dict) else parent_path
        if path not in parents:
            parents[path] = load_parent(path)
        parent = parents[path]
        seq = load_sequence(root, name)
        rgb0 = seq.frames[0].astype(np.float32) / 255
        mask0 = (seq.masks[0] > 127).astype(np.float32)
        sized = settings.for_object(float(mask0.mean()))  # Large Object Scale, as a render decides it
        overrides = dict(finetune_overrides or {})
        augment = replace(sized.finetune().augment, **overrides.pop("augment", {}))  # onto the render's own
        cfg = replace(sized.finetune(), schedule=schedule, augment=augment, **overrides)
        models = _finetune_budgets(parent, (rgb0, mask0), budgets, cfg)
        for budget in budgets:
            model, t_ft = models.pop(budget)
            t_st = 0.0
            if budget > 0 and settings.self_train_iterations > 0:  # as a render: self-training after fine-tuning
                t = time.perf_counter()
                n = len(seq.frames)
                picks = frames_to_learn_from(list(range(n)), list(range(n)), settings.self_train_frames, {0})
                model = self_train(model, [(rgb0, mask0)], [seq.frames[i].astype(np.float32) / 255 for i in picks],
                                   sized.self_train())
                t_st = time.perf_counter() - t
            seg = Segmenter(model, sized.inference())
            t = time.perf_counter()
            preds, probs = _segmented(seg, seq.frames, keep_probabilities=bool(thresholds) or prob_dir is not None)
            t_inf = time.perf_counter() - t
            truth = [m > 127 for m in seq.masks]
            res = evaluate_sequence(truth, [p > 0.5 for p in preds])  # hard 0/1 mattes
            sweep = {}
            for th in thresholds or ():  # the same probabilities cut elsewhere: a sweep costs no inference
                cut = evaluate_sequence(truth, [p > th for p in probs])
                sweep[f"{th:g}"] = {"J": cut.J.mean, "F": cut.F.mean}
            if save_dir is not None:
                import cv2

                out = Path(save_dir) / f"it{budget}" / name
                out.mkdir(parents=True, exist_ok=True)
                for i, p in enumerate(preds):
                    cv2.imwrite(str(out / f"{i:05d}.png"), (p > 0.5).astype(np.uint8) * 255)
            if prob_dir is not None:
                import cv2

                out = Path(prob_dir) / f"it{budget}" / name
                out.mkdir(parents=True, exist_ok=True)
                for i, p in enumerate(probs):  # 16-bit: a cut at any threshold is off by at most 1/65535
                    cv2.imwrite(str(out / f"{i:05d}.png"), np.round(np.clip(p, 0, 1) * 65535).astype(np.uint16))
            rows.append({"budget": budget, "sequence": name, "parent": str(path or "shipped"),
                         "J": res.J.mean, "F": res.F.mean, "process_size": sized.process_size,
                         "J_recall": res.J.recall, "J_decay": res.J.decay,
                         "finetune_s": t_ft + t_st, "selftrain_s": t_st, "infer_s_per_frame": t_inf / len(preds),
                         "frames": len(preds), **({"thresholds": sweep} if sweep else {})})
            r = rows[-1]
            logging.info("%5d it  %-18s J %.3f F %.3f  fine-tune %.0f s, %.3f s/frame", budget, name, r["J"], r["F"],
                         t_ft, r["infer_s_per_frame"])
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--parent", default=None, help="Parent checkpoint (default: the shipped one).")
    ap.add_argument("--davis-root", type=Path, default=None)
    ap.add_argument("--sequences", default=None, help=f"(default: {','.join(HELD_OUT)}, or every sequence of --folds)")
    ap.add_argument("--folds", default=None, metavar="a,b",
                    help="Held-out validation: each sequence of these folds (or of --sequences) fine-tuned from the "
                         "parent trained without its fold (models/folds/fold-F.safetensors) instead of --parent")
    ap.add_argument("--budgets", default="0,50,100,200,500,1000")
    ap.add_argument("--process-size", type=int, default=None, help="(default: plugin.json's)")
    ap.add_argument("--large-object-scale", type=float, default=None,
                    help="Processing size multiple for objects painted large (default: plugin.json's; 1: off)")
    ap.add_argument("--device", default=None, help="(default: plugin.json's)")
    ap.add_argument("--schedule", default=FinetuneConfig.schedule, choices=("cosine", "constant"),
                    help="constant: one run per sequence, snapshotted at each budget")
    ap.add_argument("--flip-average", action=argparse.BooleanOptionalAction, default=None,
                    help="Flip averaging at inference (default: plugin.json's)")
    ap.add_argument("--self-train-iterations", type=int, default=None,
                    help="Self-training after fine-tuning (default: plugin.json's; 0: off)")
    ap.add_argument("--grown-object-rescale", action=argparse.BooleanOptionalAction, default=None,
                    help="Rescale Grown Objects (default: plugin.json's)")
    ap.add_argument("--threshold", type=float, default=None,
                    help="Probability above which a pixel is object (default: plugin.json's)")
    ap.add_argument("--finetune", default="", metavar="FIELD=VALUE,...",
                    help="FinetuneConfig fields that are no node parameter, e.g. freeze_stages=3,coarse_size=240, "
                         "and its AugmentConfig's as augment.FIELD, e.g. augment.move=0.5")
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--save-predictions", type=Path, default=None)
    ap.add_argument("--thresholds", default="", metavar="T,T,...",
                    help="Also score the same probabilities cut at each threshold (no second inference).")
    ap.add_argument("--save-probabilities", type=Path, default=None,
                    help="Keep each frame's probability as a 16-bit PNG, to cut or study later.")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    budgets = [int(b) for b in args.budgets.split(",")]
    try:
        thresholds = [float(t) for t in filter(None, args.thresholds.split(","))]
    except ValueError:
        ap.error(f"--thresholds: numbers between 0 and 1, comma-separated (got {args.thresholds!r})")
    if any(not 0.0 <= t <= 1.0 for t in thresholds):
        ap.error(f"--thresholds: numbers between 0 and 1 (got {args.thresholds!r})")
    # what a render runs: the manifest's defaults, overridden where asked
    asked = {"process_size": args.process_size, "large_object_scale": args.large_object_scale, "device": args.device,
             "flip_average": args.flip_average, "grown_object_rescale": args.grown_object_rescale,
             "self_train_iterations": args.self_train_iterations, "threshold": args.threshold}
    settings = RenderSettings.resolve({k: v for k, v in asked.items() if v is not None})
    try:
        overrides = finetune_overrides(args.finetune)
    except ValueError as e:
        ap.error(str(e))
    parent = args.parent
    if args.folds:
        if args.parent:
            ap.error("--folds picks each sequence's parent: leave out --parent")
        folds = args.folds.split(",")
        if unknown := [f for f in folds if f not in FOLDS]:
            ap.error(f"no validation fold {', '.join(unknown)} (folds: {', '.join(FOLDS)})")
        names = args.sequences.split(",") if args.sequences else [n for f in folds for n in FOLDS[f]]
        try:
            if outside := [n for n in names if fold_of(n) not in folds]:
                ap.error(f"{', '.join(outside)} not in fold {args.folds}")
            parent = {n: str(fold_parent_path(fold_of(n))) for n in names}
        except (ValueError, WeightsError) as e:
            ap.error(str(e))
        args.sequences = ",".join(names)
    args.sequences = args.sequences or ",".join(HELD_OUT)
    rows = run(parent, args.davis_root or default_davis_root(), args.sequences.split(","), budgets, settings,
               args.schedule, args.save_predictions, overrides, thresholds, args.save_probabilities)
    print("\n| iterations | J mean | F mean | J&F | fine-tune (+ self-train) per shot (s) | inference per frame (s) |")
    print("|---|---|---|---|---|---|")
    for b in budgets:
        rs = [r for r in rows if r["budget"] == b]
        j, f = np.mean([r["J"] for r in rs]), np.mean([r["F"] for r in rs])
        print(f"| {b} | {j:.3f} | {f:.3f} | {(j + f) / 2:.3f} | {np.mean([r['finetune_s'] for r in rs]):.0f} | "
              f"{np.mean([r['infer_s_per_frame'] for r in rs]):.3f} |")
    print("\n| sequence | " + " | ".join(f"J @{b}" for b in budgets) + " |")
    print("|---|" + "---|" * len(budgets))
    for name in args.sequences.split(","):
        js = [next(r["J"] for r in rows if r["budget"] == b and r["sequence"] == name) for b in budgets]
        print(f"| {name} | " + " | ".join(f"{j:.3f}" for j in js) + " |")
    if thresholds:
        print("\n| iterations | threshold | J mean | F mean | J&F |")
        print("|---|---|---|---|---|")
        for b in budgets:
            rs = [r for r in rows if r["budget"] == b]
            for th in thresholds:
                j = np.mean([r["thresholds"][f"{th:g}"]["J"] for r in rs])
                f = np.mean([r["thresholds"][f"{th:g}"]["F"] for r in rs])
                print(f"| {b} | {th:g} | {j:.3f} | {f:.3f} | {(j + f) / 2:.3f} |")
    if args.json:
        meta = {"process_size": settings.process_size, "large_object_scale": settings.large_object_scale,
                "schedule": args.schedule,
                "finetune": {k: asdict(v) if is_dataclass(v) else v for k, v in overrides.items()},
                "self_train_iterations": settings.self_train_iterations, "flip_average": settings.flip_average,
                "threshold": settings.threshold, "thresholds": thresholds}
        args.json.write_text(json.dumps({**meta, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
