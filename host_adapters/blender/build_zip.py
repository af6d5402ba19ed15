"""Builds the installable add-on zip: this folder's add-on modules, the osvos_contract package and plugin.json.

Usage (any Python 3.9+, Blender not needed): ``python host_adapters/blender/build_zip.py [OUT.zip]``
(default ``dist/osvos_matte-<version>.zip``). The zip holds one top-level folder ``osvos_matte/`` with
both ``bl_info`` and ``blender_manifest.toml``, so it installs through Preferences > Add-ons > Install
from Disk in Blender 4.2 and later (as an extension) and as a legacy add-on in older versions.

The contract shared with the engine and the Nuke adapter (the repository's ``osvos_contract`` package:
standard library only, relative imports inside) is bundled as the subpackage ``osvos_matte/osvos_contract/``,
so the installed add-on imports it as ``from .osvos_contract.manifest import ...``; plugin.json goes inside
it (``osvos_matte/osvos_contract/plugin.json``, read through the repository's symlink), where the
contract's manifest reader looks first.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import zipfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
CONTRACT = REPO / "osvos_contract"  # the package the engine and both host adapters import
PACKAGE = "osvos_matte"
EXCLUDE = {"build_zip.py", "README.md"}


def addon_files() -> list[Path]:
    """The add-on's own files (the modules, blender_manifest.toml)."""
    own = sorted(p for p in HERE.iterdir()
                 if p.is_file() and p.suffix in (".py", ".toml") and p.name not in EXCLUDE)
    local = HERE / CONTRACT.name
    if (local.exists() and local.resolve() != CONTRACT) or local.with_suffix(".py").exists():
        raise ValueError(f"{local} would hide the bundled contract: keep it in {CONTRACT} only")
    return own


def contract_files() -> list[Path]:
    """The osvos_contract package's modules (any subpackages included, caches left out)."""
    files = sorted(p for p in CONTRACT.rglob("*.py") if "__pycache__" not in p.relative_to(CONTRACT).parts)
    if not (CONTRACT / "__init__.py").is_file():
        raise FileNotFoundError(f"the osvos_contract package is missing: no {CONTRACT / '__init__.py'}")
    return files


def find_plugin_json() -> Path:
    """plugin.json as the contract ships it: ``osvos_contract/plugin.json`` (a symlink to the repository's)."""
    path = CONTRACT / "plugin.json"
    try:
        json.loads(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise FileNotFoundError(f"{path} cannot be read ({e.strerror or e})") from e
    except ValueError as e:
        raise ValueError(f"{path} is not the manifest ({e}); a symlink checked out as a plain file? "
                         "Clone with symlinks enabled (git config core.symlinks true)") from e
    return path


def version() -> str:
    text = (HERE / "blender_manifest.toml").read_text(encoding="utf-8")
    match = re.search(r'^version\s*=\s*"([^"]+)"', text, re.M)
    return match.group(1) if match else "0"


def build(out: Path) -> Path:
    out.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
        for path in addon_files():
            zf.write(path, f"{PACKAGE}/{path.name}")
        for path in contract_files():
            zf.write(path, f"{PACKAGE}/{CONTRACT.name}/{path.relative_to(CONTRACT).as_posix()}")
        zf.write(find_plugin_json(), f"{PACKAGE}/{CONTRACT.name}/plugin.json")  # the target's bytes
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", nargs="?", type=Path, default=None, help="the zip to write")
    args = parser.parse_args(argv)
    out = args.out or REPO / "dist" / f"{PACKAGE}-{version()}.zip"
    print(build(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
