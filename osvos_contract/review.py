"""Where a render's "frames to check" report lies, and its one-line summary, for hosts and farms.

The engine (``osvos_plugin.review``) writes the report; hosts only read its summary, so this part needs
the standard library alone.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from .patterns import split_token, without_object_token

REVIEW_SUFFIX = ".osvos-review.json"


def review_path(pattern: str | os.PathLike) -> Path:
    """``<folder>/matte.osvos-review.json`` for ``<folder>/matte.####.exr`` (or ``matte.{object}.####.png``)."""
    path = Path(without_object_token(pattern))
    token = split_token(path)
    stem = (token.before if token is not None else path.stem).rstrip("._- ") or "matte"
    return path.parent / f"{stem}{REVIEW_SUFFIX}"


def review_summary(pattern: str | os.PathLike) -> str:
    """The report's sentence (``check frames 1040-1052: ...``); "" when nothing is flagged or there is no
    readable report beside the mattes of ``pattern``."""
    try:
        data = json.loads(review_path(pattern).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return ""
    summary = data.get("summary") if isinstance(data, dict) else None
    return summary if isinstance(summary, str) else ""
