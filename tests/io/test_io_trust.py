"""Issue 15's input messages: missing frames as ranges, one-line frame ranges, FIFOs, RGB-painted masks with an
empty alpha, gaps in a shot on disk, and headers that claim an absurd size."""

from __future__ import annotations

import logging
import os
import struct
import threading
from pathlib import Path

import numpy as np
import OpenImageIO as oiio
import pytest

from osvos_plugin.io import (
    MaskError,
    PlateError,
    parse_frame_range,
    plates,
    read_mask,
    read_plate,
    resolve_sequence,
    validate_plates,
)
from osvos_plugin.io.sequence import format_runs, frame_runs

FIRST_LINE = "{bad} of {total} plate frames cannot be used, so nothing was processed. Fix these and run again:"


def plate_frames(img, folder: Path, frames, name: str = "plate.{:04d}.exr") -> None:
    for f in frames:
        img.write(folder / name.format(f), np.full((8, 8, 3), 0.18, np.float32), "half")


def count_checks(monkeypatch) -> list[int]:
    """Frames whose file ``validate_plates`` looks at one by one (stat, header, pixels)."""
    checked: list[int] = []
    real = plates._check_frame

    def counting(frame, path, pixels, prepare=None):
        checked.append(frame)
        return real(frame, path, pixels, prepare)

    monkeypatch.setattr(plates, "_check_frame", counting)
    return checked


# ------------------------------------------------------------------------------ missing frames as ranges


def test_a_range_far_beyond_the_plate_is_one_line_and_no_missing_frame_is_opened(tmp_path, img, monkeypatch):
    """The issue's --frames 1-2000000 on a 10-frame plate, scaled down to keep the suite quick: the cost of
    the missing frames is one folder listing, never a header read or a stat per frame."""
    plate_frames(img, tmp_path, range(1, 11))
    checked = count_checks(monkeypatch)
    stats: list[str] = []
    real_exists = os.path.exists
    monkeypatch.setattr(os.path, "exists", lambda p: stats.append(p) or real_exists(p))
    frames = resolve_sequence(str(tmp_path / "plate.####.exr"), "1-100000")
    with pytest.raises(PlateError) as err:
        validate_plates(frames)
    lines = str(err.value).splitlines()
    assert lines == [
        FIRST_LINE.format(bad=99990, total=100000),
        f"  frames 11-100000 (99990 frames) are missing: {tmp_path}/plate.####.exr has frames 1-10 on disk; "
        "render or copy the missing frames, or check the frame range (--frames).",
    ]
    assert sorted(checked) == list(range(1, 11)) and not stats
    problems = err.value.problems  # every one, for programmatic use
    assert len(problems) == 99990 and [p.frame for p in problems[:2]] == [11, 12]
    assert problems[0].path == tmp_path / "plate.0011.exr" and problems[0].problem == "the file does not exist"


def test_missing_frames_can_be_checked_alone_before_other_per_frame_work(tmp_path, img, monkeypatch):
    plate_frames(img, tmp_path, range(1, 11))
    checked = count_checks(monkeypatch)
    frames = resolve_sequence(str(tmp_path / "plate.####.exr"), "5-20")
    with pytest.raises(PlateError) as err:
        plates.check_frames_exist(frames)
    assert str(err.value).splitlines() == [
        FIRST_LINE.format(bad=10, total=16),
        f"  frames 11-20 (10 frames) are missing: {tmp_path}/plate.####.exr has frames 1-10 on disk; "
        "render or copy the missing frames, or check the frame range (--frames).",
    ]
    plates.check_frames_exist(frames[:6])  # 5-10 are there
    assert not checked  # no header was read


def test_holes_and_missing_ends_are_listed_as_ranges(tmp_path, img):
    plate_frames(img, tmp_path, [1, 2, 3, 7, 8, 9, 10])
    with pytest.raises(PlateError) as err:
        validate_plates(resolve_sequence(str(tmp_path / "plate.####.exr"), "1-12"))
    assert str(err.value).splitlines()[1:] == [
        f"  frames 4-6,11-12 (5 frames) are missing: {tmp_path}/plate.####.exr has frames 1-3,7-10 on disk; "
        "render or copy the missing frames, or check the frame range (--frames)."
    ]
    assert [p.frame for p in err.value.problems] == [4, 5, 6, 11, 12]


