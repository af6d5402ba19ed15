"""Builds the installable add-on zip: this folder's add-on modules plus the repository's plugin.json.

Usage (any Python 3.9+, Blender not needed): ``python host_adapters/blender/build_zip.py [OUT.zip]``
(default ``dist/osvos_matte-<version>.zip``). The zip holds one top-level folder ``osvos_matte/`` with
both ``bl_info`` and ``blender_manifest.toml``, so it installs through Preferences > Add-ons > Install
from Disk in Blender 4.2 and later (as an extension) and as a legacy add-on in older versions.
"""

from __future__ import annotations

import argparse
import re
import sys
import zipfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
PACKAGE = "osvos_matte"
EXCLUDE = {"build_zip.py", "README.md"}


def addon_files() -> list[Path]:
    return sorted(p for p in HERE.iterdir()
                  if p.is_file() and p.suffix in (".py", ".toml") and p.name not in EXCLUDE)


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
