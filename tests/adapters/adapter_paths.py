"""Where the adapter tests find things, and how they start Blender (imported by the tests and their conftest;
a plain module, since several conftest.py share that module name)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
NUKE_DIR = REPO / "host_adapters" / "nuke"
BLENDER_DIR = REPO / "host_adapters" / "blender"
CONTRACT_DIR = REPO / "osvos_contract"  # the package the engine and both adapters import, kept once
BLENDER_PYTHON = REPO / ".venv-blender" / "bin" / "python"  # Blender 5.0
# Every Blender release the add-on supports, each as bpy from PyPI in a venv of its own (scripts/blender_setup.sh)
BLENDER_VENVS = {"5.0": REPO / ".venv-blender", "4.5": REPO / ".venv-blender-4.5", "4.2": REPO / ".venv-blender-4.2"}
DEMO_PLATE = REPO / "osvos_plugin" / "demo" / "bear" / "plate"

# The Nuke adapter's pure module (osvos_knobs) is imported by plain name, as Nuke imports it from its plugin
# path; osvos_contract is imported from the repository root, where Nuke's init.py finds it in a checkout.
if str(NUKE_DIR) not in sys.path:
    sys.path.insert(0, str(NUKE_DIR))
if str(REPO) not in sys.path:
    sys.path.append(str(REPO))


def blender_env(user_dir: Path) -> dict[str, str]:
    """Blender's environment for a test: its user folders (add-ons, preferences) in ``user_dir``."""
    env = dict(os.environ)
    env["BLENDER_USER_RESOURCES"] = str(user_dir)
    env.pop("PYTHONPATH", None)
    return env
