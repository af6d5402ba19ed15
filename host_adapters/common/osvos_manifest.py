"""plugin.json read by a host adapter, without the engine: the node's controls come from it, never from here.

Pure Python (3.9 and later, no bpy, no nuke, no engine import): Blender and Nuke run Python builds of
their own that cannot import the engine (numpy and torch versions clash), so the adapters drive
``osvos-render`` out of process and read the manifest themselves.

It lives once, in host_adapters/common, for both adapters: Blender's build_zip.py bundles it into the add-on
(a submodule of the add-on package), Nuke's init.py adds this folder to the plugin path.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

MANIFEST_FILE = "plugin.json"
MANIFEST_ENV = "OSVOS_PLUGIN_JSON"  # an explicit manifest path wins over every other place
PARAMETER_TYPES = ("int", "float", "bool", "string", "choice")


class ManifestError(Exception):
    """plugin.json is missing or malformed; the message says where it was looked for."""


@dataclass(frozen=True)
class Parameter:
    """One node parameter as plugin.json describes it."""

    name: str
    label: str
    type: str
    default: Any
    help: str = ""
    group: str = ""
    min: float | None = None
    max: float | None = None
    choices: tuple[str, ...] = ()

    @property
    def flag(self) -> str:
        """The osvos-render flag: ``--process-size`` for ``process_size``."""
        return "--" + self.name.replace("_", "-")

    @property
    def optional(self) -> bool:
        """No default: the engine decides unless the user sets a value (e.g. the mask frame)."""
        return self.default is None

    def cli_args(self, value: Any) -> list[str]:
        """The command-line words for ``value``: none for None, ``--x``/``--no-x`` for booleans."""
        if value is None:
            return []
        if self.type == "bool":
            return [self.flag if value else "--no-" + self.flag[2:]]
        if self.type == "float":  # 7 significant digits: a 32-bit host float without its noise
            return [self.flag, format(float(value), ".7g")]
        if self.type == "int":
            return [self.flag, str(int(value))]
        return [self.flag, str(value)]


@dataclass(frozen=True)
class Manifest:
    id: str
    label: str
    version: str
    description: str
    inputs: tuple[dict, ...]
    outputs: tuple[dict, ...]
    parameters: tuple[Parameter, ...]
    path: str = ""

    def parameter(self, name: str) -> Parameter:
        for p in self.parameters:
            if p.name == name:
                return p
        raise KeyError(name)

    def groups(self) -> list[tuple[str, list[Parameter]]]:
        """Parameters by group, groups in the order they first appear (the panel/tab layout)."""
        out: dict[str, list[Parameter]] = {}
        for p in self.parameters:
            out.setdefault(p.group or "Parameters", []).append(p)
        return list(out.items())


def manifest_candidates(start: str | os.PathLike | None = None) -> list[Path]:
    """Where plugin.json is looked for: $OSVOS_PLUGIN_JSON, next to this module (installed add-on or
    plugin folder), then the folders above it (a checkout of the repository)."""
    here = Path(start) if start is not None else Path(__file__).resolve().parent
    found = [Path(os.environ[MANIFEST_ENV])] if os.environ.get(MANIFEST_ENV) else []
    found.append(here / MANIFEST_FILE)
    found += [parent / MANIFEST_FILE for parent in list(here.parents)[:3]]
    return found


def find_manifest(start: str | os.PathLike | None = None) -> Path:
    candidates = manifest_candidates(start)
    for path in candidates:
        if path.is_file():
            return path
    raise ManifestError(
        "plugin.json not found (looked in " + ", ".join(str(p) for p in candidates) + "); set "
        f"{MANIFEST_ENV} to its path or reinstall the adapter with plugin.json beside it."
    )


def parse_manifest(data: dict, path: str = "") -> Manifest:
    """A Manifest from plugin.json's decoded JSON, checked enough for an adapter to build controls."""
    where = path or MANIFEST_FILE
    try:
        params = []
        for p in data["parameters"]:
            ptype = p["type"]
            if ptype not in PARAMETER_TYPES:
                raise ManifestError(f"{where}: parameter {p['name']} has unknown type {ptype!r}")
            choices = tuple(p.get("choices", ()))
            if ptype == "choice" and p.get("default") not in choices:
                raise ManifestError(f"{where}: parameter {p['name']}: default is not one of its choices")
            params.append(Parameter(
                name=p["name"], label=p.get("label", p["name"]), type=ptype, default=p.get("default"),
                help=p.get("help", ""), group=p.get("group", ""), min=p.get("min"), max=p.get("max"),
                choices=choices,
            ))
        return Manifest(
            id=data["id"], label=data["label"], version=data["version"],
            description=data.get("description", ""), inputs=tuple(data.get("inputs", ())),
            outputs=tuple(data.get("outputs", ())), parameters=tuple(params), path=path,
        )
    except (KeyError, TypeError) as e:
        raise ManifestError(f"{where}: malformed manifest ({e!r} missing or of the wrong type)") from e


def load_manifest(path: str | os.PathLike | None = None) -> Manifest:
    """plugin.json from ``path``, or from the first place :func:`manifest_candidates` lists."""
    path = Path(path) if path is not None else find_manifest()
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise ManifestError(f"{path}: cannot be read ({e.strerror or e})") from e
    except ValueError as e:
        raise ManifestError(f"{path}: not valid JSON ({e})") from e
    return parse_manifest(data, str(path))
