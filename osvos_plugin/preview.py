"""Overlay previews: the plate with the matte tinted and outlined, as PNG frames and an MP4.

A render writes them with ``--preview DIR`` as its mattes land (one tint per object when there are
several); the MP4 is H.264 through PyAV where it is installed (``pip install osvos-plugin[video]``), else
OpenCV's MPEG-4 writer, else none. Every file is written whole or not at all.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Sequence
from pathlib import Path

import cv2
import numpy as np

from .files import atomic_write

log = logging.getLogger(__name__)

# One tint per object, far apart in hue (the first is the single-object tint).
OBJECT_COLOURS = ((1.0, 0.25, 0.2), (0.2, 0.55, 1.0), (0.3, 0.9, 0.3), (1.0, 0.85, 0.1), (0.8, 0.3, 1.0),
                  (0.1, 0.9, 0.9), (1.0, 0.5, 0.0), (1.0, 0.4, 0.7))


def overlay(rgb: np.ndarray, matte: np.ndarray, colour: tuple[float, float, float] = OBJECT_COLOURS[0],
            opacity: float = 0.5) -> np.ndarray:
    """uint8 RGB: ``rgb`` (H, W, 3 in [0, 1]) tinted by ``matte`` (H, W in [0, 1]), with the matte's edge
    drawn; ``matte`` (K, H, W): each object in its own colour (``OBJECT_COLOURS``)."""
    mattes = matte if np.ndim(matte) == 3 else np.asarray(matte)[None]
    if mattes.shape[1:] != rgb.shape[:2]:
        mattes = np.stack([cv2.resize(m.astype(np.float32), rgb.shape[1::-1], interpolation=cv2.INTER_AREA)
                           for m in mattes])
    out = np.clip(rgb, 0.0, 1.0).astype(np.float32)
    colours = [np.asarray(OBJECT_COLOURS[k % len(OBJECT_COLOURS)], np.float32) for k in range(len(mattes))]
    if np.ndim(matte) == 2:
        colours[0] = np.asarray(colour, np.float32)
    for m, tint in zip(mattes, colours, strict=True):
        a = np.clip(m, 0.0, 1.0)[..., None] * opacity
        out = out * (1 - a) + tint * a
    out = (out * 255).round().astype(np.uint8)
    for m, tint in zip(mattes, colours, strict=True):
        contours, _ = cv2.findContours((m > 0.5).astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
        cv2.drawContours(out, contours, -1, tuple(int(c * 255) for c in tint), 2)
    return out


def preview_name(output_pattern: str) -> str:
    """``matte.####.exr`` -> ``matte``: the previews are named after the mattes."""
    stem = re.split(r"#+|@+|%0?\d*d|\$F\d*", Path(output_pattern).name)[0].rstrip("._-")
    return stem or "preview"


def write_preview_frame(path: Path, rgb: np.ndarray, matte: np.ndarray) -> Path:
    """One PNG overlay, atomically."""
    ok, data = cv2.imencode(".png", cv2.cvtColor(overlay(rgb, matte), cv2.COLOR_RGB2BGR))
    if not ok:
        raise ValueError(f"{path}: the preview could not be encoded")
    return atomic_write(path, lambda tmp: tmp.write_bytes(data.tobytes()))


def write_movie(frames: Sequence[Path], mp4: Path, fps: float = 24.0) -> Path | None:
    """The PNG frames as an MP4 (H.264 with PyAV, else OpenCV's MPEG-4), atomically; None when neither can
    write one."""
    if not frames:
        return None
    first = cv2.imread(str(frames[0]))
    h, w = first.shape[:2]

    def with_pyav(tmp: Path) -> None:
        import av

        with av.open(str(tmp), "w", format="mp4") as container:
            stream = container.add_stream("libx264", rate=round(fps))
            stream.width, stream.height = w - w % 2, h - h % 2  # yuv420p needs even sides
            stream.pix_fmt = "yuv420p"
            for path in frames:
                img = cv2.imread(str(path))[: stream.height, : stream.width, ::-1]
                for packet in stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(img), format="rgb24")):
                    container.mux(packet)
            for packet in stream.encode():
                container.mux(packet)

    def with_opencv(tmp: Path) -> None:
        video = cv2.VideoWriter(str(tmp), cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
        if not video.isOpened():
            raise OSError("no MP4 writer in this OpenCV build")
        try:
            for path in frames:
                video.write(cv2.imread(str(path)))
        finally:
            video.release()

    try:
        import av  # noqa: F401
        writer = with_pyav
    except ImportError:
        writer = with_opencv
    def write(tmp: Path) -> None:
        part = tmp.with_name(tmp.name + ".mp4")  # OpenCV picks the container from the extension
        try:
            writer(part)
            part.replace(tmp)
        finally:
            part.unlink(missing_ok=True)

    try:
        return atomic_write(mp4, write)
    except Exception as e:  # noqa: BLE001 - a preview movie is a convenience: the PNGs are there
        log.warning("no preview movie: %s", e)
        return None


def write_previews(items: Iterable[tuple[int, np.ndarray, np.ndarray]], out_dir: Path, name: str,
                   fps: float = 24.0) -> tuple[list[Path], Path | None]:
    """PNG overlays ``out_dir/name.####.png`` and ``out_dir/name.mp4`` (see ``write_movie``)."""
    pngs = [write_preview_frame(out_dir / f"{name}.{frame:04d}.png", rgb, matte) for frame, rgb, matte in items]
    return pngs, write_movie(pngs, out_dir / f"{name}.mp4", fps)
