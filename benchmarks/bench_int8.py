"""Inference in int8 on a CPU (issue 20, ``precision int8``), measured on held-out sequences.

Per sequence: fine-tune on frame 0 as a render does (fp32), then segment every frame with the render's
inference settings (flip averaging, threshold, plate-resolution edges): the network in fp32, and in int8 as
``precision int8`` (and ``auto`` on x86 CPUs without AMX) renders, its convolutions in int8
(``osvos_plugin.quantize``) with activation ranges calibrated on the bundled demo frames; then in int8
without flip averaging (the cheaper inference setting). ``--keyframe-calibration`` adds int8 calibrated on
the shot's own keyframe and its mirror image instead. Where the CPU runs bfloat16 fast, the network in bf16 as
well (``auto``'s choice there before int8). Reported: J and F of each, how much each int8 matte
agrees with the fp32 one (J of one against the other; for bf16 too), and seconds per frame.

    .venv/bin/python benchmarks/bench_int8.py --parent <held-out twin> --json int8.json

``--timing``: speed alone, no fine-tuning (the parent itself, one sequence's frames): for fp32 (and bf16
where the CPU runs it fast, as ``auto`` then does) and int8 on each of PyTorch's x86 quantised engines, the
seconds to quantise (once a render; and from the calibration a first render kept, as a farm chunk does) and
per frame (the render's inference settings), with a bare torchvision VGG16 ``features`` forward in fp32 at
the processing size timed in the same run as the yardstick.

The sequences must be held out from the parent's training (the default: the five held out). Never DAVIS val.
"""

from __future__ import annotations

import argparse
import json
import logging
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from osvos_plugin.data.davis import default_davis_root, load_sequence
from osvos_plugin.device import cpu_has_fast_bf16
from osvos_plugin.evaluation.metrics import f_measure, jaccard
from osvos_plugin.finetune import finetune
from osvos_plugin.imaging import fit_long_side, resize
from osvos_plugin.inference import Segmenter
from osvos_plugin.parent import HELD_OUT, seen_sequences
from osvos_plugin.quantize import Int8Model, quantize_for_cpu
from osvos_plugin.settings import RenderSettings
from osvos_plugin.weights import load_checkpoint

log = logging.getLogger("bench_int8")


def _segment(seg: Segmenter, frames: list[np.ndarray]) -> tuple[list[np.ndarray], float]:
    t = time.perf_counter()
    mattes = [m for _, m in seg.stream(enumerate(frames))]
    return mattes, (time.perf_counter() - t) / len(frames)


def run_sequence(parent, root: Path, name: str, settings: RenderSettings,
                 keyframe_calibration: bool = False) -> dict:
    seq = load_sequence(root, name)
    frames = [f.astype(np.float32) / 255 for f in seq.frames]
    gts = [m > 127 for m in seq.masks]
    t = time.perf_counter()
    model = finetune(parent, [(frames[0], gts[0].astype(np.float32))], settings.finetune())
    out: dict = {"sequence": name, "frames": len(frames), "finetune_s": time.perf_counter() - t}
    h, w = frames[0].shape[:2]
    key = resize(torch.from_numpy(frames[0]).permute(2, 0, 1)[None], fit_long_side(h, w, settings.process_size))
    nets = {"fp32": (model, {})}
    if cpu_has_fast_bf16():  # what ``auto`` inferred in here before int8: int8 against it on AVX-512 CPUs
        nets["bf16"] = (model, {"precision": "bf16"})
    nets["int8 demo"] = (quantize_for_cpu(model, settings.process_size), {})
    nets["int8 demo, no flip"] = (nets["int8 demo"][0], {"flip_average": False})
    if keyframe_calibration:
        nets["int8"] = (Int8Model(model, [key, key.flip(-1)]), {})
    inner = range(1, len(frames) - 1)
    mattes = {}
    for label, (net, change) in nets.items():
        cfg = replace(settings.inference(), **change)
        mattes[label], per_frame = _segment(Segmenter(net, cfg), frames)
        hard = [m >= 0.5 for m in mattes[label]]
        out[label] = {"J": float(np.mean([jaccard(gts[i], hard[i]) for i in inner])),
                      "F": float(np.mean([f_measure(gts[i], hard[i]) for i in inner])), "s_per_frame": per_frame}
    for label in nets:
        if label != "fp32":
            out[label]["agreement_J"] = float(np.mean([jaccard(mattes["fp32"][i] >= 0.5, mattes[label][i] >= 0.5)
                                                       for i in inner]))
    log.info("%-17s %s", name, " | ".join(f"{k} J {v['J']:.3f} F {v['F']:.3f} ({v['s_per_frame']:.2f} s/frame)"
                                          for k, v in out.items() if isinstance(v, dict)))
    return out


def _median_s(fn, repeats: int = 5) -> float:
    fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return float(np.median(times))


