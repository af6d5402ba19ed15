"""What a render may write, and which of its frames on disk are current.

* **Identity, not spelling**: an output is compared with every input (plates, masks, models) as a file
  (resolved path, and device and inode where it exists), so ``in/../in/plate.####.exr``, a relative path
  or a symlinked folder cannot turn a render into one that overwrites its own plates.
* **One render per output**: an advisory lock beside the output pattern refuses a second render of the
  same mattes while the first runs, naming its process and host.
* **Fingerprints**: each matte records a digest of everything that made it (the model, the keyframes,
  every matte-changing parameter, the plate frame, the engine version); resume keeps a frame only when it
  reads back whole with the same digest.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import logging
import os
import socket
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from .errors import InputError, OutputError

log = logging.getLogger(__name__)

# Every node parameter is part of a matte's fingerprint but these: the frame range, the device and the
# batch size (the same model gives the same matte). A new parameter is in it without a line here.
NOT_IN_FINGERPRINT = ("frames", "device", "batch_size", "threads", "keep_model", "continue_iterations",
                      "max_objects")
# Parameters that only decide the fine-tuned network: with a loaded model they change nothing.
MODEL_PARAMETERS = ("mask_frame", "iterations", "learning_rate", "optimizer", "learn_anywhere", "object_networks",
                    "seed", "self_train_iterations", "self_train_frames")
FINGERPRINT_KEY = "fingerprint"


# ---------------------------------------------------------------------------------------- identity


@functools.lru_cache(maxsize=256)
def _real_folder(folder: str) -> str:
    return os.path.realpath(folder)


def _real(path: str | os.PathLike) -> str:
    """The path with its folder's symlinks and ``..`` resolved (the file itself need not exist)."""
    path = os.path.abspath(path)
    return os.path.join(_real_folder(os.path.dirname(path)), os.path.basename(path))


def _inode(path: str | os.PathLike) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino


class Inputs:
    """The files a render reads, by what they are (for messages) and as files (for comparisons)."""

    def __init__(self) -> None:
        self._by_real: dict[str, tuple[str, str]] = {}
        self._by_inode: dict[tuple[int, int], tuple[str, str]] = {}

    def add(self, what: str, paths: Iterable[str | os.PathLike], stat: bool = True) -> None:
        """``stat``: also compare device and inode (hard links), one stat per file."""
        for path in paths:
            self._by_real.setdefault(_real(path), (what, str(path)))
            node = _inode(path) if stat else None
            if node is not None:
                self._by_inode.setdefault(node, (what, str(path)))

    def clash(self, output: str | os.PathLike) -> tuple[str, str] | None:
        """(what, path) of the input that ``output`` would overwrite, or None."""
        found = self._by_real.get(_real(output))
        if found is None and (node := _inode(output)) is not None:
            found = self._by_inode.get(node)
        return found


def refuse_overwriting_inputs(inputs: Inputs, outputs: Iterable[tuple[str, str | os.PathLike]]) -> None:
    """InputError (exit 3) naming both files when an output (what, path) is one of the inputs."""
    for what, path in outputs:
        clash = inputs.clash(path)
        if clash is not None:
            raise InputError(
                f"the {what} {path} is the {clash[0]} {clash[1]} (the same file): refusing to overwrite an "
                f"input; write the {what} somewhere else."
            )


# -------------------------------------------------------------------------------------------- lock


