"""Whole ``osvos-render`` runs timed as a user sees them: process start to exit, imports and I/O included.

Two shots, each rendered by a fresh ``osvos-render`` process on the chosen device:

* ``demo``: the bundled shot (20 JPEG frames, 854x480), default settings (fine-tuning, flip-averaged
  inference), EXR mattes, and ``--save-model`` (what a farm's fine-tune-once task does);
* ``exr``: N synthesised 1920x1080 half-float EXR frames (``bench_io``'s plates), inference only with the
  demo's fine-tuned model (``--load-model``: a farm's render task).

``--second-pass-size N`` adds two inference-only renders of the shot from its model, without and with a
second pass at N px, back to back. Each row gives the process's wall time and the render's own split (its
summary line: fine-tuning, inference). Prints a Markdown table for BENCHMARKS.md; ``--json`` keeps the figures.
Run: ``.venv/bin/python benchmarks/bench_render.py [--device cuda] [--frames 100] [--json out.json]``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_io import synthesise  # noqa: E402  (a sibling script)

DEMO = REPO / "osvos_plugin" / "demo" / "bear"
SUMMARY_RE = re.compile(r"(\d+) frames written, (\d+) kept, in ([\d.]+) s \(fine-tune ([\d.]+) s, "
                        r"inference ([\d.]+) s")


def render(args: list[str], device: str, precision: str = "auto") -> dict:
    """One osvos-render process; its wall time and the summary line's figures."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    cmd = [sys.executable, "-m", "osvos_plugin.cli.render", *args, "--device", device, "--precision", precision,
           "--progress", "json"]
    t = time.monotonic()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    wall = time.monotonic() - t
    match = SUMMARY_RE.search(proc.stderr)
    if proc.returncode != 0 or match is None:
        raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}): {proc.stderr[-2000:]}")
    written, _, total, finetune, infer = match.groups()
    return {"process_s": wall, "render_s": float(total), "finetune_s": float(finetune), "infer_s": float(infer),
            "frames": int(written)}


def bench(workdir: Path, frames: int, device: str, shot: tuple[str, str, str] | None = None,
          batch: int = 0, parent: str | None = None, precision: str = "auto", second_pass: int = 0) -> list[dict]:
    """``shot``: (plate pattern, mask, mask frame) of a JPEG/PNG shot instead of the bundled demo; ``batch``:
    also render that shot again from its model (inference only) with this batch size; ``second_pass``: also
    render it again from its model with and without Second Pass Size at that many pixels, back to back, so
    that the two inference times compare within one run."""
    model = workdir / "shot.safetensors"
    plate, mask, mask_frame = shot or (str(DEMO / "plate" / "bear.####.jpg"), str(DEMO / "truth" / "bear.1001.png"),
                                       "1001")
    name = "demo" if shot is None else Path(plate).parent.name
    first = render([plate, "--mask", mask, "--mask-frame", mask_frame, "-o", str(workdir / "shot" / "m.####.exr"),
                    "--save-model", str(model), *(["--parent", parent] if parent else [])], device, precision)
    rows = [{"shot": f"{name}: {first['frames']} x 854x480, fine-tune + inference", **first}]
    if batch:
        again = render([plate, "--load-model", str(model), "--batch-size", str(batch),
                        "-o", str(workdir / "again" / "m.####.exr")], device, precision)
        rows.append({"shot": f"{name}: the same, inference only, batch {batch}", **again})
    if second_pass:
        for size in (0, second_pass):
            again = render([plate, "--load-model", str(model), "--second-pass-size", str(size),
                            "-o", str(workdir / f"pass{size}" / "m.####.exr")], device, precision)
            label = f"second pass at {size} px" if size else "no second pass"
            rows.append({"shot": f"{name}: the same, inference only, {label}", **again})
    plates = workdir / "plates"
    plates.mkdir(exist_ok=True)
    synthesise(plates, frames)
    exr = render([str(plates / "plate.####.exr"), "--load-model", str(model),
                  "-o", str(workdir / "exr" / "m.####.exr")], device, precision)
    return [*rows, {"shot": f"exr: {frames} x 1920x1080 half EXR, inference only", **exr}]


def device_line(device: str) -> str:
    """The CPU (model, the flags that decide the precision, usable cores) and the GPU when one runs."""
    import torch

    model, flags = "unknown CPU", set()
    try:
        info = Path("/proc/cpuinfo").read_text()
        model = re.search(r"^model name\s*:\s*(.+)$", info, re.M).group(1).strip()
        flags = set(re.search(r"^flags\s*:\s*(.+)$", info, re.M).group(1).split())
    except (OSError, AttributeError):
        pass
    simd = [f for f in ("avx2", "avx512f", "avx512_bf16", "amx_bf16") if f in flags] or ["no AVX2"]
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    line = f"CPU {model} ({usable} usable cores; {', '.join(simd)}), torch {torch.__version__}"
    if device != "cpu" and torch.cuda.is_available():
        line += f", GPU {torch.cuda.get_device_name(0)}"
    return line


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    ap.add_argument("--frames", type=int, default=100, help="EXR frames to synthesise (default: %(default)s)")
    ap.add_argument("--workdir", type=Path, default=None, help="Where plates and mattes go (default: a temp dir)")
    ap.add_argument("--shot", nargs=3, metavar=("PLATES", "MASK", "MASK_FRAME"), default=None,
                    help="A shot to fine-tune on instead of the bundled demo (e.g. an 80-frame 480p sequence)")
    ap.add_argument("--parent", default=None, help="Parent to fine-tune from (default: the shipped one)")
    ap.add_argument("--batch", type=int, default=0, help="Also render the shot from its model with this batch size")
    ap.add_argument("--precision", default="auto", choices=("auto", "fp32", "bf16", "int8"))
    ap.add_argument("--second-pass-size", type=int, default=0,
                    help="Also render the shot from its model without and with this Second Pass Size")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="osvos-bench-render-") as tmp:
        workdir = args.workdir or Path(tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        rows = bench(workdir, args.frames, args.device, tuple(args.shot) if args.shot else None, args.batch,
                     args.parent, args.precision, args.second_pass_size)
    machine = device_line(args.device)
    print(f"\n{machine}; device {args.device}, precision {args.precision}\n")
    print("| shot | process wall (s) | render (s) | fine-tune (s) | inference (s) | frames/s (inference) |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['shot']} | {r['process_s']:.1f} | {r['render_s']:.1f} | {r['finetune_s']:.1f} | "
              f"{r['infer_s']:.1f} | {r['frames'] / r['infer_s']:.2f} |")
    if args.json:
        args.json.write_text(json.dumps({"machine": machine, "device": args.device, "precision": args.precision,
                                         "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
