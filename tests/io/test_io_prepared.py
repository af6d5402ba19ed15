"""PreparedPlates: the up-front check's decoded frames handed to inference, so each frame is decoded once."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from osvos_plugin.io import PlateError, PreparedPlates, read_plate, resolve_sequence, validate_plates
from osvos_plugin.io import plates as plates_module


def scene(img, directory: Path, frames=range(1, 6), size=(96, 64)) -> list[tuple[int, Path]]:
    """Scene-linear half EXRs with highlights above 1.0 and a data window inside the display window."""
    rng = np.random.default_rng(7)
    w, h = size
    for f in frames:
        pixels = (rng.random((h - 8, w - 6, 3)) * 3.0).astype(np.float32)
        img.write(directory / f"plate.{f:04d}.exr", pixels, "half", origin=(2, 4), display=(0, 0, w, h))
    return resolve_sequence(str(directory / "plate.####.exr"))


@pytest.mark.parametrize("max_size", [None, 48])
def test_kept_frames_are_bit_identical_to_reading_the_plate(tmp_path: Path, img, max_size) -> None:
    frames = scene(img, tmp_path)
    with PreparedPlates(colorspace="auto", max_size=max_size) as prepared:
        validate_plates(frames, prepare=prepared.add)
        assert len(prepared) == len(frames)
        for frame, path in frames:
            expected = read_plate(path, frame, max_size=max_size)
            got = prepared.read(path, frame=frame)
            assert got.info == expected.info
            assert got.rgb.dtype == np.float32 and got.rgb.shape == expected.rgb.shape
            np.testing.assert_array_equal(got.rgb, expected.rgb)
        assert not any(prepared.directory.iterdir())  # each file goes once read


@pytest.mark.parametrize("kept", [True, False])
def test_frames_cover_the_overscan(tmp_path: Path, img, kept: bool) -> None:
    """Kept or read again, a frame is the plate's canvas: the whole data window reaches the network."""
    rng = np.random.default_rng(3)
    pixels = rng.random((64, 80, 3)).astype(np.float32)
    path = img.write(tmp_path / "plate.0001.exr", pixels, "half", origin=(-8, -8), display=(0, 0, 64, 48))
    frames = resolve_sequence(str(tmp_path / "plate.####.exr"))
    with PreparedPlates(None if kept else [], colorspace="raw") as prepared:
        validate_plates(frames, prepare=prepared.add)
        assert (1 in prepared) == kept
        got = prepared.read(path, frame=1)
    assert got.rgb.shape == (64, 80, 3)
    np.testing.assert_array_equal(got.rgb, read_plate(path, 1, "raw", overscan=True).rgb)
    np.testing.assert_allclose(got.rgb, pixels, atol=1e-3)  # half


def test_inference_reads_no_kept_frame_from_its_file(tmp_path: Path, img, monkeypatch) -> None:
    frames = scene(img, tmp_path)
    decoded: list[Path] = []
    raw = plates_module._read_raw
    monkeypatch.setattr(plates_module, "_read_raw", lambda p, f: (decoded.append(p), raw(p, f))[1])
    with PreparedPlates([1, 2, 3], max_size=48) as prepared:
        validate_plates(frames, prepare=prepared.add)
        assert sorted(f for f, _ in frames if f in prepared) == [1, 2, 3]  # only the frames asked for
        for frame, path in frames:
            prepared.read(path, frame=frame)
    assert decoded == [frames[3][1], frames[4][1]]  # frames 4 and 5 were not kept: read again


def test_a_frame_read_with_keep_stays_for_the_next_read(tmp_path: Path, img, monkeypatch) -> None:
    """Self-training reads a frame that inference reads later: neither decodes it again."""
    frames = scene(img, tmp_path)
    decoded: list[Path] = []
    raw = plates_module._read_raw
    with PreparedPlates(max_size=48) as prepared:
        validate_plates(frames, prepare=prepared.add)
        monkeypatch.setattr(plates_module, "_read_raw", lambda p, f: (decoded.append(p), raw(p, f))[1])
        frame, path = frames[2]
        first = prepared.read(path, frame=frame, keep=True).rgb
        assert frame in prepared and len(list(prepared.directory.iterdir())) == len(frames)
        np.testing.assert_array_equal(prepared.read(path, frame=frame).rgb, first)
        assert frame not in prepared and len(list(prepared.directory.iterdir())) == len(frames) - 1
    assert decoded == []