def test_one_missing_frame_keeps_its_own_line_naming_the_file(tmp_path, img):
    plate_frames(img, tmp_path, [1, 2, 4])
    with pytest.raises(PlateError) as err:
        validate_plates(resolve_sequence(str(tmp_path / "plate.####.exr"), "1-4"))
    assert str(err.value).splitlines()[1] == (
        f"  frame 3 ({tmp_path}/plate.0003.exr): the file does not exist; render or copy the missing frame, "
        "or restrict the frame range to frames that exist."
    )


def test_a_pattern_with_the_wrong_padding_says_no_file_of_it_is_on_disk(tmp_path, img):
    plate_frames(img, tmp_path, range(1, 4))
    with pytest.raises(PlateError) as err:
        validate_plates(resolve_sequence(str(tmp_path / "plate.#####.exr"), "1-3"))
    assert str(err.value).splitlines()[1] == (
        f"  frames 1-3 (3 frames) are missing: no file of {tmp_path}/plate.#####.exr is on disk; check the "
        "pattern, its padding (#### = 4 digits) and the frame range (--frames)."
    )


def test_a_folder_that_is_not_there_is_named(tmp_path):
    folder = tmp_path / "unmounted"
    with pytest.raises(PlateError) as err:
        validate_plates(resolve_sequence(str(folder / "plate.####.exr"), "1001-1100"))
    assert str(err.value).splitlines()[1] == (
        f"  frames 1001-1100 (100 frames) are missing: the folder {folder} does not exist; check the path, and "
        "that the storage is mounted on this machine."
    )


def test_a_long_list_of_other_problems_is_capped(tmp_path):
    for f in range(1, 31):
        (tmp_path / f"plate.{f:04d}.exr").write_bytes(b"not an image at all")
    with pytest.raises(PlateError) as err:
        validate_plates(resolve_sequence(str(tmp_path / "plate.####.exr"), "1-30"))
    lines = str(err.value).splitlines()
    assert lines[0] == FIRST_LINE.format(bad=30, total=30)
    assert len(lines) == 1 + plates.MAX_LISTED_PROBLEMS + 1
    assert lines[1].startswith(f"  frame 1 ({tmp_path}/plate.0001.exr): it cannot be opened as an image")
    assert lines[20].startswith("  frame 20 ")
    assert lines[-1] == "  ... and 10 more problems (frames 21-30)."
    assert [p.frame for p in err.value.problems] == list(range(1, 31))


def test_frame_ranges_are_compact_and_cut_when_long():
    assert format_runs(frame_runs([5, 1, 2, 3, 3, 9, 11, 13])) == "1-3,5,9-13x2"
    assert format_runs(frame_runs(range(11, 2_000_001))) == "11-2000000"
    assert format_runs(frame_runs([-3, -2, 7])) == "-3--2,7"
    scattered = format_runs(frame_runs(range(0, 600_000, 3)))  # too many to find steps in: cut
    assert len(scattered) < 160 and scattered.startswith("0,3,6,") and scattered.endswith(" more ranges)")


# ------------------------------------------------------------------------------------- frame range text


@pytest.mark.parametrize("spec", ["abc", "1001-", "1-3,x", "1-100x0"])
def test_a_frame_range_that_is_not_understood_gets_one_line(spec):
    with pytest.raises(PlateError) as err:
        parse_frame_range(spec)
    assert str(err.value) == (
        f"frame range {spec!r} is not understood; use e.g. 1001-1100, 1-100x2 or 1001,1005-1010."
    )


def test_a_frame_range_too_large_for_fileseq_is_one_line():
    with pytest.raises(PlateError) as err:
        parse_frame_range("1-1000000000")
    assert str(err.value) == (
        "frame range '1-1000000000' holds more than 10000000 frames; give the shot's range, e.g. 1001-1100."
    )


# ------------------------------------------------------------------------------- FIFOs and other non-files


