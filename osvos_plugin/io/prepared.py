"""Network-ready plates kept on local disk between the up-front check and inference.

A render must decode every frame before fine-tuning, to find NaN pixels and truncated files, and again during
inference. Decoding a 1920x1080 ZIP half EXR is most of the I/O cost (BENCHMARKS.md), so ``PreparedPlates``
takes the frames the check has just decoded, shrinks and colour-converts them as ``read_plate`` would, and
spills the result (float32 at the processing size) to a private temporary directory. Inference then loads each
frame, far cheaper than decoding it, and its file is deleted once read. Memory does not grow with the shot:
nothing is kept in RAM but each frame's header. When the disk budget is spent, or the disk refuses a write,
the remaining frames are simply read from the plates again. A temporary directory on a memory-backed file
system (tmpfs, the default /tmp of some distributions) would hold the frames in RAM after all, so there
nothing is kept unless the caller asks for that directory explicitly.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import socket
import tempfile
import threading
from collections.abc import Collection
from pathlib import Path
from types import TracebackType

import numpy as np

from .colour import ColourSettings
from .plates import Plate, PlateInfo, prepare_plate, read_plate

log = logging.getLogger(__name__)

__all__ = ["PreparedPlates"]

DEFAULT_BUDGET = 4 << 30  # bytes (4 GiB: 480x270x3 float32 frames take 1.5 MiB each)
_FREE_MARGIN = 1 << 30  # never fill the temporary disk closer than this
_MEMORY_FILESYSTEMS = frozenset({"tmpfs", "ramfs"})


def filesystem_type(path: str | os.PathLike) -> str | None:
    """The type of the file system that holds ``path`` (Linux: from /proc/self/mounts), or None if unknown."""
    try:
        with open("/proc/self/mounts", encoding="utf-8") as f:
            mounts = [line.split()[1:3] for line in f if len(line.split()) >= 3]
    except OSError:
        return None
    target = os.path.realpath(path)
    best: tuple[int, str] | None = None
    for mount_point, fs_type in mounts:
        mount_point = mount_point.replace("\\040", " ")
        inside = target == mount_point or target.startswith(mount_point.rstrip("/") + "/")
        if inside and (best is None or len(mount_point) >= best[0]):
            best = (len(mount_point), fs_type)
    return best[1] if best else None


_PREFIX = "osvos-plates-"


def _owner() -> str:
    """``<host>-<pid>``: whose folder it is, so that a later render can tell a live one from an orphan."""
    host = re.sub(r"[^A-Za-z0-9.]", "_", socket.gethostname()) or "host"
    return f"{host}-{os.getpid()}"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # another user's process (EPERM): alive
        return True
    return True


def remove_orphans(directory: str | os.PathLike | None = None) -> list[Path]:
    """Remove the plate folders left by renders of this host whose process is gone (killed, power cut);
    returns what was removed. Folders of other hosts (a shared temp folder) and of live processes stay."""
    root = Path(directory) if directory is not None else Path(tempfile.gettempdir())
    host = _owner().rsplit("-", 1)[0]
    pattern = re.compile(re.escape(_PREFIX + host) + r"-(\d+)-")
    removed = []
    try:
        entries = list(root.iterdir())
    except OSError:
        return removed
    for entry in entries:
        m = pattern.match(entry.name)
        if m and entry.is_dir() and not _alive(int(m.group(1))):
            shutil.rmtree(entry, ignore_errors=True)
            if not entry.exists():
                removed.append(entry)
                log.info("removed %s, left by a render (process %s) that is gone", entry, m.group(1))
    return removed


class PreparedPlates:
    """Frames as the network sees them, decoded once: ``add`` from ``validate_plates``, ``read`` at inference.

    Each frame covers the plate's canvas (``read_plate(overscan=True)``: the display window grown to hold the
    whole data window), so the matte covers the overscan too; for the usual plate that is the display window.

    ``frames``: the frame numbers worth keeping (the ones the render will infer); ``None`` keeps all.
    ``read(path, frame=...)`` has ``read_plate``'s signature, so it is a drop-in ``read_fn`` for
    ``PrefetchReader``; a frame that was not kept is read from its file. Thread-safe. Use it as a
    context manager: the directory is removed on exit, also after an error or Ctrl-C.
    """

    def __init__(
        self,
        frames: Collection[int] | None = None,
        *,
        colorspace: str = "auto",
        colour: ColourSettings | None = None,
        max_size: int | None = None,
        budget: int = DEFAULT_BUDGET,
        directory: str | os.PathLike | None = None,
    ) -> None:
        self.colorspace = colorspace
        self.colour = colour
        self.max_size = max_size
        self._wanted = None if frames is None else {int(f) for f in frames}
        self._budget = budget
        remove_orphans(directory)
        self._dir = Path(tempfile.mkdtemp(prefix=f"{_PREFIX}{_owner()}-", dir=directory))
        self._lock = threading.Lock()
        self._kept: dict[int, PlateInfo] = {}
        self._bytes = 0
        self._full = False
        fs_type = filesystem_type(self._dir)
        if directory is None and fs_type in _MEMORY_FILESYSTEMS:
            self._full = True
            log.info(
                "%s is on %s (memory): plates are decoded again during inference instead of kept there; "
                "set TMPDIR to a folder on a disk to decode each plate once", self._dir.parent, fs_type,
            )

    @property
    def directory(self) -> Path:
        return self._dir

    def __len__(self) -> int:
        with self._lock:
            return len(self._kept)

    def __contains__(self, frame: object) -> bool:
        with self._lock:
            return frame in self._kept

    def _file(self, frame: int) -> Path:
        return self._dir / f"{frame}.npy"

    def _reserve(self, nbytes: int) -> bool:
        with self._lock:
            if self._full:
                return False
            free = shutil.disk_usage(self._dir).free
            if self._bytes + nbytes > self._budget or free - nbytes < _FREE_MARGIN:
                self._full = True
                log.info(
                    "prepared-plate cache full after %d frames (%.0f MiB; budget %.0f MiB, %.0f MiB free in "
                    "%s): the remaining frames are decoded again during inference",
                    len(self._kept), self._bytes / 2**20, self._budget / 2**20, free / 2**20, self._dir,
                )
                return False
            self._bytes += nbytes
            return True

    def add(self, info: PlateInfo, rgb: np.ndarray) -> bool:
        """Prepare and keep one frame from the file's own RGB of its data window; False if not kept."""
        if info.frame is None or (self._wanted is not None and info.frame not in self._wanted) or self._full:
            return False
        plate = prepare_plate(info, rgb, self.colorspace, colour=self.colour, max_size=self.max_size,
                              overscan=True)
        if not self._reserve(plate.rgb.nbytes + 128):
            return False
        path = self._file(info.frame)
        try:
            np.save(path, plate.rgb, allow_pickle=False)
        except OSError as exc:  # disk full, quota: fall back to reading the plate again
            path.unlink(missing_ok=True)
            with self._lock:
                self._full = True
            log.warning("cannot keep prepared frame %s in %s (%s): reading plates again instead",
                        info.frame, self._dir, exc)
            return False
        with self._lock:
            self._kept[info.frame] = plate.info
        return True

    def read(self, path: str | os.PathLike, frame: int | None = None, *, keep: bool = False, **_: object) -> Plate:
        """The kept frame (its file is deleted once read, unless ``keep``: it will be read again), else
        ``read_plate`` of ``path``."""
        with self._lock:
            if frame is None:
                info = None
            else:
                info = self._kept.get(frame) if keep else self._kept.pop(frame, None)
        if info is None:
            return self._read_plate(path, frame)
        file = self._file(frame)
        try:
            rgb = np.load(file, allow_pickle=False)
        except (OSError, ValueError) as exc:  # e.g. a temp cleaner got there first: the plate is still there
            log.warning("prepared frame %s lost (%s): reading %s again", frame, exc, path)
            return self._read_plate(path, frame)
        finally:
            if not keep:
                file.unlink(missing_ok=True)
        return Plate(info, rgb)

    def _read_plate(self, path: str | os.PathLike, frame: int | None) -> Plate:
        return read_plate(path, frame, self.colorspace, colour=self.colour, max_size=self.max_size, overscan=True)

    def close(self) -> None:
        """Remove the directory and everything still in it."""
        with self._lock:
            self._kept.clear()
        shutil.rmtree(self._dir, ignore_errors=True)

    def __enter__(self) -> PreparedPlates:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
