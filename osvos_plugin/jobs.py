"""What a long job (plate check, fine-tuning, self-training, inference, parent training) reports and obeys.

A job calls a ``ProgressFn`` with the contract's progress record after each step or frame, and checks a
``CancelFlag`` between them, raising ``Cancelled``: that is all a host needs to show a bar and stop a
render. Kept apart from the training loop, since inference and the render pipeline need them too.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from osvos_contract.protocol import Progress

from .errors import Cancelled

ProgressFn = Callable[[Progress], None]
CancelFlag = threading.Event | Callable[[], bool] | None

__all__ = ["CancelFlag", "Cancelled", "Progress", "ProgressFn", "is_cancelled"]


def is_cancelled(cancel: CancelFlag) -> bool:
    if cancel is None:
        return False
    if isinstance(cancel, threading.Event):
        return cancel.is_set()
    return bool(cancel())
