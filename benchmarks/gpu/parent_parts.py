"""A parent in float16 parts small enough to come back from a lent GPU machine (16 MiB a file), and back.

    python3 benchmarks/gpu/parent_parts.py split /tmp/twin/parent.safetensors $OUT/twin     # twin.part0..
    .venv/bin/python benchmarks/gpu/parent_parts.py join twin.safetensors twin.part*.safetensors

``join`` writes a checkpoint with the first part's record (provenance) and the architecture checked by
name, as any parent is loaded.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

PART_BYTES = 12 * 2**20


def split(src: str, prefix: str) -> list[str]:
    """``src`` as float16 parts ``prefix.partN.safetensors``, each under ``PART_BYTES``; the first keeps the
    checkpoint's metadata."""
    from safetensors import safe_open
    from safetensors.torch import save_file

    with safe_open(src, "pt") as f:
        meta = f.metadata() or {}
        tensors = {k: f.get_tensor(k).half() for k in f.keys()}  # noqa: SIM118 - safe_open has no iterator
    parts: list[list[str]] = [[]]
    size = 0
    for k in sorted(tensors):
        n = tensors[k].numel() * 2
        if parts[-1] and size + n > PART_BYTES:
            parts.append([])
            size = 0
        parts[-1].append(k)
        size += n
    out = []
    for i, keys in enumerate(parts):
        path = f"{prefix}.part{i}.safetensors"
        save_file({k: tensors[k] for k in keys}, path, metadata=meta if i == 0 else None)
        out.append(path)
    return out


def join(dst: str, parts: list[str]) -> None:
    """The parts back into one checkpoint, saved the way the trainer saves a parent."""
    from safetensors import safe_open

    from osvos_plugin.network import OSVOSNet
    from osvos_plugin.weights import save_checkpoint

    state, meta = {}, {}
    for i, p in enumerate(sorted(parts, key=lambda p: int(Path(p).name.split(".part")[1].split(".")[0]))):
        with safe_open(p, "pt") as f:
            if i == 0:
                meta = f.metadata() or {}
            state.update({k: f.get_tensor(k).float() for k in f.keys()})  # noqa: SIM118
    net = OSVOSNet(meta.get("input_convention", "caffe_bgr"))
    net.load_state_dict(state)
    provenance = json.loads(meta.get("provenance", "{}"))
    provenance["stored_as"] = "float16 parts, joined"
    save_checkpoint(net, dst, provenance=provenance)


if __name__ == "__main__":
    if len(sys.argv) >= 4 and sys.argv[1] == "split":
        print("\n".join(split(sys.argv[2], sys.argv[3])))
    elif len(sys.argv) >= 4 and sys.argv[1] == "join":
        join(sys.argv[2], sys.argv[3:])
    else:
        raise SystemExit(__doc__)