def timing(parent, root: Path, name: str, settings: RenderSettings, frames: int) -> list[dict]:
    """Seconds to quantise and per frame, fp32 against int8 on each x86 engine, and the VGG16 yardstick."""
    import torchvision

    seq = load_sequence(root, name)
    plates = [f.astype(np.float32) / 255 for f in seq.frames[:frames]]
    h, w = fit_long_side(*plates[0].shape[:2], settings.process_size)
    vgg = torchvision.models.vgg16().features.eval().to(memory_format=torch.channels_last)
    x = torch.rand(1, 3, h, w).contiguous(memory_format=torch.channels_last)
    with torch.inference_mode():
        yardstick = _median_s(lambda: vgg(x))
    rows = [{"precision": "VGG16 features fp32, one image", "s_per_frame": yardstick}]
    engines = [e for e in ("onednn", "x86", "fbgemm") if e in torch.backends.quantized.supported_engines]
    # bf16 where the CPU runs it fast (then ``auto`` picks it): int8 against bf16 on AVX-512 CPUs
    floats = ["fp32"] + (["bf16"] if cpu_has_fast_bf16() else [])
    for label, engine in [(f, None) for f in floats] + [(f"int8 ({e})", e) for e in engines]:
        t = time.perf_counter()
        net = parent if engine is None else quantize_for_cpu(parent, settings.process_size, engine)
        setup = time.perf_counter() - t
        seg = Segmenter(net, replace(settings.inference(), precision=label if engine is None else "fp32"))
        _segment(seg, plates[:2])  # first-call costs out of the figure
        _, per_frame = _segment(seg, plates)
        cached = None
        if engine is not None:  # a later chunk of the shot: the calibration read from the file the first kept
            with tempfile.TemporaryDirectory() as tmp:
                quantize_for_cpu(parent, settings.process_size, engine, cache=Path(tmp) / "m.int8.safetensors")
                t = time.perf_counter()
                quantize_for_cpu(parent, settings.process_size, engine, cache=Path(tmp) / "m.int8.safetensors")
                cached = time.perf_counter() - t
        rows.append({"precision": label, "quantise_s": setup, "quantise_cached_s": cached, "s_per_frame": per_frame,
                     "ratio": per_frame / yardstick})
        log.info("%-15s quantise %.1f s (%s from the kept calibration), %.3f s/frame (%.2fx the VGG16 yardstick)",
                 label, setup, "-" if cached is None else f"{cached:.1f} s", per_frame, per_frame / yardstick)
    print(f"\n{name}, {len(plates)} frames at {w}x{h} (flip-averaged: two network passes a frame), "
          f"VGG16 features fp32 {yardstick:.3f} s an image")
    print("| precision | quantise (s, once a render) | from the kept calibration (s) | per frame (s) "
          "| / VGG16 features |")
    print("|---|---|---|---|---|")
    for r in rows[1:]:
        cached = "-" if r["quantise_cached_s"] is None else f"{r['quantise_cached_s']:.1f}"
        print(f"| {r['precision']} | {r['quantise_s']:.1f} | {cached} | {r['s_per_frame']:.3f} | {r['ratio']:.2f}x |")
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--parent", required=True, help="A parent trained without the sequences (e.g. --hold-out).")
    ap.add_argument("--davis-root", type=Path, default=None)
    ap.add_argument("--sequences", default=",".join(HELD_OUT))
    ap.add_argument("--iterations", type=int, default=None, help="Fine-tuning steps (default: plugin.json's)")
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--keyframe-calibration", action="store_true",
                    help="Also int8 calibrated on the shot's own keyframe (not what a render does)")
    ap.add_argument("--timing", metavar="SEQUENCE", default=None, help="Speed alone on this sequence's frames")
    ap.add_argument("--frames", type=int, default=24, help="(--timing) frames segmented")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    parent, info = load_checkpoint(args.parent)
    names = args.sequences.split(",")
    seen = seen_sequences(info.provenance, names)
    if seen:
        raise SystemExit(f"{args.parent} was trained on {', '.join(seen)}: use a parent that held them out")
    if args.timing:
        settings = RenderSettings.resolve({"device": "cpu", "precision": "fp32"})
        rows = timing(parent, args.davis_root or default_davis_root(), args.timing, settings, args.frames)
        if args.json:
            args.json.write_text(json.dumps({"parent": args.parent, "timing": rows}, indent=1))
        return
    params = {"device": "cpu", "precision": "fp32"}
    if args.iterations is not None:
        params["iterations"] = args.iterations
    settings = RenderSettings.resolve(params)
    rows = []
    for name in names:
        rows.append(run_sequence(parent, args.davis_root or default_davis_root(), name, settings,
                                 args.keyframe_calibration))
        if args.json:  # after every sequence, so a long run that is stopped keeps what it measured
            args.json.write_text(json.dumps({"parent": args.parent, "rows": rows}, indent=1))
    labels = [k for k in rows[0] if isinstance(rows[0][k], dict)]
    print("| sequence | " + " | ".join(f"{k}: J / F (s/frame)" + (", agreement" if k != "fp32" else "")
                                      for k in labels) + " |")
    print("|---" * (len(labels) + 1) + "|")
    for r in rows:
        cells = [f"{r[k]['J']:.3f} / {r[k]['F']:.3f} ({r[k]['s_per_frame']:.2f})"
                 + (f", {r[k]['agreement_J']:.3f}" if "agreement_J" in r[k] else "") for k in labels]
        print(f"| {r['sequence']} | " + " | ".join(cells) + " |")
    for k in labels:
        j, f = np.mean([r[k]["J"] for r in rows]), np.mean([r[k]["F"] for r in rows])
        print(f"mean {k}: J {j:.3f} F {f:.3f} J&F {(j + f) / 2:.3f}")

if __name__ == "__main__":
    main()
