"""Writing a file so that it is either whole or not there: mattes, checkpoints, exports, training state.

The bytes go to a hidden temporary file in the destination folder, are fsync'ed, and the file is
renamed over the destination with ``os.replace`` (atomic on POSIX and NTFS). A killed process leaves at
worst a hidden ``.<name>.<random>.tmp``, never a truncated file under the real name, and a failed write
leaves whatever was at that path before untouched.
"""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import Callable
from pathlib import Path

from .errors import OutputError

log = logging.getLogger(__name__)


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


def atomic_write(path: str | os.PathLike, write: Callable[[Path], None]) -> Path:
    """Call ``write(tmp)`` for a temporary file next to ``path``, fsync it, then rename it to ``path``.

    On any error (including KeyboardInterrupt) the temporary file is removed and ``path`` is left
    as it was. OS errors come back as ``OutputError`` naming the destination.
    """
    path = Path(path)
    directory = path.parent
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(
            f"cannot create the output directory {directory} for {path.name} ({exc}); check "
            f"the output path and its permissions."
        ) from exc
    tmp = directory / f".{path.name}.{uuid.uuid4().hex[:12]}.tmp"
    try:
        write(tmp)
        os.chmod(tmp, 0o666 & ~_UMASK)  # some writers (safetensors) make 0600 files: farms need them readable
        _fsync_path(tmp)
        os.replace(tmp, path)
    except BaseException as exc:
        try:
            tmp.unlink(missing_ok=True)
        except OSError:
            log.warning("could not remove the temporary file %s", tmp)
        if isinstance(exc, OSError):
            raise OutputError(
                f"cannot write {path} ({exc}); check free disk space and permissions of {directory}."
            ) from exc
        raise
    _fsync_path(directory, directory=True)
    return path
