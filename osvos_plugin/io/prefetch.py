"""Overlap plate I/O with compute: read ahead while the network runs, write behind it.

Both sides are bounded, so memory does not grow with shot length: ``PrefetchReader`` holds at most
``depth`` frames that the consumer has not taken yet, ``AsyncWriter`` at most ``max_pending``
queued writes (``submit`` blocks when the disk is the bottleneck). OpenImageIO decodes with the GIL
released, so threads are enough.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from types import TracebackType
from typing import Any

from ..errors import OSVOSError
from .errors import OutputError, PlateError
from .plates import read_plate

log = logging.getLogger(__name__)

__all__ = ["PrefetchReader", "AsyncWriter"]


class PrefetchReader:
    """Iterate over read frames in order while the next ``depth`` are read in background threads.

    ``read_fn(path, frame=frame, **read_kwargs)`` reads one frame (default: ``read_plate``, so
    ``PrefetchReader(frames, colorspace='linear')`` works). A failed read stops the iteration with a
    ``PlateError`` naming the frame and file.
    """

    def __init__(
        self,
        frames: Sequence[tuple[int, str | os.PathLike]],
        read_fn: Callable[..., Any] | None = None,
        *,
        depth: int = 4,
        workers: int = 2,
        **read_kwargs: Any,
    ) -> None:
        if depth < 1:
            raise ValueError("depth must be at least 1")
        self._frames = [(int(f), Path(p)) for f, p in frames]
        self._read_fn = read_fn or read_plate
        self._kwargs = read_kwargs
        self._depth = depth
        self._pool = ThreadPoolExecutor(
            max_workers=max(1, min(workers, depth)), thread_name_prefix="osvos-read"
        )
        self._pending: deque[tuple[int, Path, Future]] = deque()
        self._next = 0
        self._closed = False

    def __len__(self) -> int:
        return len(self._frames)

    def __iter__(self) -> Iterator[Any]:
        return self

    def _fill(self) -> None:
        while not self._closed and len(self._pending) < self._depth and self._next < len(self._frames):
            frame, path = self._frames[self._next]
            self._next += 1
            self._pending.append(
                (frame, path, self._pool.submit(self._read_fn, path, frame=frame, **self._kwargs))
            )

    def __next__(self) -> Any:
        if self._closed:
            raise StopIteration
        self._fill()
        if not self._pending:
            self.close()
            raise StopIteration
        frame, path, future = self._pending.popleft()
        try:
            result = future.result()
        except BaseException as exc:
            self.close()
            if isinstance(exc, OSVOSError) and str(path) in str(exc):
                raise PlateError(f"frame {frame}: {exc}") from exc
            raise PlateError(f"frame {frame} ({path}) could not be read: {exc}") from exc
        self._fill()  # keep `depth` reads in flight while the caller works on this frame
        return result

    def close(self) -> None:
        """Stop reading ahead; pending reads are cancelled (a read already running finishes)."""
        if self._closed:
            return
        self._closed = True
        for _, _, future in self._pending:
            future.cancel()
        self._pending.clear()
        self._pool.shutdown(wait=False, cancel_futures=True)

    def __enter__(self) -> PrefetchReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


_STOP = object()


class AsyncWriter:
    """Run writes (``submit(write_matte, path, matte, info, ...)``) in order on a background thread.

    After the first failure the remaining queued writes are skipped and ``submit`` raises at once,
    so a render stops quickly when the disk is full; ``close()`` waits for the queue to drain and
    re-raises the first error (as an ``OutputError`` naming the file unless it already was an I/O
    error). As a context manager it closes on exit, without hiding an exception of the ``with`` body.
    """

    def __init__(self, max_pending: int = 4) -> None:
        if max_pending < 1:
            raise ValueError("max_pending must be at least 1")
        self._queue: queue.Queue = queue.Queue(maxsize=max_pending)
        self._error: BaseException | None = None
        self._closed = False
        self.written = 0
        self._thread = threading.Thread(target=self._run, name="osvos-writer", daemon=True)
        self._thread.start()

    @staticmethod
    def _describe(args: tuple, kwargs: dict) -> str:
        target = kwargs.get("path", args[0] if args else None)
        return str(target) if isinstance(target, str | os.PathLike) else "output"

    def _run(self) -> None:
        while True:
            job = self._queue.get()
            try:
                if job is _STOP:
                    return
                if self._error is not None:
                    continue  # a write failed already: skip the rest, close() reports it
                fn, args, kwargs = job
                try:
                    fn(*args, **kwargs)
                    self.written += 1
                except BaseException as exc:
                    if isinstance(exc, OSVOSError):
                        self._error = exc
                    else:
                        wrapped = OutputError(
                            f"writing {self._describe(args, kwargs)} failed: {type(exc).__name__}: {exc}"
                        )
                        wrapped.__cause__ = exc
                        self._error = wrapped
                    log.error("%s", self._error)
            finally:
                self._queue.task_done()

    def submit(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        """Queue ``fn(*args, **kwargs)``; blocks while ``max_pending`` writes are already queued.

        Arrays passed in must not be modified afterwards (they are not copied).
        """
        if self._closed:
            raise OutputError("AsyncWriter is closed: no more writes can be queued.")
        if self._error is not None:
            raise self._error
        self._queue.put((fn, args, kwargs))

    def close(self) -> None:
        """Finish every queued write, stop the thread, re-raise the first error."""
        if not self._closed:
            self._closed = True
            self._queue.put(_STOP)
            self._thread.join()
        if self._error is not None:
            raise self._error

    def __enter__(self) -> AsyncWriter:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc_type is None:
            self.close()
            return
        try:
            self.close()
        except OSVOSError as writer_error:
            if writer_error is not exc:
                log.error("a matte write also failed: %s", writer_error)
