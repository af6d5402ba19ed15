"""Plate I/O: peak memory and time of ``render`` over a synthesised 1920x1080 half-float EXR sequence.

Prints a Markdown table (paste into BENCHMARKS.md). The bar (issue text): peak RSS must not grow with
the number of frames, and reading/writing must overlap with the network's work so that I/O adds little
to the total. Each measurement runs in a fresh subprocess, so a peak RSS (``ru_maxrss``) is that run's
alone. For two shot lengths (N/4 and N frames) it reports the render's peak RSS and wall time
(``RenderSummary.total_s``), the network-only time for as many frames (one in-memory frame pushed
through ``Segmenter.stream``), the read-only time (as the render reads: ``validate_plates`` decoding
every frame into ``PreparedPlates``, then ``PrefetchReader`` loading them; no network) and
the write-only time (``write_matte`` of every frame, one after the other). I/O overhead is
``(render - network-only) / render``; without overlap the render would take about network + read + write.

The render uses a random-init ``OSVOSNet`` checkpoint via ``load_model`` (no fine-tuning: the figure is
about I/O and inference). Plates are read from the page cache after synthesis (decode cost, not disk
cost). Run: ``.venv/bin/python benchmarks/bench_io.py [--frames 200] [--workdir DIR --keep] [--threads N]``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np

WIDTH, HEIGHT = 1920, 1080
FIRST_FRAME = 1001
# flip averaging off: it doubles the network's share, which would hide the I/O this script measures
PARAMS = {"process_size": 480, "batch_size": 2, "flip_average": False}
PLATE_PATTERN = "plate.####.exr"
CHECKPOINT = "osvos_random_init.safetensors"
RESULT_TAG = "BENCH_IO_RESULT "


def plate_path(workdir: Path, frame: int) -> Path:
    return workdir / f"plate.{frame:04d}.exr"


def synth_frame(index: int, rng: np.random.Generator) -> np.ndarray:
    """One (H, W, 3) scene-linear frame: graded background, moving soft shapes, a > 1.0 highlight, grain."""
    y = np.linspace(0.0, 1.0, HEIGHT, dtype=np.float32)[:, None]
    x = np.linspace(0.0, 1.0, WIDTH, dtype=np.float32)[None, :]
    t = index / 24.0
    base = 0.05 + 0.25 * y + 0.05 * np.sin(6.0 * x + 0.7 * t) * np.cos(4.0 * y - 0.3 * t)
    frame = np.empty((HEIGHT, WIDTH, 3), np.float32)
    for c, tint in enumerate((1.0, 0.85, 0.7)):
        frame[:, :, c] = base * tint
    # The "object": a soft disc crossing the frame, and a specular highlight well above 1.0.
    cx, cy = 0.2 + 0.6 * (0.5 + 0.5 * math.sin(0.4 * t)), 0.5 + 0.2 * math.sin(0.9 * t)
    aspect = WIDTH / HEIGHT
    d2 = ((x - cx) * aspect) ** 2 + (y - cy) ** 2
    disc = 1.0 / (1.0 + np.exp((np.sqrt(d2) - 0.18) * 60.0))
    for c, colour in enumerate((0.6, 0.3, 0.15)):
        frame[:, :, c] = frame[:, :, c] * (1.0 - disc) + colour * disc
    hx, hy = cx + 0.05, cy - 0.06
    highlight = 4.0 * np.exp(-(((x - hx) * aspect) ** 2 + (y - hy) ** 2) / 0.0008)
    frame += highlight[:, :, None]
    frame *= 1.0 + rng.normal(0.0, 0.02, size=frame.shape).astype(np.float32)  # film grain
    return np.maximum(frame, 0.0)


def write_exr(path: Path, pixels: np.ndarray) -> None:
    """Half-float RGB EXR with ZIP compression, written to a temp name then renamed (never half a file)."""
    import OpenImageIO as oiio

    spec = oiio.ImageSpec(WIDTH, HEIGHT, 3, "half")
    spec.channelnames = ("R", "G", "B")
    spec.attribute("compression", "zip")
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    out = oiio.ImageOutput.create("openexr")
    if out is None or not out.open(str(tmp), spec):
        raise RuntimeError(f"cannot open {tmp} for writing: {oiio.geterror()}")
    ok = out.write_image(np.ascontiguousarray(pixels, dtype=np.float32))
    out.close()
    if not ok:
        tmp.unlink(missing_ok=True)
        raise RuntimeError(f"writing {tmp} failed: {out.geterror()}")
    os.replace(tmp, path)


def is_valid_plate(path: Path) -> bool:
    import OpenImageIO as oiio

    if not path.is_file():
        return False
    inp = oiio.ImageInput.open(str(path))
    if inp is None:
        oiio.geterror()
        return False
    spec = inp.spec()
    inp.close()
    return (spec.width, spec.height, spec.nchannels, str(spec.format)) == (WIDTH, HEIGHT, 3, "half")


def synthesise(workdir: Path, frames: int) -> tuple[list[Path], int]:
    """Plates for FIRST_FRAME.. in ``workdir``; existing valid ones are reused. Returns (created, reused)."""
    created, reused = [], 0
    t = time.perf_counter()
    for i in range(frames):
        path = plate_path(workdir, FIRST_FRAME + i)
        if is_valid_plate(path):
            reused += 1
            continue
        write_exr(path, synth_frame(i, np.random.default_rng(i)))
        created.append(path)
    if created:
        print(f"synthesised {len(created)} plates in {time.perf_counter() - t:.1f} s", file=sys.stderr)
    return created, reused


# ---------------------------------------------------------------- measured runs (each in its own process)


def _peak_rss_mib() -> float:
    import resource

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024  # bytes on macOS, KiB on Linux


def _frames_range(n: int) -> str:
    return f"{FIRST_FRAME}-{FIRST_FRAME + n - 1}"


def child_render(workdir: Path, n: int) -> dict:
    from osvos_plugin.pipeline import RenderJob, render

    job = RenderJob(
        source=str(workdir / PLATE_PATTERN),
        output=str(workdir / f"out_{n}" / "matte.####.exr"),
        load_model=str(workdir / CHECKPOINT),
        params={**PARAMS, "frames": _frames_range(n)},
        overwrite=True,
    )
    summary = render(job)
    if summary.written != n:
        raise RuntimeError(f"render wrote {summary.written} mattes, expected {n}")
    return {"written": summary.written, "total_s": summary.total_s, "infer_s": summary.infer_s}


def child_network(workdir: Path, n: int) -> dict:
    from osvos_plugin.inference import Segmenter
    from osvos_plugin.io import read_plate
    from osvos_plugin.settings import RenderSettings
    from osvos_plugin.weights import load_checkpoint

    s = RenderSettings.resolve(PARAMS)
    # As the render: the plate comes in shrunk to the processing size, the matte goes out at plate size.
    rgb = read_plate(plate_path(workdir, FIRST_FRAME), frame=FIRST_FRAME, colorspace=s.input_colorspace,
                     max_size=s.process_size).rgb
    model, _ = load_checkpoint(workdir / CHECKPOINT, expect="osvos-vgg16")
    t = time.monotonic()  # as render's inference stage: Segmenter set-up, then the stream
    segmenter = Segmenter(model, s.inference())
    done = sum(1 for _ in segmenter.stream(((i, rgb) for i in range(n)), total=n, out_size=(HEIGHT, WIDTH)))
    return {"frames": done, "network_s": time.monotonic() - t}


def child_read(workdir: Path, n: int) -> dict:
    """Reading as the render reads: the up-front check decodes and prepares, then the reader loads."""
    from osvos_plugin.io import PrefetchReader, PreparedPlates, validate_plates
    from osvos_plugin.settings import RenderSettings

    s = RenderSettings.resolve(PARAMS)
    frames = [(FIRST_FRAME + i, plate_path(workdir, FIRST_FRAME + i)) for i in range(n)]
    t = time.monotonic()
    with PreparedPlates([f for f, _ in frames], colorspace=s.input_colorspace, max_size=s.process_size) as prepared:
        validate_plates(frames, prepare=prepared.add)
        t_check = time.monotonic() - t
        done = sum(1 for _ in PrefetchReader(frames, prepared.read, workers=1))
    return {"frames": done, "read_s": time.monotonic() - t, "check_s": t_check}


def child_write(workdir: Path, n: int) -> dict:
    from osvos_plugin.io import read_plate_info, write_matte
    from osvos_plugin.settings import RenderSettings

    fmt = RenderSettings.resolve(PARAMS).output_format
    infos = [read_plate_info(plate_path(workdir, FIRST_FRAME + i), frame=FIRST_FRAME + i) for i in range(n)]
    yy, xx = np.mgrid[0:HEIGHT, 0:WIDTH]
    out_dir = workdir / f"write_{n}"
    t = time.monotonic()
    for i, info in enumerate(infos):  # a hard matte of a moving disc, as the render would write
        cx = WIDTH * (0.2 + 0.6 * i / max(n, 1))
        matte = (((xx - cx) ** 2 + (yy - HEIGHT / 2) ** 2) < (0.18 * HEIGHT) ** 2).astype(np.float32)
        write_matte(out_dir / f"matte.{info.frame:04d}.exr", matte, info, fmt)
    return {"frames": n, "write_s": time.monotonic() - t}


CHILDREN = {"render": child_render, "network": child_network, "read": child_read, "write": child_write}


def run_child(mode: str, workdir: Path, n: int, threads: int | None) -> dict:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", mode, "--workdir", str(workdir),
           "--frames", str(n)]
    if threads:
        cmd += ["--threads", str(threads)]
    # OMP_NUM_THREADS, not just torch.set_num_threads: the engine sets torch's threads to the usable cores
    # unless OMP_NUM_THREADS says otherwise (device.configure_cpu_threads).
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)} if threads else None
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, text=True, env=env)  # stderr passes through
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith(RESULT_TAG)]
    if proc.returncode != 0 or not lines:
        sys.stderr.write(proc.stdout)
        raise SystemExit(f"{mode} run over {n} frames failed (exit status {proc.returncode})")
    return json.loads(lines[-1][len(RESULT_TAG):])


def child_main(mode: str, workdir: Path, n: int, threads: int | None) -> None:
    import torch

    if threads:
        torch.set_num_threads(threads)
    result = CHILDREN[mode](workdir, n)
    result["peak_rss_mib"] = _peak_rss_mib()
    print(RESULT_TAG + json.dumps(result), flush=True)


# ---------------------------------------------------------------- driver


def machine_line(threads: int | None) -> str:
    import OpenImageIO as oiio
    import torch

    from osvos_plugin.device import resolve_device

    device = resolve_device("auto")
    name = torch.cuda.get_device_name() if device.type == "cuda" else platform.processor() or platform.machine()
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return (f"machine: {os.cpu_count()} CPUs ({usable} usable), {platform.system()} {platform.machine()}, "
            f"device {device} ({name}), torch {torch.__version__} ({threads or torch.get_num_threads()} "
            f"threads), OpenImageIO {oiio.__version__}, Python {platform.python_version()}")


def bench(workdir: Path, frames: int, threads: int | None) -> list[dict]:
    rows = []
    for n in sorted({max(1, frames // 4), frames}):
        row = {"frames": n}
        for mode in ("render", "network", "read", "write"):
            print(f"  {mode} x {n} frames...", file=sys.stderr, flush=True)
            result = run_child(mode, workdir, n, threads)
            row[mode] = result
        rows.append(row)
    return rows


def print_table(rows: list[dict]) -> None:
    print("| frames | peak RSS (MiB) | wall time (s) | s/frame | network-only (s) | read-only (s) | "
          "write-only (s) | I/O overhead (%) |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        n, total = r["frames"], r["render"]["total_s"]
        net, rd, wr = r["network"]["network_s"], r["read"]["read_s"], r["write"]["write_s"]
        overhead = 100.0 * (total - net) / total if total > 0 else 0.0
        print(f"| {n} | {r['render']['peak_rss_mib']:.0f} | {total:.1f} | {total / n:.3f} | {net:.1f} | "
              f"{rd:.1f} | {wr:.1f} | {overhead:.1f} |")
    print()
    for r in rows:
        n, total = r["frames"], r["render"]["total_s"]
        serial = r["network"]["network_s"] + r["read"]["read_s"] + r["write"]["write_s"]
        print(f"- {n} frames: render {total:.1f} s (check and model load {total - r['render']['infer_s']:.1f} s, "
              f"inference stage {r['render']['infer_s']:.1f} s) vs. "
              f"network + read + write without overlap {serial:.1f} s; peak RSS of the network-only "
              f"process {r['network']['peak_rss_mib']:.0f} MiB.")
    if len(rows) > 1:
        a, b = rows[0], rows[-1]
        grow = b["render"]["peak_rss_mib"] - a["render"]["peak_rss_mib"]
        print(f"- peak RSS from {a['frames']} to {b['frames']} frames: {grow:+.0f} MiB "
              f"({b['render']['peak_rss_mib'] / a['render']['peak_rss_mib']:.2f}x).")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=200, help="shot length N (also measured: N/4)")
    ap.add_argument("--workdir", type=Path, help="where plates, checkpoint and mattes go (default: a temp dir)")
    ap.add_argument("--keep", action="store_true", help="keep what was written (re-runs reuse the plates)")
    ap.add_argument("--threads", type=int, help="torch threads in the measured processes")
    ap.add_argument("--child", choices=sorted(CHILDREN), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.frames < 1:
        ap.error("--frames must be at least 1")
    if args.child:
        child_main(args.child, args.workdir, args.frames, args.threads)
        return

    print(machine_line(args.threads))
    made_dir = args.workdir is None or not args.workdir.exists()
    workdir = Path(tempfile.mkdtemp(prefix="osvos_bench_io_")) if args.workdir is None else args.workdir
    workdir.mkdir(parents=True, exist_ok=True)
    created: list[Path] = []
    try:
        created, reused = synthesise(workdir, args.frames)
        sizes = [plate_path(workdir, FIRST_FRAME + i).stat().st_size for i in range(args.frames)]
        print(f"plates: {args.frames} x {WIDTH}x{HEIGHT} RGB half EXR (ZIP), {np.mean(sizes) / 2**20:.1f} MiB "
              f"each on average, {reused} reused; render params {PARAMS}, random-init checkpoint, no fine-tune")
        import torch

        from osvos_plugin.network import OSVOSNet
        from osvos_plugin.weights import save_checkpoint

        torch.manual_seed(0)
        save_checkpoint(OSVOSNet(), workdir / CHECKPOINT, provenance={"kind": "bench_io random init"})
        print()
        print_table(bench(workdir, args.frames, args.threads))
    finally:
        if args.keep:
            print(f"\nkept {workdir}", file=sys.stderr)
        elif made_dir:
            shutil.rmtree(workdir, ignore_errors=True)
        else:  # a directory the user gave: remove only what this run wrote, keep plates that were there
            for path in created:
                path.unlink(missing_ok=True)
            (workdir / CHECKPOINT).unlink(missing_ok=True)
            for sub in list(workdir.glob("out_*")) + list(workdir.glob("write_*")):
                shutil.rmtree(sub, ignore_errors=True)


if __name__ == "__main__":
    main()
