"""Verified writes: a matte or a model takes its name only after its temp file reads back whole.

A full disk once left 0-byte and truncated mattes under their real names while the render reported
success: OpenImageIO returned True for bytes it never wrote. These tests inject that failure (a lying
ImageOutput, a failing ``os.write``, a truncated temp file) and, where the kernel lets an unprivileged
user mount a tiny tmpfs, fill a real volume.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
import sys
import textwrap
from collections import namedtuple
from pathlib import Path

import numpy as np
import OpenImageIO as oiio
import pytest

from osvos_plugin import __version__
from osvos_plugin.errors import OutputError
from osvos_plugin.files import atomic_write, volume_of
from osvos_plugin.io import read_plate_info, write_matte
from osvos_plugin.io.mattes import read_matte_metadata

Usage = namedtuple("Usage", "total used free")
PLENTY = Usage(1 << 40, 0, 1 << 40)
NOTHING_LEFT = Usage(1 << 40, 1 << 40, 0)


def listing(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


@pytest.fixture
def plate(tmp_path: Path, img) -> Path:
    """A half-float EXR plate, 64x48, with a small data window and some metadata."""
    return img.write(
        tmp_path / "plate.1001.exr",
        img.gradient(30, 20),
        "half",
        origin=(10, 5),
        display=(0, 0, 64, 48),
        attrs={"studio:shot": "ab_010"},
    )


@pytest.fixture
def plenty_of_space(monkeypatch) -> None:
    """Free space reported as plenty, so only the error itself can say 'disk full'."""
    monkeypatch.setattr(shutil, "disk_usage", lambda _path: PLENTY)


def noise(seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).random((48, 64)).astype(np.float32)


# --------------------------------------------------------------------------------------------------
# files.atomic_write


def test_verify_sees_the_synced_temp_file_before_the_rename(tmp_path: Path) -> None:
    target = tmp_path / "out.bin"
    target.write_bytes(b"old")
    seen: list[tuple[Path, bytes, bytes]] = []

    def verify(tmp: Path) -> None:
        seen.append((tmp, tmp.read_bytes(), target.read_bytes()))

    assert atomic_write(target, lambda tmp: tmp.write_bytes(b"new"), verify) == target
    tmp, written, at_target = seen[0]
    assert tmp.parent == tmp_path and tmp.name.startswith(".out.bin.") and tmp.name.endswith(".tmp")
    assert (written, at_target) == (b"new", b"old")  # checked while the old file still had the name
    assert target.read_bytes() == b"new" and listing(tmp_path) == ["out.bin"]


@pytest.mark.parametrize("failure", [OutputError("it does not read back"), KeyboardInterrupt()])
def test_a_failed_verify_removes_the_temp_file_and_keeps_the_old_one(
    tmp_path: Path, plenty_of_space, failure: BaseException
) -> None:
    target = tmp_path / "out.bin"
    target.write_bytes(b"old")

    def verify(tmp: Path) -> None:
        raise failure

    with pytest.raises(type(failure)) as err:
        atomic_write(target, lambda tmp: tmp.write_bytes(b"new"), verify)
    assert err.value is failure  # passed on as is: its message already says what is wrong
    assert target.read_bytes() == b"old" and listing(tmp_path) == ["out.bin"]


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EDQUOT])
def test_a_full_disk_names_the_file_and_the_volume(tmp_path: Path, monkeypatch, code: int) -> None:
    volume = tmp_path / "vol"
    (volume / "shot").mkdir(parents=True)
    real_ismount = os.path.ismount
    monkeypatch.setattr(os.path, "ismount", lambda p: Path(p) == volume.resolve() or real_ismount(p))
    target = volume / "shot" / "matte.1001.exr"
    assert volume_of(target) == volume.resolve()

    def write(tmp: Path) -> None:
        tmp.write_bytes(b"half a fi")
        raise OSError(code, os.strerror(code))

    with pytest.raises(OutputError) as err:
        atomic_write(target, write)
    message = str(err.value)
    assert str(target) in message and "disk is full" in message and f"volume {volume.resolve()}" in message
    assert isinstance(err.value.__cause__, OSError) and err.value.__cause__.errno == code
    assert listing(volume / "shot") == []


def test_a_short_os_write_leaves_the_old_file_and_no_temp_file(tmp_path: Path, monkeypatch) -> None:
    target = tmp_path / "state.bin"
    target.write_bytes(b"previous state")
    real_write = os.write

    def write_until_full(fd: int, data: bytes) -> int:
        real_write(fd, bytes(data)[: len(data) // 2])
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    def write(tmp: Path) -> None:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            os.write(fd, b"x" * 100_000)
        finally:
            os.close(fd)

    monkeypatch.setattr(os, "write", write_until_full)
    with pytest.raises(OutputError, match="disk is full") as err:
        atomic_write(target, write)
    assert str(target) in str(err.value)
    assert target.read_bytes() == b"previous state" and listing(tmp_path) == ["state.bin"]


def test_other_os_errors_are_not_called_a_full_disk(tmp_path: Path, plenty_of_space) -> None:
    def write(tmp: Path) -> None:
        raise PermissionError(errno.EACCES, "Permission denied", str(tmp))

    with pytest.raises(OutputError, match="check free disk space and permissions") as err:
        atomic_write(tmp_path / "out.bin", write)
    assert "disk is full" not in str(err.value) and listing(tmp_path) == []


def test_a_write_error_without_an_errno_on_a_volume_with_no_space_left_is_a_full_disk(
    tmp_path: Path, monkeypatch
) -> None:
    """OpenImageIO says 'could only write N bytes' and nothing more: the volume tells the rest."""
    target = tmp_path / "m.png"

    def write(tmp: Path) -> None:
        tmp.write_bytes(b"\x89PNG")
        raise OutputError(f"writing {target} failed (Write error at position 161, could only write 3935/8192 bytes)")

    monkeypatch.setattr(shutil, "disk_usage", lambda _path: PLENTY)
    with pytest.raises(OutputError, match="could only write") as err:
        atomic_write(target, write)
    assert "disk is full" not in str(err.value)
    monkeypatch.setattr(shutil, "disk_usage", lambda _path: NOTHING_LEFT)
    with pytest.raises(OutputError, match="disk is full") as err:
        atomic_write(target, write)
    assert str(target) in str(err.value) and "could only write" in str(err.value)
    assert listing(tmp_path) == []


# --------------------------------------------------------------------------------------------------
# write_matte with a lying OpenImageIO


class LyingOutput:
    """An OIIO ImageOutput that reports success for a file that did not reach the disk whole."""

    def __init__(self, real: oiio.ImageOutput, mode: str) -> None:
        self._real, self._mode, self._path, self._error = real, mode, None, ""

    def __getattr__(self, name: str):
        return getattr(self._real, name)

    def open(self, name: str, spec: oiio.ImageSpec) -> bool:
        self._path = Path(name)
        return self._real.open(name, spec)

    def write_image(self, pixels) -> bool:
        ok = self._real.write_image(pixels)
        if self._mode == "error_message_only":  # libpng: True, and the error left in geterror()
            self._error = "Write error at position 161, could only write 3935/8192 bytes"
        return ok

    def geterror(self) -> str:
        error, self._error = self._error + self._real.geterror(), ""
        return error

    def close(self) -> bool:
        ok = self._real.close()
        if self._path is not None and self._path.exists():
            data = self._path.read_bytes()
            if self._mode == "truncated":
                self._path.write_bytes(data[: len(data) // 2])
            elif self._mode == "empty":
                self._path.write_bytes(b"")
            elif self._mode == "end_cut":
                self._path.write_bytes(data[:-5])
        return ok


def lie(monkeypatch, mode: str) -> None:
    real = oiio.ImageOutput

    class Factory:
        @staticmethod
        def create(*args):
            out = real.create(*args)
            return None if out is None else LyingOutput(out, mode)

    monkeypatch.setattr(oiio, "ImageOutput", Factory)


FORMATS = [("exr", "matte.1001.exr"), ("png8", "matte.1001.png"), ("png16", "matte.1001.png"),
           ("rgba", "matte.1001.exr"), ("rgba", "matte.1001.png"), ("rgba", "matte.1001.tif")]


@pytest.mark.parametrize("mode", ["error_message_only", "truncated", "empty", "end_cut"])
@pytest.mark.parametrize(("fmt", "name"), FORMATS)
def test_a_matte_that_did_not_reach_the_disk_whole_never_takes_the_frame_name(
    tmp_path: Path, plate: Path, monkeypatch, plenty_of_space, mode: str, fmt: str, name: str
) -> None:
    info = read_plate_info(plate, 1001)
    out_dir = tmp_path / "out"
    target = write_matte(out_dir / name, noise(1), info, fmt)  # a good frame from an earlier render
    previous = target.read_bytes()
    lie(monkeypatch, mode)
    with pytest.raises(OutputError) as err:
        write_matte(target, noise(2), info, fmt)
    assert str(target) in str(err.value)
    assert target.read_bytes() == previous and listing(out_dir) == [name]
    assert read_matte_metadata(target) == {"version": __version__}
    # the same failure on a volume with no space left is reported as the full disk it is
    monkeypatch.setattr(shutil, "disk_usage", lambda _path: NOTHING_LEFT)
    with pytest.raises(OutputError, match="disk is full") as err:
        write_matte(out_dir / f"new.{name}", noise(2), info, fmt)
    assert str(out_dir / f"new.{name}") in str(err.value) and listing(out_dir) == [name]


def test_an_error_left_in_oiio_by_earlier_code_does_not_fail_the_write(tmp_path: Path, plate: Path) -> None:
    assert oiio.ImageInput.open(str(tmp_path / "missing.exr")) is None  # leaves a message behind
    out = write_matte(tmp_path / "m.exr", noise(), read_plate_info(plate))
    assert read_matte_metadata(out) == {"version": __version__}


# --------------------------------------------------------------------------------------------------
# read_matte_metadata and write_matte(metadata=...)


ITEMS = {"fingerprint": "9f2c" * 16, "keyframes": "1001:ab12,1040:cd34", "threshold": "0.5"}


@pytest.mark.parametrize(("fmt", "name"), FORMATS)
def test_metadata_round_trips(tmp_path: Path, img, plate: Path, fmt: str, name: str) -> None:
    out = write_matte(tmp_path / name, noise(), read_plate_info(plate), fmt, metadata=ITEMS)
    assert read_matte_metadata(out) == {**ITEMS, "version": __version__}
    spec, _ = img.read_raw(out)
    assert spec.get_string_attribute("Software") == f"osvos-plugin {__version__}"
    if name.endswith(".tif"):  # no named attributes in TIFF: one JSON object in ImageDescription
        packed = json.loads(spec.get_string_attribute("ImageDescription"))
        assert packed == {f"osvos:{k}": v for k, v in {**ITEMS, "version": __version__}.items()}
    else:  # an EXR header attribute / a PNG text chunk per item
        assert spec.get_string_attribute("osvos:fingerprint") == ITEMS["fingerprint"]
        assert spec.get_string_attribute("osvos:version") == __version__


def test_png_metadata_is_a_text_chunk(tmp_path: Path, plate: Path) -> None:
    out = write_matte(tmp_path / "m.png", noise(), read_plate_info(plate), "png16", metadata=ITEMS)
    data = out.read_bytes()
    assert b"tEXt" in data or b"iTXt" in data or b"zTXt" in data
    assert b"osvos:fingerprint" in data and ITEMS["fingerprint"].encode() in data


def test_formats_without_room_for_metadata_give_an_empty_dict(tmp_path: Path, plate: Path) -> None:
    out = write_matte(tmp_path / "m.dpx", noise(), read_plate_info(plate), "rgba", metadata=ITEMS)
    assert read_matte_metadata(out) == {}


def test_a_matte_rewritten_with_other_metadata_reads_back_the_new_items(tmp_path: Path, plate: Path) -> None:
    info = read_plate_info(plate)
    out = write_matte(tmp_path / "m.exr", noise(), info, metadata={"fingerprint": "a1"})
    write_matte(out, noise(), info, metadata={"fingerprint": "b2"})
    assert read_matte_metadata(out) == {"fingerprint": "b2", "version": __version__}


@pytest.mark.parametrize(
    ("metadata", "match"),
    [
        ({"osvos:fingerprint": "ab"}, "prefix"),
        ({"": "ab"}, "1-48 letters"),
        ({"a key": "ab"}, "1-48 letters"),
        ({"k" * 49: "ab"}, "1-48 letters"),
        ({"version": "9.9"}, "engine's own"),
        ({"fingerprint": ""}, "non-empty string"),
        ({"fingerprint": 12}, "non-empty string"),
    ],
)
def test_metadata_a_file_could_not_carry_is_refused(tmp_path: Path, plate: Path, metadata, match: str) -> None:
    with pytest.raises(OutputError, match=match):
        write_matte(tmp_path / "m.exr", noise(), read_plate_info(plate), metadata=metadata)
    assert not (tmp_path / "m.exr").exists()


@pytest.mark.parametrize("name", ["m.exr", "m.png", "m.tif"])
def test_read_matte_metadata_is_none_for_a_file_that_is_not_whole(tmp_path: Path, plate: Path, name: str) -> None:
    fmt = {"m.exr": "exr", "m.png": "png16", "m.tif": "rgba"}[name]
    good = write_matte(tmp_path / name, noise(), read_plate_info(plate), fmt, metadata=ITEMS)
    data = good.read_bytes()
    assert read_matte_metadata(good) is not None
    assert read_matte_metadata(tmp_path / f"missing.{name}") is None
    for cut in (0, 8, len(data) // 2, len(data) - 12 if name == "m.png" else len(data) - 64):
        bad = tmp_path / f"cut{cut}.{name}"
        bad.write_bytes(data[:cut])
        assert read_matte_metadata(bad) is None, f"{cut} of {len(data)} bytes read as whole"
    (tmp_path / "text.exr").write_text("not an image\n")
    assert read_matte_metadata(tmp_path / "text.exr") is None
    assert read_matte_metadata(tmp_path) is None  # a folder


def test_read_matte_metadata_of_another_tools_image_is_an_empty_dict(tmp_path: Path, img) -> None:
    other = img.write(tmp_path / "other.png", img.gradient(), "uint8", attrs={"studio:shot": "ab_010"})
    assert read_matte_metadata(other) == {}


# --------------------------------------------------------------------------------------------------
# save_checkpoint


def test_a_saved_model_that_does_not_read_back_never_replaces_the_old_one(tmp_path: Path, monkeypatch) -> None:
    import safetensors.torch

    from osvos_plugin.network import OSVOSNet
    from osvos_plugin.weights import load_checkpoint, save_checkpoint

    net = OSVOSNet()
    target = save_checkpoint(net, tmp_path / "model.safetensors")
    previous = target.read_bytes()
    real_save = safetensors.torch.save_file

    def truncated(tensors, filename, metadata=None):
        real_save(tensors, filename, metadata=metadata)
        data = Path(filename).read_bytes()
        Path(filename).write_bytes(data[: len(data) - 1000])

    def other_metadata(tensors, filename, metadata=None):
        real_save(tensors, filename, metadata={**(metadata or {}), "provenance": "{}x"})

    def one_weight_off(tensors, filename, metadata=None):
        tensors = dict(tensors)
        tensors["fuse.weight"] = tensors["fuse.weight"] + 1.0
        real_save(tensors, filename, metadata=metadata)

    for fake, match in [(truncated, "cannot be read back"), (other_metadata, "metadata"),
                        (one_weight_off, "fuse.weight")]:
        monkeypatch.setattr(safetensors.torch, "save_file", fake)
        with pytest.raises(OutputError, match=match) as err:
            save_checkpoint(net, target)
        assert str(target) in str(err.value)
        assert target.read_bytes() == previous and listing(tmp_path) == ["model.safetensors"]

    def full_disk(tensors, filename, metadata=None):
        Path(filename).write_bytes(b"\0" * 10)
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(safetensors.torch, "save_file", full_disk)
    with pytest.raises(OutputError, match="disk is full"):
        save_checkpoint(net, target)
    assert target.read_bytes() == previous and listing(tmp_path) == ["model.safetensors"]
    load_checkpoint(target)


# --------------------------------------------------------------------------------------------------
# A real full volume: a tiny tmpfs, mounted in a user namespace where the kernel allows it


FILL_SCRIPT = textwrap.dedent(
    """
    import json, sys
    from pathlib import Path
    import numpy as np
    from osvos_plugin.errors import OutputError
    from osvos_plugin.io import read_plate_info, write_matte
    from osvos_plugin.io.mattes import read_matte_metadata

    plate, root = Path(sys.argv[1]), Path(sys.argv[2])
    info = read_plate_info(plate, 1)
    rng = np.random.default_rng(0)
    report = {}
    for fmt, ext in [("exr", "exr"), ("png8", "png"), ("png16", "png"), ("rgba", "tif"), ("rgba", "png")]:
        volume = root / f"{fmt}-{ext}"
        written, error = [], None
        for frame in range(1, 200):
            path = volume / "shot" / f"matte.{frame:04d}.{ext}"
            try:
                write_matte(path, rng.random((info.height, info.width)).astype(np.float32), info, fmt,
                            metadata={"fingerprint": "ab"})
            except OutputError as exc:
                error = {"frame": str(path), "message": str(exc)}
                break
            written.append(path.name)
        names = sorted(p.name for p in (volume / "shot").iterdir())
        whole = {n: read_matte_metadata(volume / "shot" / n) is not None for n in names}
        report[f"{fmt}-{ext}"] = {"volume": str(volume), "written": written, "error": error, "whole": whole}
    print(json.dumps(report))
    """
)


def test_a_real_full_volume(tmp_path: Path, img) -> None:
    if sys.platform != "linux" or shutil.which("unshare") is None:
        pytest.skip("needs Linux user namespaces (unshare)")
    plate = img.write(tmp_path / "plate.exr", img.gradient(160, 120), "half")
    root = tmp_path / "volumes"
    names = ["exr-exr", "png8-png", "png16-png", "rgba-tif", "rgba-png"]
    for name in names:
        (root / name).mkdir(parents=True)
    probe = subprocess.run(
        ["unshare", "-rm", "sh", "-c", f"mount -t tmpfs -o size=64k none {root / names[0]}"],
        capture_output=True, text=True, timeout=30,
    )
    if probe.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs without privileges here: {probe.stderr.strip()}")
    script = tmp_path / "fill.py"
    script.write_text(FILL_SCRIPT)
    mounts = " && ".join(f"mount -t tmpfs -o size=256k none '{root / n}'" for n in names)
    run = subprocess.run(
        ["unshare", "-rm", "sh", "-c", f'{mounts} && exec "$0" "$1" "$2" "$3"',
         sys.executable, str(script), str(plate), str(root)],
        capture_output=True, text=True, timeout=240, cwd=Path(__file__).resolve().parents[2],
    )
    assert run.returncode == 0, run.stderr[-3000:]
    report = json.loads(run.stdout.strip().splitlines()[-1])
    for name in names:
        case = report[name]
        assert case["error"] is not None, f"{name}: the volume never filled up"
        message = case["error"]["message"]
        assert case["error"]["frame"] in message, message
        assert "disk is full" in message and f"volume {case['volume']}" in message, message
        assert case["written"], f"{name}: not one frame fitted"
        assert sorted(case["whole"]) == case["written"], f"{name}: temp or failed files left behind"
        assert all(case["whole"].values()), f"{name}: a frame on the volume does not read back whole"
