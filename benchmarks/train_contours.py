"""A contour head for boundary snapping, trained on DAVIS's own object boundaries (issue 16).

BSDS500's HED, which ``boundary_snap`` runs, fires on texture as much as on the object's outline, and
snapping with it moved J&F by at most +0.002 on the two folds (docs/experiments.md, session 10). The
paper's contour branch was trained for object contours. This trains HED's last ``--train-stages`` VGG stages
and its side outputs and fusion on the boundaries of the DAVIS training masks (every frame of every
sequence outside ``--hold-out-fold``: a fold's head never sees the fold it is judged on), with the
parent's augmentation; the earlier stages stay BSDS HED's. The result is the changed tensors only, loaded
over BSDS HED by ``load_contour_net``.
    .venv/bin/python benchmarks/train_contours.py --hold-out-fold a --out /tmp/contours-a.safetensors
Scored by ``bench_snap.py``. An exploration: the product's snapping still runs BSDS HED.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file

from osvos_plugin.data.davis import default_davis_root, list_sequences, load_sequence
from osvos_plugin.device import autocast, configure_cpu_threads, resolve_device, resolve_precision
from osvos_plugin.files import atomic_write
from osvos_plugin.losses import deep_supervision_loss
from osvos_plugin.network import HEDContourNet
from osvos_plugin.parent import FOLDS, FrameSampler, ParentConfig
from osvos_plugin.training import lr_factor
from osvos_plugin.weights import load_hed_contour_net

log = logging.getLogger("train_contours")


def boundaries(mask: torch.Tensor, width: int = 1) -> torch.Tensor:
    """Object boundary (N, 1, H, W) 0/1 of soft masks (N, 1, H, W): pixels within ``width`` of a change
    between object (> 0.5) and background, on both sides of it."""
    m = (mask > 0.5).float()
    k = 2 * width + 1
    grown = F.max_pool2d(m, k, 1, width)
    shrunk = -F.max_pool2d(-m, k, 1, width)
    return (grown != shrunk).float()


def trainable(net: HEDContourNet, train_stages: int) -> list[str]:
    """Unfreeze the last ``train_stages`` stages, the side outputs and the fusion; the names of what trains."""
    net.requires_grad_(False)
    first = len(net.stages) - train_stages
    for i, stage in enumerate(net.stages):
        stage.requires_grad_(i >= first)
    net.dsn.requires_grad_(True)
    net.fuse.requires_grad_(True)
    return [n for n, p in net.named_parameters() if p.requires_grad]


def load_contour_net(path: str | Path | None) -> HEDContourNet:
    """BSDS HED, with a trained head's tensors over it when ``path`` is given (every name must exist)."""
    net = load_hed_contour_net()
    if path:
        head = load_file(str(path))
        own = net.state_dict()
        unknown = sorted(n for n in head if n not in own or head[n].shape != own[n].shape)
        if unknown:
            raise ValueError(f"{path}: not a contour head of this network (unknown or misshapen tensors "
                             f"{unknown[:3]}); make one with train_contours.py")
        own.update(head)
        net.load_state_dict(own)
    return net.eval()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--davis-root", type=Path, default=None)
    ap.add_argument("--hold-out-fold", choices=sorted(FOLDS), required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--steps", type=int, default=1500)
    ap.add_argument("--train-stages", type=int, default=1, choices=range(6),
                    help="Last VGG stages trained (0: side outputs only).")
    ap.add_argument("--learning-rate", type=float, default=1e-4)
    ap.add_argument("--long-side", type=int, default=480)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    configure_cpu_threads()
    torch.manual_seed(args.seed)
    root = args.davis_root or default_davis_root()
    names = [n for n in list_sequences(root) if n not in FOLDS[args.hold_out_fold]]
    t = time.perf_counter()
    seqs = [load_sequence(root, n, long_side=args.long_side) for n in names]
    log.info("%d sequences (%d frames) in %.0f s", len(seqs), sum(len(s.frames) for s in seqs),
             time.perf_counter() - t)
    device = resolve_device("auto")
    dtype = resolve_precision("auto", device)
    sampler = FrameSampler(seqs, ParentConfig(seed=args.seed), device)
    net = load_contour_net(None).to(device)
    names_trained = trainable(net, args.train_stages)
    net.train()
    opt = torch.optim.AdamW([p for p in net.parameters() if p.requires_grad], lr=args.learning_rate,
                            weight_decay=2e-4)
    t = time.perf_counter()
    for step in range(args.steps):
        image, mask = sampler(step)
        target = boundaries(mask)
        for g in opt.param_groups:  # cosine to 1/20, as fine-tuning
            g["lr"] = args.learning_rate * lr_factor(step, args.steps, "cosine")
        with autocast(device, dtype):
            fused, sides = net.forward_with_sides(image)
        loss = deep_supervision_loss(fused.float(), [s.float() for s in sides], target, side_weight=1.0)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if step % 100 == 0 or step == args.steps - 1:
            log.info("step %d loss %.4f (%.2f s a step)", step, loss.item(), (time.perf_counter() - t) / (step + 1))
    state = {n: p.detach().float().cpu().contiguous() for n, p in net.named_parameters() if n in names_trained}
    meta = {"hold_out_fold": args.hold_out_fold, "steps": str(args.steps), "train_stages": str(args.train_stages),
            "sequences": json.dumps(names)}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(args.out, lambda tmp: save_file(state, str(tmp), metadata=meta))  # never a half-written head
    log.info("wrote %s (%d tensors) after %.0f s", args.out, len(state), time.perf_counter() - t)


if __name__ == "__main__":
    main()
