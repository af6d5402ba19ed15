"""Thread budgets for the image libraries while the network owns the cores.

On a CPU render torch's intra-op threads already keep every core busy. OpenImageIO, the OpenEXR codec
under it and OpenCV each keep a pool as wide as the machine, so a background read or write would put
three more pools on the same cores. With one thread each a render uses less memory in the same time
(BENCHMARKS.md): on few cores the decode/encode CPU time cannot hide either way.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

import cv2
import OpenImageIO as oiio

log = logging.getLogger(__name__)

__all__ = ["io_thread_budget"]


@contextmanager
def io_thread_budget(threads: int | None) -> Iterator[None]:
    """Within the block, OIIO, OpenEXR and OpenCV use at most ``threads`` threads each (``None``: as they are).

    The previous settings come back on exit. These are process-wide settings: meant for a render, which
    owns its process (``osvos-render`` is what hosts run).
    """
    if threads is None:
        yield
        return
    if threads < 1:
        raise ValueError(f"threads must be at least 1, got {threads}")
    before = (oiio.get_int_attribute("threads"), oiio.get_int_attribute("exr_threads"), cv2.getNumThreads())
    oiio.attribute("threads", threads)
    oiio.attribute("exr_threads", threads)
    cv2.setNumThreads(threads)
    log.debug("image I/O limited to %d thread(s) per call", threads)
    try:
        yield
    finally:
        oiio.attribute("threads", before[0])
        oiio.attribute("exr_threads", before[1])
        cv2.setNumThreads(before[2])
