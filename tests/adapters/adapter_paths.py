"""Where the adapter tests find things, and how they start Blender (imported by the tests and their conftest;
a plain module, since several conftest.py share that module name)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
NUKE_DIR = REPO / "host_adapters" / "nuke"
BLENDER_DIR = REPO / "host_adapters" / "blender"
COMMON_DIR = REPO / "host_adapters" / "common"  # the modules both adapters share, kept once
BLENDER_PYTHON = REPO / ".venv-blender" / "bin" / "python"
DEMO_PLATE = REPO / "osvos_plugin" / "demo" / "bear" / "plate"

# The adapters' pure modules import each other by plain name, as Nuke imports them from its plugin path
# (its init.py adds both folders).
for _folder in (NUKE_DIR, COMMON_DIR):
    if str(_folder) not in sys.path:
        sys.path.insert(0, str(_folder))


def blender_env(user_dir: Path) -> dict[str, str]:
    """Blender's environment for a test: its user folders (add-ons, preferences) in ``user_dir``."""
    env = dict(os.environ)
    env["BLENDER_USER_RESOURCES"] = str(user_dir)
    env.pop("PYTHONPATH", None)
    return env
