"""validate_plates: every bad frame of a shot found before any work, in one message."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from osvos_plugin.io import PlateError, resolve_sequence, validate_plates


def good_frame(img, path: Path, value: float = 0.18, size: tuple[int, int] = (64, 48)) -> Path:
    return img.write(path, np.full((size[1], size[0], 3), value, np.float32), "half")


def test_a_good_sequence_validates(tmp_path: Path, img) -> None:
    for f in range(1001, 1006):
        good_frame(img, tmp_path / f"plate.{f}.exr")
    frames = resolve_sequence(str(tmp_path / "plate.####.exr"))
    infos = validate_plates(frames)
    assert [i.frame for i in infos] == [1001, 1002, 1003, 1004, 1005]
    assert all(i.size == (64, 48) and i.path == p for i, (_, p) in zip(infos, frames, strict=True))


def test_every_problem_is_reported_in_one_error(tmp_path: Path, img) -> None:
    for f in range(1, 8):
        good_frame(img, tmp_path / f"plate.{f:04d}.exr")
    (tmp_path / "plate.0002.exr").unlink()  # missing
    good_frame(img, tmp_path / "plate.0003.exr", size=(32, 24))  # wrong size
    truncated = tmp_path / "plate.0004.exr"
    noise = np.random.default_rng(4).random((48, 64, 3), dtype=np.float32)  # incompressible: pixels dominate
    img.write(truncated, noise, "half")
    truncated.write_bytes(truncated.read_bytes()[:-4000])  # cut short, header intact
    nan = np.full((48, 64, 3), 0.18, np.float32)
    nan[10, 20, 1] = np.nan
    nan[11, 20, 0] = np.inf
    img.write(tmp_path / "plate.0005.exr", nan, "float")
    (tmp_path / "plate.0006.exr").write_bytes(b"not an image at all")

    frames = resolve_sequence(str(tmp_path / "plate.####.exr"), "1-7")
    with pytest.raises(PlateError) as err:
        validate_plates(frames)
    message = str(err.value)
    lines = {int(line.split()[1]): line for line in message.splitlines() if line.startswith("  frame ")}
    assert sorted(lines) == [2, 3, 4, 5, 6]
    assert "does not exist" in lines[2] and str(tmp_path / "plate.0002.exr") in lines[2]
    assert "32x24" in lines[3] and "64x48" in lines[3] and "frame 1 " in lines[3]
    assert "truncated or corrupt" in lines[4] and str(truncated) in lines[4]
    assert "1 NaN and 1 Inf" in lines[5]
    assert "cannot be opened" in lines[6]
    assert all("; " in line for line in lines.values())  # each says what to do
    assert message.startswith("5 of 7 plate frames cannot be used")
    assert [p.frame for p in err.value.problems] == [2, 3, 4, 5, 6]


@pytest.mark.parametrize("ext", ["png", "jpg", "tif", "dpx"])
def test_truncated_files_of_every_format_are_found(tmp_path: Path, img, ext: str) -> None:
    path = img.write(
        tmp_path / f"plate.0001.{ext}", img.gradient(), "uint8" if ext in ("png", "jpg") else "uint16"
    )
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(PlateError, match=r"frame 1 .*truncated or corrupt"):
        validate_plates([(1, path)])


def test_header_only_validation_still_finds_missing_and_size(tmp_path: Path, img) -> None:
    good_frame(img, tmp_path / "p.1.exr")
    good_frame(img, tmp_path / "p.2.exr", size=(40, 40))
    nan = np.full((48, 64, 3), np.nan, np.float32)
    img.write(tmp_path / "p.4.exr", nan, "float")
    frames = [
        (1, tmp_path / "p.1.exr"),
        (2, tmp_path / "p.2.exr"),
        (3, tmp_path / "p.3.exr"),
        (4, tmp_path / "p.4.exr"),
    ]
    with pytest.raises(PlateError) as err:
        validate_plates(frames, check_pixels=False)
    assert [p.frame for p in err.value.problems] == [2, 3]  # NaN needs the pixel pass
    assert validate_plates([(4, tmp_path / "p.4.exr")], check_pixels=False)[0].frame == 4


def test_empty_frame_list_is_an_error() -> None:
    with pytest.raises(PlateError, match="no plate frames"):
        validate_plates([])


def test_an_interrupted_check_does_not_decode_the_rest_of_the_shot(tmp_path: Path, img, monkeypatch) -> None:
    """Ctrl-C (or any unexpected error) during the up-front check stops it, not after the whole shot."""
    import time

    from osvos_plugin.io import plates

    for f in range(1, 21):
        good_frame(img, tmp_path / f"plate.{f:04d}.exr")
    checked = []

    def slow_check(frame, path, pixels, prepare=None):
        checked.append(frame)
        time.sleep(0.05)
        if frame == 1:
            raise KeyboardInterrupt
        return plates.__dict__["_real_check"](frame, path, pixels, prepare)

    monkeypatch.setitem(plates.__dict__, "_real_check", plates._check_frame)
    monkeypatch.setattr(plates, "_check_frame", slow_check)
    with pytest.raises(KeyboardInterrupt):
        validate_plates(resolve_sequence(str(tmp_path / "plate.####.exr")), workers=1)
    assert len(checked) <= 3  # frame 1, and at most the frame or two the worker had already started


def test_a_stop_request_ends_the_check_early_and_progress_is_reported(tmp_path: Path, img, monkeypatch) -> None:
    """A host's cancel (polled before each frame) stops a long check; progress reaches the host meanwhile."""
    import threading

    from osvos_plugin.io import CheckStopped, plates

    for f in range(1, 21):
        good_frame(img, tmp_path / f"plate.{f:04d}.exr")
    frames = resolve_sequence(str(tmp_path / "plate.####.exr"))
    real_check = plates._check_frame
    stop = threading.Event()
    decoded = []

    def counting_check(frame, path, pixels, prepare=None):
        decoded.append(frame)
        if frame == 5:
            stop.set()  # the host asks to stop while frame 5 is being checked
        return real_check(frame, path, pixels, prepare)

    monkeypatch.setattr(plates, "_check_frame", counting_check)
    with pytest.raises(CheckStopped, match=r"stopped after \d+ of 20 frames"):
        validate_plates(frames, workers=1, should_stop=stop.is_set)
    assert 5 <= len(decoded) <= 6

    # without a stop, every frame is checked and the last report says so
    monkeypatch.setattr(plates, "_check_frame", real_check)
    reports: list[tuple[int, int]] = []
    infos = validate_plates(frames, workers=2, on_checked=lambda done, total: reports.append((done, total)))
    assert len(infos) == 20 and reports and reports[-1] == (20, 20)
    assert [d for d, _ in reports] == sorted(d for d, _ in reports)
