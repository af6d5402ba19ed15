"""osvos_contract.patterns: which file holds which frame, the rules the engine and both hosts share."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from osvos_contract.patterns import (
    SequencePattern,
    format_frame,
    frame_digits,
    frames_on_disk,
    has_frame_token,
    matte_pattern,
    printf_pattern,
    scan_frames,
    sequence_pattern,
    split_token,
)


@pytest.mark.parametrize("pattern, padding", [
    ("plate.####.exr", 4), ("plate.#.exr", 1), ("plate.@@@.exr", 3), ("plate.@.exr", 1),
    ("plate.%04d.exr", 4), ("plate.%d.exr", 1), ("plate.$F4.exr", 4), ("plate.$F.exr", 1),
])
def test_every_token_style_and_its_padding(pattern, padding):
    token = split_token(f"/shot/{pattern}")
    assert token is not None and token.padding == padding
    assert (token.directory, token.before, token.after) == (Path("/shot"), "plate.", ".exr")
    assert has_frame_token(pattern)


def test_the_token_is_the_last_one_of_the_file_name_never_the_directory():
    assert split_token("/shots/sh_####/plate.exr") is None and not has_frame_token("/shots/%04d/plate.exr")
    token = split_token("/shots/sh_##/v##_plate.####.exr")
    assert (token.directory, token.before, token.after, token.padding) == (
        Path("/shots/sh_##"), "v##_plate.", ".exr", 4)


@pytest.mark.parametrize("pattern", ["/a/m.####.exr", "/a/m.@@@@.exr", "/a/m.%04d.exr", "/a/m.$F4.exr"])
def test_format_frame_pads_to_the_token(pattern):
    assert format_frame(pattern, 7) == str(Path("/a/m.0007.exr"))
    assert format_frame(pattern, 10001) == str(Path("/a/m.10001.exr"))  # wider than the padding: all digits
    assert format_frame(pattern, -7) == str(Path("/a/m.-0007.exr"))  # the sign in front of the padded digits


def test_format_frame_unpadded_and_without_token():
    assert format_frame("/a/m.%d.exr", 7) == str(Path("/a/m.7.exr"))
    assert format_frame("/a/m.#.exr", 1001) == str(Path("/a/m.1001.exr"))
    assert format_frame("/a/still.exr", 7) == "/a/still.exr"  # a single file: unchanged
    assert format_frame("m.%04d.exr", 3) == "m.0003.exr"  # a relative pattern stays relative
    assert frame_digits(7, 4) == "0007" and frame_digits(-7, 1) == "-7" and frame_digits(12345, 3) == "12345"


def test_sequence_patterns(tmp_path):
    seq = sequence_pattern(tmp_path / "shot_v2" / "plate.v3.01001.exr")
    assert seq == SequencePattern(str(tmp_path / "shot_v2" / "plate.v3.%05d.exr"), 1001, 5)
    assert format_frame(seq.pattern, 7) == str(tmp_path / "shot_v2" / "plate.v3.00007.exr")
    assert sequence_pattern("/a/f7.png").pattern == str(Path("/a/f%d.png"))
    assert sequence_pattern("/a/f7.png").padding == 1
    with pytest.raises(ValueError, match="no frame number"):
        sequence_pattern("/a/still.png")


def test_frames_on_disk_with_exactly_the_padding(tmp_path):
    for n in (999, 1000, 1002, 10000):
        (tmp_path / f"m.{n:04d}.exr").touch()
    (tmp_path / "m.12.exr").touch()  # not padded to 4: another sequence
    (tmp_path / "m.0012x.exr").touch()  # not a number where the token is
    (tmp_path / "m.1001.exr.tmp").touch()  # a file being written
    expected = [999, 1000, 1002, 10000]
    for pattern in ("m.%04d.exr", "m.####.exr", "m.@@@@.exr", "m.$F4.exr"):
        assert frames_on_disk(str(tmp_path / pattern)) == expected
    assert [f for f, _ in scan_frames(tmp_path / "m.%04d.exr")] == expected
    assert [p for _, p in scan_frames(tmp_path / "m.%04d.exr")] == [tmp_path / f"m.{n:04d}.exr" for n in expected]
    # unpadded (or padded to 2): every number written without leading zeros, not 0999
    assert frames_on_disk(str(tmp_path / "m.%d.exr")) == [12, 1000, 1002, 10000]
    assert frames_on_disk(str(tmp_path / "m.%02d.exr")) == [12, 1000, 1002, 10000]
    assert frames_on_disk(str(tmp_path / "none.%04d.exr")) == []
    assert frames_on_disk(str(tmp_path / "no_folder" / "m.%04d.exr")) == []


def test_negative_frames_round_trip(tmp_path):
    for n in (-2, -1, 0, 1):
        Path(format_frame(tmp_path / "m.####.exr", n)).touch()
    assert frames_on_disk(tmp_path / "m.####.exr") == [-2, -1, 0, 1]


def test_frames_on_disk_of_a_single_file(tmp_path):
    still = tmp_path / "still.exr"
    assert frames_on_disk(still) == []
    still.touch()
    assert frames_on_disk(still) == [0]


def test_scan_frames_needs_a_token_and_a_folder(tmp_path):
    with pytest.raises(ValueError, match="no frame token"):
        scan_frames(tmp_path / "still.exr")
    with pytest.raises(OSError):
        scan_frames(tmp_path / "no_folder" / "m.####.exr")


def test_printf_pattern():
    assert printf_pattern("/a/m.####.exr") == str(Path("/a/m.%04d.exr"))
    assert printf_pattern("/a/m.$F3.exr") == str(Path("/a/m.%03d.exr"))
    assert printf_pattern("/a/m.@.exr") == str(Path("/a/m.%d.exr"))
    assert printf_pattern("/a/m.%04d.exr") == str(Path("/a/m.%04d.exr"))
    assert printf_pattern("/a/still.exr") == "/a/still.exr"
    assert printf_pattern("m.##.exr") == "m.%02d.exr"


def test_matte_pattern():
    out = Path("/o")
    assert matte_pattern("/o", "/p/bear.%04d.png") == str(out / "bear_matte.%04d.exr")
    assert matte_pattern("/o", "/p/bear.####.png") == str(out / "bear_matte.%04d.exr")
    assert matte_pattern("/o", "/p/bear_1001.png", padding=4) == str(out / "bear_matte.%04d.exr")
    assert matte_pattern("/o", "/p/bear.png", "png", padding=1) == str(out / "bear_matte.%d.png")
    assert matte_pattern("/o", "/p/1001.exr") == str(out / "plate_matte.%04d.exr")  # nothing before the number


def test_a_formatted_name_is_found_again(tmp_path):
    """The engine writes format_frame's names; the host lists them with frames_on_disk: they must agree."""
    pattern = matte_pattern(tmp_path, "/p/plate.1001.exr")
    for n in (1, 99, 1001, 123456):
        Path(format_frame(pattern, n)).touch()
    assert frames_on_disk(pattern) == [1, 99, 1001, 123456]
    assert sorted(os.listdir(tmp_path)) == sorted(
        f"plate_matte.{n}.exr" for n in ("0001", "0099", "1001", "123456"))