def test_budget_spent_falls_back_to_the_plates(tmp_path: Path, img) -> None:
    frames = scene(img, tmp_path)
    one_frame = 48 * 32 * 3 * 4 + 128
    with PreparedPlates(max_size=48, budget=2 * one_frame) as prepared:
        validate_plates(frames, prepare=prepared.add)
        assert len(prepared) == 2
        for frame, path in frames:
            expected = read_plate(path, frame, max_size=48).rgb
            np.testing.assert_array_equal(prepared.read(path, frame=frame).rgb, expected)


def test_a_lost_file_is_read_from_the_plate(tmp_path: Path, img) -> None:
    frames = scene(img, tmp_path, frames=[1])
    with PreparedPlates() as prepared:
        validate_plates(frames, prepare=prepared.add)
        for file in prepared.directory.iterdir():
            file.write_bytes(b"garbage")  # a temp cleaner, a full disk
        np.testing.assert_array_equal(prepared.read(frames[0][1], frame=1).rgb, read_plate(frames[0][1], 1).rgb)


def test_directory_is_removed_on_error(tmp_path: Path, img) -> None:
    frames = scene(img, tmp_path)
    nan = np.full((64, 96, 3), 0.5, np.float32)
    nan[3, 3, 0] = np.nan
    img.write(frames[2][1], nan, "float")
    with pytest.raises(PlateError, match="NaN"), PreparedPlates(directory=tmp_path) as prepared:
        validate_plates(frames, prepare=prepared.add)
    assert not prepared.directory.exists()
    assert 3 not in prepared


def test_pixel_frames_limits_the_decode_but_headers_are_all_checked(tmp_path: Path, img) -> None:
    frames = scene(img, tmp_path)
    nan = np.full((64, 96, 3), 0.5, np.float32)
    nan[3, 3, 0] = np.nan
    img.write(frames[1][1], nan, "float")  # frame 2: NaN, but not decoded below
    infos = validate_plates(frames, pixel_frames=[1, 3, 4, 5])
    assert [i.frame for i in infos] == [1, 2, 3, 4, 5]
    with pytest.raises(PlateError, match="frame 2 .*NaN"):
        validate_plates(frames, pixel_frames=[2])
    frames[4][1].unlink()
    with pytest.raises(PlateError, match="frame 5 .*does not exist"):
        validate_plates(frames, pixel_frames=[1])


def test_filesystem_type_of_known_mounts() -> None:
    from osvos_plugin.io.prepared import filesystem_type

    if not Path("/proc/self/mounts").exists():
        pytest.skip("no /proc/self/mounts (not Linux)")
    assert filesystem_type("/proc/self") == "proc"
    assert filesystem_type("/") not in (None, "proc")


def test_a_memory_backed_temp_dir_keeps_nothing_unless_asked_for(tmp_path: Path, img, monkeypatch) -> None:
    """Frames kept on tmpfs would be RAM that grows with the shot: only an explicit directory gets them."""
    import tempfile

    from osvos_plugin.io.prepared import filesystem_type

    shm = Path("/dev/shm")
    if not shm.is_dir() or filesystem_type(shm) != "tmpfs":
        pytest.skip("no tmpfs at /dev/shm")
    frames = scene(img, tmp_path, frames=[1, 2])
    monkeypatch.setattr(tempfile, "tempdir", str(shm))  # as TMPDIR=/dev/shm would
    with PreparedPlates() as prepared:
        assert prepared.directory.parent == shm
        validate_plates(frames, prepare=prepared.add)
        assert len(prepared) == 0
        np.testing.assert_array_equal(prepared.read(frames[0][1], frame=1).rgb, read_plate(frames[0][1], 1).rgb)
    with PreparedPlates(directory=shm) as prepared:
        validate_plates(frames, prepare=prepared.add)
        assert len(prepared) == 2
