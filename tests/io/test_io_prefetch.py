"""PrefetchReader and AsyncWriter: order, bounded memory, errors that name the frame."""

from __future__ import annotations

import random
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from osvos_plugin.io import (
    AsyncWriter,
    OutputError,
    Plate,
    PlateError,
    PrefetchReader,
    read_mask,
    read_plate_info,
    write_matte,
)

FRAMES = [(1001 + i, Path(f"/plates/p.{1001 + i}.exr")) for i in range(30)]


def test_reader_keeps_frame_order_with_uneven_read_times() -> None:
    rng = random.Random(0)
    delays = {f: rng.uniform(0, 0.004) for f, _ in FRAMES}

    def read(path: Path, frame: int) -> tuple[int, Path]:
        time.sleep(delays[frame])
        return frame, path

    got = list(PrefetchReader(FRAMES, read, depth=4, workers=3))
    assert got == FRAMES


def test_reader_memory_is_bounded_and_it_does_read_ahead() -> None:
    depth = 3
    lock = threading.Lock()
    started = 0

    def read(path: Path, frame: int) -> int:
        nonlocal started
        with lock:
            started += 1
        return frame

    ahead = []
    for consumed, _ in enumerate(PrefetchReader(FRAMES, read, depth=depth, workers=2), start=1):
        time.sleep(0.003)  # the "network": slower than the reads
        with lock:
            ahead.append(started - consumed)
    assert max(ahead) <= depth  # never more than `depth` frames read but not yet taken
    assert ahead.count(depth) > len(FRAMES) // 2  # and it really keeps `depth` frames in flight


def test_reader_error_names_the_frame_and_stops() -> None:
    def read(path: Path, frame: int) -> int:
        if frame == 1005:
            raise ValueError("decoder exploded")
        return frame

    reader = PrefetchReader(FRAMES, read, depth=2)
    got = []
    with pytest.raises(PlateError) as err:
        for item in reader:
            got.append(item)
    assert got == [1001, 1002, 1003, 1004]
    assert (
        "frame 1005" in str(err.value)
        and "p.1005.exr" in str(err.value)
        and "decoder exploded" in str(err.value)
    )
    assert list(reader) == []  # closed


def test_reader_reads_real_plates_with_read_plate_kwargs(tmp_path: Path, img) -> None:
    frames = [
        (f, img.write(tmp_path / f"p.{f}.exr", np.full((48, 64, 3), 0.18, np.float32), "half"))
        for f in (1, 2, 3)
    ]
    with PrefetchReader(frames, colorspace="srgb", depth=2) as reader:
        plates = list(reader)
    assert [p.info.frame for p in plates] == [1, 2, 3] and all(isinstance(p, Plate) for p in plates)
    np.testing.assert_allclose(plates[0].rgb, 0.18, atol=1e-3)  # colorspace reached read_plate


def test_reader_error_from_a_truncated_plate(tmp_path: Path, img) -> None:
    good = img.write(tmp_path / "p.1.exr", np.full((48, 64, 3), 0.18, np.float32), "half")
    bad = tmp_path / "p.2.exr"
    bad.write_bytes(good.read_bytes()[:40])
    with pytest.raises(PlateError, match=r"frame 2: .*p\.2\.exr"):
        list(PrefetchReader([(1, good), (2, bad)]))


def test_writer_runs_every_write_in_order_and_flushes_on_close() -> None:
    done: list[int] = []

    def slow_write(i: int) -> None:
        time.sleep(0.001)
        done.append(i)

    writer = AsyncWriter(max_pending=2)
    for i in range(20):
        writer.submit(slow_write, i)
    writer.close()
    assert done == list(range(20)) and writer.written == 20


def test_writer_queue_is_bounded() -> None:
    gate = threading.Event()
    submitted = 0
    writer = AsyncWriter(max_pending=3)

    def producer() -> None:
        nonlocal submitted
        for _ in range(10):
            writer.submit(gate.wait)
            submitted += 1

    thread = threading.Thread(target=producer)
    thread.start()
    time.sleep(0.2)
    blocked_at = submitted
    gate.set()
    thread.join(5)
    writer.close()
    assert blocked_at <= 3 + 1  # queue full + the one being written: submit blocks instead of piling up
    assert submitted == 10 and writer.written == 10


def test_writer_reraises_the_first_error_naming_the_file(tmp_path: Path) -> None:
    calls: list[Path] = []

    def write(path: Path) -> None:
        calls.append(path)
        if path.name == "m.0003.exr":
            raise PermissionError(13, "Permission denied")

    writer = AsyncWriter(max_pending=8)
    for i in range(1, 6):
        writer.submit(write, tmp_path / f"m.{i:04d}.exr")
    with pytest.raises(OutputError, match=r"m\.0003\.exr.*Permission denied"):
        writer.close()
    assert [p.name for p in calls] == ["m.0001.exr", "m.0002.exr", "m.0003.exr"]  # the rest skipped
    with pytest.raises(OutputError):
        writer.submit(write, tmp_path / "m.0009.exr")


def test_writer_context_manager_with_real_mattes(tmp_path: Path, img) -> None:
    plate = img.write(tmp_path / "p.exr", np.full((48, 64, 3), 0.18, np.float32), "half")
    info = read_plate_info(plate)
    with AsyncWriter() as writer:
        for f in range(1, 5):
            writer.submit(
                write_matte, tmp_path / "out" / f"m.{f}.exr", np.full((48, 64), f / 4, np.float32), info
            )
    for f in range(1, 5):
        assert read_mask(tmp_path / "out" / f"m.{f}.exr", allow_empty=True)[0, 0] == pytest.approx(f / 4)

    with pytest.raises(OutputError, match="extension"):
        with AsyncWriter() as writer:
            writer.submit(
                write_matte, tmp_path / "out" / "m.png", np.zeros((48, 64), np.float32), info, "exr"
            )


def test_writer_does_not_hide_the_bodys_exception() -> None:
    def fails() -> None:
        raise OSError("disk gone")

    with pytest.raises(RuntimeError, match="engine failed"):
        with AsyncWriter() as writer:
            writer.submit(fails)
            raise RuntimeError("engine failed")
