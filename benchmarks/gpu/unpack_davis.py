"""Turn ``pack_davis.py``'s WebP frames back into a DAVIS root (JPEG quality 95), on the GPU machine."""

from __future__ import annotations

import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2


def unpack(src: Path, dst: Path) -> int:
    def one(f: Path) -> None:
        seq = f.parent.name
        img = dst / "JPEGImages/480p" / seq / f"{f.stem}.jpg"
        ann = dst / "Annotations/480p" / seq / f"{f.stem}.png"
        img.parent.mkdir(parents=True, exist_ok=True)
        ann.parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(img), cv2.imread(str(f)), [cv2.IMWRITE_JPEG_QUALITY, 95])
        ann.write_bytes((src / "ann" / seq / f"{f.stem}.png").read_bytes())

    files = sorted((src / "img").glob("*/*.webp"))
    with ThreadPoolExecutor(16) as ex:
        list(ex.map(one, files))
    return len(files)


if __name__ == "__main__":
    print("unpacked", unpack(Path(sys.argv[1]), Path(sys.argv[2])))