@contextlib.contextmanager
def output_lock(pattern: str | os.PathLike, frames: Sequence[int] | None = None) -> Iterator[Path | None]:
    """Hold the lock of an output pattern (``.<name>.osvos-lock`` in its folder) while a render writes;
    OutputError naming the holder when another render holds it. Folders made for it and the lock file are
    removed again when nothing else was put there. Without ``fcntl`` (Windows) nothing is locked.

    A render of an explicit frame range (``frames``: a farm chunk, or a range given by hand) shares the
    pattern's lock with other ranges and holds its range's own (``.<name>.<first>-<last>.osvos-lock``)
    alone: chunks of one shot render side by side, the same chunk twice does not, and a render of the whole
    shot waits for none of them but refuses to start while any runs."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not on POSIX
        yield None
        return
    pattern = Path(pattern)
    made = _missing_folders(pattern.parent)
    path = pattern.parent / f".{pattern.name}.osvos-lock"
    held: list[tuple[Path, int]] = []
    try:
        pattern.parent.mkdir(parents=True, exist_ok=True)
        held.append((path, _locked(path, fcntl, pattern, shared=frames is not None)))
        if frames is not None:
            span = f"{min(frames)}-{max(frames)}"
            part = pattern.parent / f".{pattern.name}.{span}.osvos-lock"
            held.append((part, _locked(part, fcntl, pattern, what=f"frames {span} of ")))
    except OSError as e:
        _release(held, fcntl)
        _remove_empty(made)
        raise OutputError(f"cannot write into {pattern.parent} ({e.strerror or e}); check the output path and its "
                          "permissions.") from e
    except OutputError:
        _release(held, fcntl)
        _remove_empty(made)
        raise
    try:
        yield path
    finally:
        _release(held, fcntl)
        _remove_empty(made)


def _release(held: list[tuple[Path, int]], fcntl) -> None:
    """Unlock in reverse order. A lock file is removed only by its last holder (one that can take it alone),
    while still holding it: a render waiting on the file sees it gone and retries."""
    for path, fd in reversed(held):
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            pass  # other ranges still hold it shared
        else:
            with contextlib.suppress(OSError):
                path.unlink()
        os.close(fd)
    held.clear()


def _locked(path: Path, fcntl, pattern: Path, shared: bool = False, what: str = "") -> int:
    """An open, locked descriptor of the lock file that is still the file at ``path`` (a render that held
    it may have removed it between our open and our lock: then open the new one)."""
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)
        except OSError:
            holder = os.pread(fd, 4096, 0).decode("utf-8", "replace").strip()
            os.close(fd)
            raise OutputError(
                f"{what}{pattern} {'are' if what else 'is'} being rendered by another osvos-render "
                f"({holder or 'process unknown'}); wait for it to finish or stop it, or write to another output."
            ) from None
        try:
            current = os.stat(path)
        except FileNotFoundError:
            current = None
        if current is not None and os.path.samestat(current, os.fstat(fd)):
            break
        os.close(fd)
    if not shared:  # who holds it, for the message another render gets
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"process {os.getpid()} on {socket.gethostname()}, since "
                      f"{time.strftime('%Y-%m-%d %H:%M:%S')}".encode(), 0)
    return fd


def _missing_folders(folder: Path) -> list[Path]:
    """The folders that creating ``folder`` would make, deepest first."""
    made = []
    folder = Path(os.path.abspath(folder))
    while not folder.exists() and folder != folder.parent:
        made.append(folder)
        folder = folder.parent
    return made


def _remove_empty(folders: list[Path]) -> None:
    for folder in folders:
        try:
            folder.rmdir()
        except OSError:  # not empty (mattes were written), or gone
            return


# ------------------------------------------------------------------------------------- fingerprints


def file_digest(path: str | os.PathLike) -> str:
    """sha256 of a file's bytes ("missing" when it cannot be read: the render reports that itself)."""
    h = hashlib.sha256()
    try:
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
    except OSError:
        return "missing"
    return h.hexdigest()


@dataclass(frozen=True)
class Fingerprint:
    """The digest of what makes a shot's mattes, before the plate frame: ``for_frame`` adds the frame."""

    digest: str

    @classmethod
    def of(cls, version: str, params: dict, model: dict) -> Fingerprint:
        skip = NOT_IN_FINGERPRINT + (MODEL_PARAMETERS if "loaded" in model else ())
        record = {"engine": version, "params": {k: v for k, v in params.items() if k not in skip}, "model": model}
        return cls(hashlib.sha256(json.dumps(record, sort_keys=True, default=str).encode()).hexdigest())

    def for_frame(self, plate: str | os.PathLike) -> str:
        """Tied to the plate file as it is now (a re-rendered plate frame changes it)."""
        return hashlib.sha256(f"{self.digest}:{file_stamp(plate)}".encode()).hexdigest()[:32]


def file_stamp(path: str | os.PathLike) -> str:
    """Size and modification time: cheap, and changes when a plate frame is rendered again."""
    try:
        st = os.stat(path)
    except OSError:
        return "missing"
    return f"{st.st_size}:{st.st_mtime_ns}"


def model_identity(*, load_model: str | os.PathLike | None = None,
                   parent: str | os.PathLike | None = None,
                   keyframes: Iterable[tuple[str | os.PathLike, int, str | os.PathLike]] = (),
                   resize_mask: bool = False, objects: Iterable[str] = (), continued: dict | None = None,
                   recipe: dict | None = None) -> dict:
    """What decides the network: a loaded model's bytes, or the parent's bytes, each painted mask with the
    frame it was painted on and that frame's plate, and the fine-tuning parameters (the node's, in the
    fingerprint's parameters; the engine's own, ``recipe``); with several objects, their names (the mattes'
    layers)."""
    named = {"objects": list(objects)} if objects else {}
    if continued:  # the kept model it continued from (its digest) and the steps: see plan.kept_model
        named["continued"] = continued
    if load_model is not None:
        return {"loaded": file_digest(load_model), **named}
    return {
        "parent": file_digest(parent) if parent is not None else "missing",
        "keyframes": [[int(frame), file_digest(mask), file_stamp(plate)] for mask, frame, plate in keyframes],
        "resize_mask": bool(resize_mask), **({"recipe": recipe} if recipe else {}), **named,
    }
