"""Engine speed: seconds per fine-tuning step and per inferred frame, against a bare torchvision VGG16.

Prints a Markdown table (paste into BENCHMARKS.md). The bar (issue #2): OSVOS inference at 854x480
within 1.25x of torchvision's ``vgg16().features`` forward at the same size and precision, timed in the
same run. Run: ``.venv/bin/python benchmarks/bench_engine.py [--device cuda] [--repeats 5]``.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import platform
import statistics
import time

import numpy as np
import torch
import torchvision

from osvos_plugin.augment import AugmentConfig
from osvos_plugin.device import autocast, prepare_model, resolve_device, training_memory_format
from osvos_plugin.finetune import FinetuneConfig, finetune
from osvos_plugin.inference import InferenceConfig, Segmenter
from osvos_plugin.network import VGG16_CFG, OSVOSNet
from osvos_plugin.training import OptimConfig

SIZES = [(480, 854), (240, 427)]


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def time_it(fn, device: torch.device, repeats: int, warmup: int = 1) -> float:
    for _ in range(warmup):
        fn()
    _sync(device)
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def bench(device: torch.device, repeats: int, finetune_steps: int) -> list[dict]:
    rows = []
    vgg = prepare_model(torchvision.models.vgg16().features, device).eval()
    net = OSVOSNet()
    for h, w in SIZES:
        rgb = np.random.default_rng(0).random((h, w, 3), dtype=np.float32)
        mask = np.zeros((h, w), np.float32)
        mask[h // 4: 3 * h // 4, w // 4: 3 * w // 4] = 1
        for precision, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
            seg = Segmenter(net, InferenceConfig(process_size=0, batch_size=1, device=str(device),
                                                 precision=precision, flip_average=False))  # one pass, as VGG's
            x = torch.rand(1, 3, h, w, device=device).contiguous(memory_format=torch.channels_last)

            def vgg_forward(x=x, dtype=dtype):
                with torch.inference_mode(), autocast(device, dtype):
                    vgg(x)

            t_vgg = time_it(vgg_forward, device, repeats)
            t_osvos = time_it(lambda rgb=rgb, seg=seg: seg.predict(rgb), device, repeats)
            # Fine-tuning steps at scale 1.0 only (the paper's 0.5/0.8 scales are cheaper).
            cfg = FinetuneConfig(iterations=finetune_steps, process_size=max(h, w), device=str(device),
                                 precision=precision, augment=AugmentConfig(scales=(1.0,), crop=1.0, colour=0.0))
            finetune(net, [(rgb, mask)], FinetuneConfig(**{**cfg.__dict__, "iterations": 2}))  # warm-up
            _sync(device)
            t = time.perf_counter()
            finetune(net, [(rgb, mask)], cfg)
            _sync(device)
            t_step = (time.perf_counter() - t) / finetune_steps
            rows.append({"size": f"{w}x{h}", "precision": precision, "vgg16_features_s": t_vgg,
                         "osvos_infer_s": t_osvos, "ratio": t_osvos / t_vgg, "finetune_step_s": t_step})
    return rows


def step_arithmetic(device: torch.device, repeats: int) -> list[dict]:
    """One fine-tuning step's arithmetic (forward + backward, counted by torch's FlopCounterMode) and time
    at the fine-tuning size (480x270, fp32), with conv1 frozen (the default) and conv1-conv3 frozen, and a
    bare torchvision VGG16 ``features`` forward + backward beside them: how close the step runs to what
    the cores can do, which says whether faster code or less arithmetic is what can speed it up. The
    default step and VGG16 in both layouts, channels_last and NCHW: which one a CPU trains faster in."""
    from torch.utils.flop_counter import FlopCounterMode

    from osvos_plugin.losses import deep_supervision_loss
    from osvos_plugin.training import trainable_parameters

    h, w = 270, 480
    y = torch.zeros(1, 1, h, w, device=device)
    y[..., h // 4: 3 * h // 4, w // 4: 3 * w // 4] = 1
    rows = []
    # the default step in both layouts (training runs NCHW where training_memory_format says so), conv1-conv3
    # frozen in channels_last as before, and VGG16 in both
    layouts = {"channels_last": torch.channels_last, "NCHW": torch.contiguous_format}
    for freeze, layout in ((1, "channels_last"), (1, "NCHW"), (3, "channels_last")):
        net = prepare_model(OSVOSNet(), device).to(memory_format=layouts[layout]).train()
        trainable_parameters(net, freeze)
        x = torch.rand(1, 3, h, w, device=device).contiguous(memory_format=layouts[layout])

        def step(net=net, x=x) -> None:
            fused, sides = net.forward_with_sides(x)
            deep_supervision_loss(fused, sides, y, 0.5).backward()

        with FlopCounterMode(display=False) as counter:
            step()
        rows.append({"what": f"OSVOS fine-tuning step, conv1-conv{freeze} frozen, {layout}",
                     "gflop": counter.get_total_flops() / 1e9, "s": time_it(step, device, repeats)})
    for layout, fmt in layouts.items():
        vgg = torchvision.models.vgg16().features.to(device=device, memory_format=fmt).train()
        x = torch.rand(1, 3, h, w, device=device).contiguous(memory_format=fmt)

        def vgg_step(vgg=vgg, x=x) -> None:
            vgg(x).float().mean().backward()

        with FlopCounterMode(display=False) as counter:
            vgg_step()
        rows.append({"what": f"torchvision VGG16 features, forward + backward, {layout}",
                     "gflop": counter.get_total_flops() / 1e9, "s": time_it(vgg_step, device, repeats)})
    return rows


def layout_comparison(repeats: int, finetune_steps: int) -> list[dict]:
    """Which layout the CPU trains faster in (``device.training_memory_format``), fp32, 2 rounds alternating:
    every trained VGG conv's forward + backward alone at its 480x270 size; whole ``finetune`` runs of the
    render's default samples at 480 and 854 with the layout forced each way; and AdamW's step over the
    network's trained parameters, plain and fused."""
    import osvos_plugin.training as training
    from osvos_plugin.training import trainable_parameters

    layouts = {"channels_last": torch.channels_last, "NCHW": torch.contiguous_format}
    rows = []
    in_ch, scale = 64, 2
    for stage, widths in enumerate(VGG16_CFG[1:], start=2):
        for k, out_ch in enumerate(widths, start=1):
            h, w = -(-270 // scale), -(-480 // scale)
            for layout, fmt in layouts.items():
                conv = torch.nn.Conv2d(in_ch, out_ch, 3, padding=1).to(memory_format=fmt)
                x = torch.rand(1, in_ch, h, w).contiguous(memory_format=fmt).requires_grad_(stage > 2 or k > 1)

                def fwd_bwd(conv=conv, x=x) -> None:
                    conv(x).sum().backward()

                rows.append({"what": f"conv{stage}_{k} {w}x{h} {in_ch}->{out_ch}", "layout": layout,
                             "s": time_it(fwd_bwd, torch.device("cpu"), repeats)})
            in_ch = out_ch
        scale *= 2
    shots = {}
    for size in (480, 854):
        h = round(size * 270 / 480)
        rgb = np.random.default_rng(0).random((h, size, 3), dtype=np.float32)
        mask = np.zeros((h, size), np.float32)
        mask[h // 4: 3 * h // 4, size // 4: 3 * size // 4] = 1
        shots[size] = (rgb, mask)
    net, chosen = OSVOSNet(), training.training_memory_format
    try:
        times: dict[tuple[int, str], list[float]] = {}
        for _ in range(2):
            for size, (rgb, mask) in shots.items():
                for layout, fmt in layouts.items():
                    training.training_memory_format = lambda _d, _t, fmt=fmt: fmt
                    cfg = FinetuneConfig(iterations=finetune_steps, process_size=size, device="cpu", precision="fp32")
                    t = time.perf_counter()
                    finetune(net, [(rgb, mask)], cfg)
                    times.setdefault((size, layout), []).append((time.perf_counter() - t) / finetune_steps)
    finally:
        training.training_memory_format = chosen
    rows += [{"what": f"fine-tuning step, {size} px, default samples", "layout": layout, "s": min(v)}
             for (size, layout), v in times.items()]
    params = trainable_parameters(OSVOSNet(), 1)
    for p in params:
        p.grad = torch.randn_like(p) * 1e-3
    cfg = OptimConfig()
    for fused in (False, True):
        opt = torch.optim.AdamW(params, lr=cfg.learning_rate, weight_decay=cfg.weight_decay, fused=fused)
        rows.append({"what": "AdamW step", "layout": "fused" if fused else "foreach",
                     "s": time_it(opt.step, torch.device("cpu"), max(repeats, 10))})
    return rows


_PRECISION_NAMES = {torch.float32: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}


def compile_comparison(repeats: int, finetune_steps: int) -> list[dict]:
    """``torch.compile`` against eager on the CPU, in the precision ``auto`` picks here: a fine-tuning step
    (conv1 frozen, the training layout) at one fixed 368x208 crop, then at a new random crop each step as
    fine-tuning draws them (``dynamic=True``); a flip-averaged frame (a batch of 2 at 480x270) in int8 and
    in bf16 (Inductor's ``freezing`` on). The first call holds the compilation (from an empty cache: a new
    cache folder for the run, removed after); the median, the steady cost; the total, every recompilation
    too."""
    with _empty_inductor_cache():
        return _compile_rows(repeats, finetune_steps)


@contextlib.contextmanager
def _empty_inductor_cache():
    """Inductor with an empty cache in a temporary folder, so the first call holds the whole compilation; the
    folder removed, ``TORCHINDUCTOR_CACHE_DIR`` and Inductor's ``freezing`` put back after. Inductor keeps its
    precompiled C++ headers in the default cache folder whatever the variable says (a path fixed when it is
    imported), so those paths are pointed into the temporary folder too."""
    import os
    import tempfile
    from unittest import mock

    import torch._inductor.codecache
    import torch._inductor.config as inductor_config

    before, freezing = os.environ.get("TORCHINDUCTOR_CACHE_DIR"), inductor_config.freezing
    with tempfile.TemporaryDirectory(prefix="osvos-inductor-") as cache:
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = cache
        headers = os.path.join(cache, "precompiled_headers")
        try:
            with mock.patch.multiple(torch._inductor.codecache, _HEADER_DIR=headers,
                                     _HEADER_LOCK_DIR=os.path.join(headers, "locks")):
                yield
        finally:
            inductor_config.freezing = freezing
            if before is None:
                os.environ.pop("TORCHINDUCTOR_CACHE_DIR", None)
            else:
                os.environ["TORCHINDUCTOR_CACHE_DIR"] = before


def _compile_rows(repeats: int, finetune_steps: int) -> list[dict]:
    import torch._inductor.config as inductor_config

    from osvos_plugin.device import resolve_precision
    from osvos_plugin.losses import deep_supervision_loss
    from osvos_plugin.quantize import quantize_for_cpu
    from osvos_plugin.training import trainable_parameters

    device = torch.device("cpu")
    dtype = resolve_precision("auto", device)
    layout = training_memory_format(device, dtype)
    rows = []

    def timed(fn, n: int) -> tuple[float, float, float]:
        times = []
        for i in range(n):
            t = time.perf_counter()
            fn(i)
            times.append(time.perf_counter() - t)
        return times[0], statistics.median(times[1:]), sum(times)

    for shapes, n in (("fixed", max(finetune_steps, 10)), ("random", max(finetune_steps, 10))):
        sizes = np.random.default_rng(1).integers((150, 250), (270, 480), size=(n, 2))
        for compiled in (False, True):
            torch.manual_seed(0)
            net = prepare_model(OSVOSNet(), device).to(memory_format=layout).train()
            opt = torch.optim.SGD(trainable_parameters(net, 1), lr=1e-8, momentum=0.9)

            def loss_of(x: torch.Tensor, y: torch.Tensor, net=net) -> torch.Tensor:
                with autocast(device, dtype):
                    fused, sides = net.forward_with_sides(x)
                return deep_supervision_loss(fused, sides, y, 1.0)

            loss_fn = torch.compile(loss_of, dynamic=shapes == "random") if compiled else loss_of

            def step(i: int, loss_fn=loss_fn, opt=opt, sizes=sizes, shapes=shapes) -> None:
                h, w = (208, 368) if shapes == "fixed" else (int(sizes[i][0]), int(sizes[i][1]))
                x = torch.rand(1, 3, h, w).contiguous(memory_format=layout)
                y = (torch.rand(1, 1, h, w) > 0.9).float()
                opt.zero_grad(set_to_none=True)
                loss_fn(x, y).backward()
                opt.step()

            first, steady, total = timed(step, n)
            crops = "fixed crop" if shapes == "fixed" else "random crops"
            rows.append({"what": f"fine-tuning step, {_PRECISION_NAMES[dtype]}, {crops}, {n} steps",
                         "mode": "compiled" if compiled else "eager", "first": first, "s": steady, "total": total})
    x = torch.rand(2, 3, 270, 480)
    net = OSVOSNet().eval()
    inductor_config.freezing = True
    for what in ("int8", "bf16"):
        for compiled in (False, True):
            if what == "int8":
                model, inp, ctx = quantize_for_cpu(net, 480), x, torch.inference_mode
            else:
                model = prepare_model(copy.deepcopy(net), device)
                inp = x.contiguous(memory_format=torch.channels_last)

                def ctx() -> contextlib.ExitStack:
                    stack = contextlib.ExitStack()
                    stack.enter_context(torch.inference_mode())
                    stack.enter_context(autocast(device, torch.bfloat16))
                    return stack
            run = torch.compile(model) if compiled else model

            def frame(_i: int, run=run, inp=inp, ctx=ctx) -> None:
                with ctx():
                    run(inp)

            n = max(repeats, 10)
            first, steady, total = timed(frame, n)
            rows.append({"what": f"flip-averaged frame, 480x270, {what}, {n} frames",
                         "mode": "compiled" if compiled else "eager", "first": first, "s": steady, "total": total})
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="auto")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--finetune-steps", type=int, default=10)
    ap.add_argument("--arithmetic", action="store_true",
                    help="Only a fine-tuning step's arithmetic and time (480x270, fp32) against VGG16's")
    ap.add_argument("--layouts", action="store_true",
                    help="Only training's layouts on the CPU (channels_last against NCHW) and AdamW plain or fused")
    ap.add_argument("--compile", action="store_true",
                    help="Only torch.compile against eager on the CPU: fine-tuning steps and inferred frames")
    args = ap.parse_args()
    device = resolve_device(args.device)
    name = torch.cuda.get_device_name() if device.type == "cuda" else platform.processor() or platform.machine()
    print(f"device: {device} ({name}), torch {torch.__version__}, threads {torch.get_num_threads()}")
    if args.arithmetic:
        print("| 480x270, fp32 | GFLOP | s | GFLOP/s |\n|---|---|---|---|")
        for r in step_arithmetic(device, args.repeats):
            print(f"| {r['what']} | {r['gflop']:.1f} | {r['s']:.2f} | {r['gflop'] / r['s']:.0f} |")
        return
    if args.compile:
        print(f"CPU capability {torch.backends.cpu.get_cpu_capability()}")
        print("| CPU | mode | first call (s) | then, median (s) | all calls (s) |\n|---|---|---|---|---|")
        for r in compile_comparison(args.repeats, args.finetune_steps):
            print(f"| {r['what']} | {r['mode']} | {r['first']:.2f} | {_seconds(r['s'])} | {r['total']:.1f} |")
        return
    if args.layouts:
        print(f"CPU capability {torch.backends.cpu.get_cpu_capability()}; training_memory_format picks "
              f"{training_memory_format(torch.device('cpu'), torch.float32)} for fp32")
        print("| fp32, CPU | layout | s |\n|---|---|---|")
        for r in layout_comparison(args.repeats, args.finetune_steps):
            print(f"| {r['what']} | {r['layout']} | {_seconds(r['s'])} |")
        return
    print("| size | precision | torchvision VGG16 features (s) | OSVOS inference per frame (s) | ratio | "
          "fine-tune step (s) |")
    print("|---|---|---|---|---|---|")
    for r in bench(device, args.repeats, args.finetune_steps):
        s = {k: _seconds(r[k]) for k in ("vgg16_features_s", "osvos_infer_s", "finetune_step_s")}
        print(f"| {r['size']} | {r['precision']} | {s['vgg16_features_s']} | {s['osvos_infer_s']} | "
              f"{r['ratio']:.2f}x | {s['finetune_step_s']} |")


def _seconds(t: float) -> str:
    """Three significant digits, so that GPU timings of a few ms are not rounded to 0.004 as three decimals would."""
    return f"{t:#.3g}" if t < 1 else f"{t:.2f}"


if __name__ == "__main__":
    main()
