"""Where the shipped models live, and loading the default parent network."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from .network import OSVOSNet
from .weights import WeightsError, load_checkpoint

PARENT_FILE = "osvos-parent.safetensors"


def model_dirs() -> list[Path]:
    """Search order: ``$OSVOS_MODELS``, the checkout's ``models/``, ``<prefix>/share/osvos-plugin/models``."""
    dirs = []
    if os.environ.get("OSVOS_MODELS"):
        dirs.append(Path(os.environ["OSVOS_MODELS"]))
    dirs.append(Path(__file__).resolve().parents[1] / "models")
    dirs.append(Path(sys.prefix) / "share" / "osvos-plugin" / "models")
    return dirs


def default_parent_path() -> Path:
    """The shipped parent network; a clear error when it is nowhere to be found."""
    for d in model_dirs():
        if (d / PARENT_FILE).is_file():
            return d / PARENT_FILE
    searched = ", ".join(str(d) for d in model_dirs())
    raise WeightsError(
        f"The parent network {PARENT_FILE} was not found (searched {searched}). Restore models/ from the "
        "repository (git lfs is not used: a plain checkout has it), set OSVOS_MODELS, or pass --parent PATH."
    )


def fold_parent_path(fold: str) -> Path:
    """The parent trained without validation fold ``fold`` (``parent.FOLDS``), kept in a checkout's
    ``models/folds/`` so that the model card's held-out figures can be run again; not installed."""
    name = f"folds/fold-{fold}.safetensors"
    for d in model_dirs():
        if (d / name).is_file():
            return d / name
    raise WeightsError(
        f"The fold-{fold} parent {name} was not found under {', '.join(str(d) for d in model_dirs())}: it comes "
        f"with a checkout, or train one with osvos-train-parent --hold-out-fold {fold} --out DIR and pass "
        "DIR/parent.safetensors."
    )


def load_parent(path: str | os.PathLike | None = None) -> OSVOSNet:
    """The parent network from ``path`` or the shipped default."""
    model, _ = load_checkpoint(path or default_parent_path(), expect="osvos-vgg16")
    return model
