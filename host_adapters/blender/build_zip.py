"""Builds the installable add-on zip: this folder's add-on modules, the shared ones, and plugin.json.

Usage (any Python 3.9+, Blender not needed): ``python host_adapters/blender/build_zip.py [OUT.zip]``
(default ``dist/osvos_matte-<version>.zip``). The zip holds one top-level folder ``osvos_matte/`` with
both ``bl_info`` and ``blender_manifest.toml``, so it installs through Preferences > Add-ons > Install
from Disk in Blender 4.2 and later (as an extension) and as a legacy add-on in older versions.

The modules shared with the Nuke adapter (``host_adapters/common/*.py``) are copied in beside the add-on's
own, so the installed add-on imports them as its submodules (``from .osvos_manifest import ...``), and the
repository's plugin.json beside them, where osvos_manifest looks first.
"""

from __future__ import annotations

import argparse
import re
import sys
import zipfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
COMMON = HERE.parent / "common"
PACKAGE = "osvos_matte"
EXCLUDE = {"build_zip.py", "README.md"}


def addon_files() -> list[Path]:
    """The add-on's own files, then the shared modules (a name in both would be an error)."""
    own = sorted(p for p in HERE.iterdir()
                 if p.is_file() and p.suffix in (".py", ".toml") and p.name not in EXCLUDE)
    shared = sorted(COMMON.glob("*.py"))
    if not shared:
        raise FileNotFoundError(f"the shared adapter modules are missing: no *.py in {COMMON}")
    clash = {p.name for p in own} & {p.name for p in shared}
    if clash:
        raise ValueError(f"{sorted(clash)} in both {HERE} and {COMMON}: keep the shared modules in {COMMON} only")
    return own + shared


def find_plugin_json() -> Path:
    for parent in HERE.parents:
        if (parent / "plugin.json").is_file():
            return parent / "plugin.json"
    raise FileNotFoundError("plugin.json not found above " + str(HERE))


def version() -> str:
    text = (HERE / "blender_manifest.toml").read_text(encoding="utf-8")
    match = re.search(r'^version\s*=\s*"([^"]+)"', text, re.M)
    return match.group(1) if match else "0"


def build(out: Path) -> Path:
    out.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
        for path in addon_files():
            zf.write(path, f"{PACKAGE}/{path.name}")
        zf.write(find_plugin_json(), f"{PACKAGE}/plugin.json")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", nargs="?", type=Path, default=None, help="the zip to write")
    args = parser.parse_args(argv)
    out = args.out or HERE.parents[1] / "dist" / f"{PACKAGE}-{version()}.zip"
    print(build(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
