"""Frame patterns, frame ranges, and finding a shot's frames on disk."""

from __future__ import annotations

from pathlib import Path

import pytest

from osvos_plugin.io import PlateError, format_frame_path, parse_frame_range, resolve_sequence


def touch(directory: Path, *names: str) -> None:
    for name in names:
        (directory / name).write_bytes(b"x")


# ---------------------------------------------------------------------------------------------- ranges


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("1001-1100", list(range(1001, 1101))),
        ("1-100x2", list(range(1, 100, 2))),
        ("1001,1005-1010", [1001, 1005, 1006, 1007, 1008, 1009, 1010]),
        ("1001, 1005-1007", [1001, 1005, 1006, 1007]),
        ("7", [7]),
        ("1-3,2-4", [1, 2, 3, 4]),
        ("5-1", [5, 4, 3, 2, 1]),
    ],
)
def test_parse_frame_range(spec: str, expected: list[int]) -> None:
    assert parse_frame_range(spec) == expected


@pytest.mark.parametrize("spec", ["abc", "1001-", "", "1-2x0.5"])
def test_parse_frame_range_rejects_nonsense(spec: str) -> None:
    with pytest.raises(PlateError, match="frame range|sub-frame"):
        parse_frame_range(spec)


# -------------------------------------------------------------------------------------------- patterns


@pytest.mark.parametrize(
    ("pattern", "frame", "name"),
    [
        ("plate.####.exr", 7, "plate.0007.exr"),
        ("plate.####.exr", 12345, "plate.12345.exr"),
        ("plate.%04d.exr", 1001, "plate.1001.exr"),
        ("plate.%04d.exr", 7, "plate.0007.exr"),
        ("plate.%d.exr", 7, "plate.7.exr"),
        ("plate.@.exr", 7, "plate.7.exr"),
        ("plate.@@@@.exr", 7, "plate.0007.exr"),
        ("plate.#.exr", 7, "plate.7.exr"),
        ("plate.$F4.exr", 7, "plate.0007.exr"),
        ("plate.$F.exr", 42, "plate.42.exr"),
        ("plate_####_v2.exr", 3, "plate_0003_v2.exr"),
        ("shot.####.exr", -2, "shot.-0002.exr"),
    ],
)
def test_format_frame_path(pattern: str, frame: int, name: str) -> None:
    assert format_frame_path(f"/shots/a/{pattern}", frame) == Path("/shots/a") / name


def test_format_frame_path_without_token_is_unchanged() -> None:
    assert format_frame_path("/shots/a/still.exr", 1001) == Path("/shots/a/still.exr")


def test_token_in_directory_is_not_a_frame_token() -> None:
    assert format_frame_path("/shots/v#1/plate.####.exr", 5) == Path("/shots/v#1/plate.0005.exr")


@pytest.mark.parametrize("pattern", ["plate.####.exr", "plate.%04d.exr", "plate.@@@@.exr", "plate.$F4.exr"])
def test_resolve_padded_patterns_on_disk(tmp_path: Path, pattern: str) -> None:
    touch(tmp_path, "plate.1001.exr", "plate.1002.exr", "plate.1010.exr", "plate.1003.png", "plate.7.exr")
    frames = resolve_sequence(str(tmp_path / pattern))
    assert frames == [(f, tmp_path / f"plate.{f}.exr") for f in (1001, 1002, 1010)]


@pytest.mark.parametrize("pattern", ["plate.@.exr", "plate.$F.exr", "plate.%d.exr", "plate.#.exr"])
def test_resolve_unpadded_patterns_on_disk(tmp_path: Path, pattern: str) -> None:
    touch(tmp_path, "plate.1.exr", "plate.2.exr", "plate.10.exr", "plate.0003.exr")
    frames = resolve_sequence(str(tmp_path / pattern))
    # plate.0003.exr is padded: another sequence, not frame 3 of this one
    assert frames == [
        (1, tmp_path / "plate.1.exr"),
        (2, tmp_path / "plate.2.exr"),
        (10, tmp_path / "plate.10.exr"),
    ]


def test_resolve_with_range_returns_requested_frames_even_missing(tmp_path: Path) -> None:
    touch(tmp_path, "plate.1001.exr")
    frames = resolve_sequence(str(tmp_path / "plate.####.exr"), "1001,1005-1006")
    assert frames == [
        (1001, tmp_path / "plate.1001.exr"),
        (1005, tmp_path / "plate.1005.exr"),
        (1006, tmp_path / "plate.1006.exr"),
    ]


def test_resolve_step_range(tmp_path: Path) -> None:
    frames = resolve_sequence(str(tmp_path / "p.$F4.dpx"), "1-9x4")
    assert frames == [
        (1, tmp_path / "p.0001.dpx"),
        (5, tmp_path / "p.0005.dpx"),
        (9, tmp_path / "p.0009.dpx"),
    ]


def test_resolve_pattern_without_matches_says_where_it_looked(tmp_path: Path) -> None:
    touch(tmp_path, "other.1001.exr")
    with pytest.raises(PlateError, match=r"no frames found .*plate\.####\.exr"):
        resolve_sequence(str(tmp_path / "plate.####.exr"))


def test_resolve_missing_directory(tmp_path: Path) -> None:
    with pytest.raises(PlateError, match="does not exist"):
        resolve_sequence(str(tmp_path / "nope" / "plate.####.exr"))


def test_resolve_directory_of_frames(tmp_path: Path) -> None:
    touch(tmp_path, "00000.jpg", "00001.jpg", "00002.jpg", "notes.txt", ".hidden.jpg")
    frames = resolve_sequence(tmp_path)
    assert frames == [(i, tmp_path / f"0000{i}.jpg") for i in range(3)]
    assert resolve_sequence(tmp_path, "1-2") == [(1, tmp_path / "00001.jpg"), (2, tmp_path / "00002.jpg")]


def test_resolve_directory_with_two_sequences_is_ambiguous(tmp_path: Path) -> None:
    touch(tmp_path, "a.0001.exr", "a.0002.exr", "b.0001.exr")
    with pytest.raises(PlateError, match="several image sequences"):
        resolve_sequence(tmp_path)


def test_resolve_single_files(tmp_path: Path) -> None:
    touch(tmp_path, "plate.1001.exr", "still.png")
    assert resolve_sequence(tmp_path / "plate.1001.exr") == [(1001, tmp_path / "plate.1001.exr")]
    assert resolve_sequence(str(tmp_path / "still.png")) == [(1, tmp_path / "still.png")]
    assert resolve_sequence(str(tmp_path / "still.png"), "12") == [(12, tmp_path / "still.png")]
    # a numbered file with a range: the sequence it belongs to
    assert resolve_sequence(tmp_path / "plate.1001.exr", "1001-1002") == [
        (1001, tmp_path / "plate.1001.exr"),
        (1002, tmp_path / "plate.1002.exr"),
    ]
    with pytest.raises(PlateError, match="single file without a frame number"):
        resolve_sequence(str(tmp_path / "still.png"), "1-5")
    with pytest.raises(PlateError, match="does not exist"):
        resolve_sequence(str(tmp_path / "missing.exr"))


def test_openjd_step_syntax_is_a_step_not_fileseqs_stagger():
    from osvos_plugin.io.sequence import parse_frame_range

    assert parse_frame_range("1001-1009:4") == [1001, 1005, 1009]  # what an OpenJD chunk of a stepped range says
    assert parse_frame_range("1-3,10-14:2") == [1, 2, 3, 10, 12, 14]
    assert parse_frame_range("1-9x4") == [1, 5, 9]
