"""Overscan end to end: a plate whose data window reaches beyond its display window gets a matte over the
whole data window. The network is replaced by a stub whose answer is known exactly (red > 0.5), so the
written mattes can be compared pixel for pixel with the plate's bright square."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import OpenImageIO as oiio
import pytest
import torch

from osvos_plugin import pipeline
from osvos_plugin.pipeline import RenderJob, render

DISPLAY = (0, 0, 64, 48)
MARGIN = 8  # overscan on every side
DARK, BRIGHT = 0.1, 0.9


def square(frame: int, window: tuple[int, int, int, int]) -> np.ndarray:
    """Mask (h, w) of the bright square over ``window``: it sticks out past the display's left and bottom
    edges into the overscan, and moves one pixel a frame."""
    x, y, w, h = window
    yy, xx = np.mgrid[y:y + h, x:x + w]
    left = -6 + (frame - 1001)
    return ((xx >= left) & (xx < left + 16) & (yy >= 30) & (yy < 52)).astype(np.float32)


def write_plate(path: Path, frame: int, data_window: tuple[int, int, int, int]) -> None:
    x, y, w, h = data_window
    pixels = np.where(square(frame, data_window)[:, :, None] > 0, BRIGHT, DARK) * np.ones(3, np.float32)
    spec = oiio.ImageSpec(w, h, 3, "half")
    spec.x, spec.y = x, y
    spec.full_x, spec.full_y, spec.full_width, spec.full_height = DISPLAY
    out = oiio.ImageOutput.create(str(path))
    assert out.open(str(path), spec), out.geterror()
    assert out.write_image(pixels.astype(np.float32)), out.geterror()
    out.close()


OVERSCAN = (-MARGIN, -MARGIN, 64 + 2 * MARGIN, 48 + 2 * MARGIN)
#: Frame 1002 has no overscan (data window inside the display window, as after a Nuke auto-crop): its
#: canvas differs in size from its neighbours', so inference runs in three runs of one size each.
WINDOWS = {1001: OVERSCAN, 1002: (2, 3, 50, 40), 1003: OVERSCAN}


class RedSegmenter:
    """Stands in for ``inference.Segmenter``: the matte is the frame's red channel > 0.5, at the size
    the pipeline asks for (which must be the size of the frame it hands over: no resampling)."""

    seen: list[tuple[int, tuple[int, int]]] = []

    def __init__(self, model, config=None, int8_cache=None) -> None:
        self.device = torch.device("cpu")
        self.rescaled_to = None  # the frame handed out was not segmented again smaller (Rescale Grown Objects)

    def stream(self, frames, total=None, progress=None, cancel=None, out_size=None):
        done = 0
        for key, rgb in frames:
            assert rgb.shape[:2] == out_size
            RedSegmenter.seen.append((key.info.frame, out_size))
            done += 1
            if progress is not None:
                progress(pipeline.Progress("infer", done, total))
            yield key, (rgb[:, :, 0] > 0.5).astype(np.float32)


@pytest.fixture
def overscan_shot(tmp_path: Path, monkeypatch) -> Path:
    (tmp_path / "plate").mkdir()
    for frame, window in WINDOWS.items():
        write_plate(tmp_path / "plate" / f"plate.{frame}.exr", frame, window)
    RedSegmenter.seen = []
    monkeypatch.setattr(pipeline, "Segmenter", RedSegmenter)
    return tmp_path


def _render(shot: Path, parent: Path, fmt: str, ext: str) -> tuple[list[Path], list]:
    records = []
    job = RenderJob(
        source=str(shot / "plate" / "plate.####.exr"),
        output=str(shot / "out" / f"matte.####.{ext}"),
        load_model=parent,
        params={"input_colorspace": "raw", "device": "cpu", "output_format": fmt},
    )
    summary = render(job, progress=records.append)
    assert summary.written == 3
    return sorted((shot / "out").glob(f"matte.*.{ext}")), [r for r in records if r.stage == "infer"]


def _read(path: Path) -> tuple[oiio.ImageSpec, np.ndarray]:
    inp = oiio.ImageInput.open(str(path))
    spec = inp.spec()
    pixels = inp.read_image(0, 0, 0, spec.nchannels, "float")
    inp.close()
    return spec, np.asarray(pixels)


@pytest.mark.parametrize(("fmt", "ext"), [("exr", "exr"), ("rgba", "exr")])
def test_the_exr_matte_covers_the_whole_data_window(overscan_shot, tiny_parent, fmt, ext) -> None:
    outs, records = _render(overscan_shot, tiny_parent, fmt, ext)
    # each frame reached the network whole (canvas = display window grown to hold the data window)
    assert RedSegmenter.seen == [(1001, (64, 80)), (1002, (48, 64)), (1003, (64, 80))]
    assert [r.done for r in records] == [1, 2, 3] and all(r.total == 3 for r in records)
    for out, (frame, window) in zip(outs, WINDOWS.items(), strict=True):
        spec, pixels = _read(out)
        assert (spec.x, spec.y, spec.width, spec.height) == window  # the plate's data window, exactly
        assert (spec.full_x, spec.full_y, spec.full_width, spec.full_height) == DISPLAY
        expected = square(frame, window)
        np.testing.assert_array_equal(pixels[:, :, -1], expected)  # overscan included
        if window == OVERSCAN:
            assert pixels[MARGIN:MARGIN + 48, :MARGIN, -1].any()  # matte left of the display window
            assert pixels[MARGIN + 48:, :, -1].any()  # and below it
        if fmt == "rgba":  # premultiplied plate: the plate's own values under the matte
            np.testing.assert_allclose(pixels[:, :, 0], BRIGHT * expected, atol=1e-3)


def test_a_format_without_windows_gets_the_display_window(overscan_shot, tiny_parent) -> None:
    outs, _ = _render(overscan_shot, tiny_parent, "png8", "png")
    for out, (frame, (x, y, w, h)) in zip(outs, WINDOWS.items(), strict=True):
        spec, pixels = _read(out)
        assert (spec.width, spec.height) == (64, 48)
        expected = square(frame, DISPLAY)
        in_data = np.zeros_like(expected)
        in_data[max(y, 0):y + h, max(x, 0):x + w] = 1  # black (no matte) outside the data window
        np.testing.assert_array_equal(pixels[:, :, 0], expected * in_data)
        assert (expected * in_data).any()
