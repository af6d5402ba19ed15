"""Writing a file so that it is either whole or not there: mattes, checkpoints, exports, training state.

The bytes go to a hidden temporary file in the destination folder, are fsync'ed, optionally read back
(``verify``: a writer library can report success for bytes that never reached the disk), and only then
is the file renamed over the destination with ``os.replace`` (atomic on POSIX and NTFS). A killed
process leaves at worst a hidden ``.<name>.<random>.tmp``, never a truncated file under the real name,
and a failed write or check removes the temporary file and leaves whatever was at that path untouched.

A full disk (ENOSPC, or a used-up quota: EDQUOT) is reported as such, naming the file and the volume
that holds it. Libraries that do not pass the error number on (OpenImageIO reports "could only write
N bytes") are recognised by the volume having next to no free space left when the write failed.
"""

from __future__ import annotations

import errno
import logging
import os
import shutil
import uuid
from collections.abc import Callable
from pathlib import Path

from .errors import OutputError

log = logging.getLogger(__name__)

_FULL_ERRNOS = frozenset(e for e in (errno.ENOSPC, getattr(errno, "EDQUOT", None)) if e is not None)
_FULL_WORDS = tuple({os.strerror(e).lower() for e in _FULL_ERRNOS} | {"no space left", "disk full"})
# Free space below which a failed write is put down to a full volume (a writer's buffer or chunk that did
# not fit leaves less than this behind).
_NEARLY_FULL = 1 << 20


def _fsync_path(path: Path, directory: bool = False) -> None:
    flags = os.O_RDONLY | (getattr(os, "O_DIRECTORY", 0) if directory else 0)
    try:
        fd = os.open(path, flags)
    except OSError:
        if directory:
            return  # not supported here (e.g. Windows): the rename itself is still atomic
        raise
    try:
        os.fsync(fd)
    except OSError:
        if not directory:
            raise
    finally:
        os.close(fd)


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _current_umask()


def volume_of(path: str | os.PathLike) -> Path:
    """The mount point of the volume that holds ``path`` (which need not exist yet)."""
    current = Path(os.path.realpath(path))
    while not os.path.ismount(current) and current.parent != current:
        current = current.parent
    return current


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _is_disk_full(exc: BaseException, directory: Path) -> bool:
    """Whether ``exc`` (or an error it was raised from) says, or the volume shows, that the disk is full."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OSError) and current.errno in _FULL_ERRNOS:
            return True
        if any(word in str(current).lower() for word in _FULL_WORDS):
            return True
        current = current.__cause__ or current.__context__
    if not isinstance(exc, (OSError, OutputError)):
        return False  # a bug in the writer, not a failed write
    try:
        if shutil.disk_usage(directory).free < _NEARLY_FULL:
            return True
        inodes = os.statvfs(directory) if hasattr(os, "statvfs") else None
    except OSError:
        return False
    # No inode left is ENOSPC too; some file systems (btrfs) report no inode counts at all.
    return inodes is not None and inodes.f_files > 0 and inodes.f_favail == 0


def _disk_full_error(path: Path, exc: BaseException) -> OutputError:
    quota = isinstance(exc, OSError) and exc.errno == getattr(errno, "EDQUOT", None)
    why = "your disk quota is used up on" if quota else "no space left on"
    return OutputError(
        f"cannot write {path}: the disk is full ({why} the volume {volume_of(path.parent)}); free some space "
        f"there or write to another volume. Files written before this one are whole. [{_first_line(exc)}]"
    )


def atomic_write(
    path: str | os.PathLike,
    write: Callable[[Path], None],
    verify: Callable[[Path], None] | None = None,
) -> Path:
    """Call ``write(tmp)`` for a temporary file next to ``path``, fsync it, ``verify(tmp)``, rename it.

    ``verify`` (optional) reads the temporary file back and raises ``OutputError`` if it is not whole; it
    runs before the rename, so a bad file never takes the destination's name. On any error (including
    KeyboardInterrupt) the temporary file is removed and ``path`` is left as it was. A full disk becomes
    an ``OutputError`` that names the file and the volume; other OS errors an ``OutputError`` naming the
    destination.
    """
    path = Path(path)
    directory = path.parent
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        if _is_disk_full(exc, volume_of(directory)):
            raise _disk_full_error(path, exc) from exc
        raise OutputError(
            f"cannot create the output directory {directory} for {path.name} ({exc}); check "
            f"the output path and its permissions."
        ) from exc
    tmp = directory / f".{path.name}.{uuid.uuid4().hex[:12]}.tmp"
    try:
        write(tmp)
        os.chmod(tmp, 0o666 & ~_UMASK)  # some writers (safetensors) make 0600 files: farms need them readable
        _fsync_path(tmp)
        if verify is not None:
            verify(tmp)
        os.replace(tmp, path)
    except BaseException as exc:
        # Judged while the temporary file still takes its space on the volume.
        full = isinstance(exc, Exception) and _is_disk_full(exc, directory)
        try:
            tmp.unlink(missing_ok=True)
        except OSError:
            log.warning("could not remove the temporary file %s", tmp)
        if full:
            raise _disk_full_error(path, exc) from exc
        if isinstance(exc, OSError):
            raise OutputError(
                f"cannot write {path} ({exc}); check free disk space and permissions of {directory}."
            ) from exc
        raise
    _fsync_path(directory, directory=True)
    return path