def finishes(call, seconds: float = 20.0):
    """Run ``call`` in a thread; fail (instead of hanging the suite) if it blocks, e.g. opening a FIFO."""
    outcome: dict = {}

    def run():
        try:
            outcome["value"] = call()
        except BaseException as exc:  # handed to the test below
            outcome["error"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), "blocked: a FIFO was opened"
    if "error" in outcome:
        raise outcome["error"]
    return outcome.get("value")


@pytest.fixture
def fifo(tmp_path) -> Path:
    if not hasattr(os, "mkfifo"):
        pytest.skip("no FIFOs on this system")
    path = tmp_path / "plate.0001.exr"
    os.mkfifo(path)
    return path


def test_a_fifo_frame_is_named_as_such_and_not_opened(fifo):
    with pytest.raises(PlateError) as err:
        finishes(lambda: validate_plates([(1, fifo)]))
    assert str(err.value).splitlines()[1] == (
        f"  frame 1 ({fifo}): it is a FIFO (named pipe), not a regular file; put the frame's image file "
        "(EXR, DPX, TIFF, PNG or JPEG) there instead."
    )


def test_a_fifo_plate_or_mask_is_refused_without_blocking(fifo):
    with pytest.raises(PlateError) as err:
        finishes(lambda: read_plate(fifo))
    assert str(err.value) == (
        f"plate {fifo} is a FIFO (named pipe), not a regular file; give a regular image file "
        "(EXR, DPX, TIFF, PNG or JPEG)."
    )
    with pytest.raises(MaskError, match=r"^mask .* is a FIFO \(named pipe\), not a regular file; "):
        finishes(lambda: read_mask(fifo))
    with pytest.raises(PlateError, match=r"^plate .* is a FIFO \(named pipe\), not a regular file; "):
        finishes(lambda: resolve_sequence(fifo))


def test_a_directory_in_place_of_a_frame_or_mask(tmp_path):
    folder = tmp_path / "plate.0001.exr"
    folder.mkdir()
    with pytest.raises(PlateError, match=r"frame 1 .*: it is a directory, not a regular file; "):
        validate_plates([(1, folder)])
    with pytest.raises(MaskError, match=r"^mask .* is a directory, not a regular file; "):
        read_mask(folder)


# ------------------------------------------------------------------------ masks painted in RGB, alpha empty


def disc(w: int = 64, h: int = 48) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    return (np.hypot(xx - w / 2, yy - h / 2) < h / 3).astype(np.float32)


@pytest.mark.parametrize(("name", "fmt"), [("paint.png", "uint8"), ("paint.tif", "uint16"), ("paint.exr", "half")])
def test_an_empty_alpha_over_a_painted_rgb_says_so(tmp_path, img, name, fmt):
    shape = disc()
    rgba = np.concatenate([np.repeat(shape[:, :, None], 3, 2), np.zeros((48, 64, 1), np.float32)], axis=2)
    path = img.write(tmp_path / name, rgba, fmt, channels=("R", "G", "B", "A"))
    with pytest.raises(MaskError) as err:
        read_mask(path, expected_size=(64, 48))
    assert str(err.value) == (
        f"mask {path}: the mask's alpha is empty but its RGB holds a painted shape; paint into the alpha, or save "
        "the mask without alpha so its luminance is used."
    )
    assert not read_mask(path, allow_empty=True).any()  # a matte read back: its alpha is what it is


def test_an_unpainted_rgba_mask_keeps_the_plain_message(tmp_path, img):
    path = img.write(tmp_path / "blank.png", np.zeros((48, 64, 4), np.float32), "uint8", channels=("R", "G", "B", "A"))
    with pytest.raises(MaskError, match="has no foreground"):
        read_mask(path)


# --------------------------------------------------------------------------------- gaps in a shot on disk


def test_a_gap_in_the_frames_on_disk_is_warned_about(tmp_path, caplog):
    for f in (1, 2, 3, 7, 8, 10):
        (tmp_path / f"plate.{f:04d}.exr").write_bytes(b"x")
    with caplog.at_level(logging.WARNING, logger="osvos_plugin.io.sequence"):
        frames = resolve_sequence(str(tmp_path / "plate.####.exr"))
    assert [f for f, _ in frames] == [1, 2, 3, 7, 8, 10]  # and the render goes on with them
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == [
        f"plate {tmp_path}/plate.####.exr: frames 4-6,9 (4 frames) are missing between 1 and 10; only the 6 "
        "frames on disk are used. Render or copy the missing frames if the shot needs them."
    ]


def test_no_gap_warning_for_a_whole_shot_a_range_or_when_asked_not_to(tmp_path, caplog):
    for f in (1, 2, 3, 5):
        (tmp_path / f"plate.{f:04d}.exr").write_bytes(b"x")
    with caplog.at_level(logging.WARNING, logger="osvos_plugin.io.sequence"):
        resolve_sequence(str(tmp_path / "plate.####.exr"), "1-3")
        resolve_sequence(str(tmp_path / "plate.####.exr"), warn_gaps=False)
        (tmp_path / "plate.0004.exr").write_bytes(b"x")
        resolve_sequence(str(tmp_path / "plate.####.exr"))
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


# ------------------------------------------------------------------------------ headers claiming huge sizes


def crafted_exr(path: Path, display: tuple[int, int] | None = None, data: tuple[int, int] | None = None) -> Path:
    """A 16x16 EXR whose header is patched to claim another display and/or data window: a few hundred bytes
    that a reader trusting the header would allocate gigabytes for."""
    spec = oiio.ImageSpec(16, 16, 3, "float")
    out = oiio.ImageOutput.create(str(path))
    assert out.open(str(path), spec), out.geterror()
    assert out.write_image(np.full((16, 16, 3), 0.5, np.float32)), out.geterror()
    out.close()
    raw = bytearray(path.read_bytes())
    for attribute, size in ((b"displayWindow", display), (b"dataWindow", data)):
        if size is not None:
            key = attribute + b"\0box2i\0" + struct.pack("<i", 16)
            at = raw.index(key) + len(key)
            raw[at : at + 16] = struct.pack("<4i", 0, 0, size[0] - 1, size[1] - 1)
    path.write_bytes(bytes(raw))
    assert len(raw) < 2048
    return path


@pytest.fixture
def no_pixel_reads(monkeypatch) -> None:
    """Fail instead of allocating what a crafted header claims."""

    def refuse(*args, **kwargs):
        raise AssertionError("pixels were read from a file whose header claims a huge image")

    monkeypatch.setattr(plates, "read_channels", refuse)
    monkeypatch.setattr("osvos_plugin.io.masks.read_channels", refuse)


def test_a_header_claiming_a_huge_display_window_is_refused_before_any_pixel_is_read(tmp_path, no_pixel_reads):
    """The issue's 1 KB EXR that claims 60000x60000 (43 GB as float RGB): its display window is what claims it."""
    path = crafted_exr(tmp_path / "plate.0001.exr", display=(60000, 60000))
    claim = (
        "its header claims a 60000x60000 display window, more than this tool reads (268435456 pixels, at most "
        "65536 on a side)"
    )
    fix = (
        "the header is probably corrupt: re-render or re-copy the file; if the image really is that large, "
        "reduce it first (Nuke: Reformat)."
    )
    with pytest.raises(PlateError) as err:
        validate_plates([(1, path)])
    assert str(err.value).splitlines()[1] == f"  frame 1 ({path}): {claim}; {fix}"
    with pytest.raises(PlateError) as err:
        read_plate(path)
    assert str(err.value) == f"plate {path}: {claim}; {fix}"
    with pytest.raises(MaskError) as err:
        read_mask(path)
    assert str(err.value) == f"mask {path}: {claim}; {fix}"


def test_a_side_above_the_limit_is_refused_too(tmp_path, no_pixel_reads):
    path = crafted_exr(tmp_path / "strip.exr", display=(70000, 10), data=(70000, 10))
    with pytest.raises(PlateError, match=r"claims a 70000x10 display window, more than this tool reads"):
        read_plate(path)
    assert plates.MAX_IMAGE_SIDE == 65536 and plates.MAX_IMAGE_PIXELS == 2**28
