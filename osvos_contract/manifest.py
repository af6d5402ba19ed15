"""The node's manifest (plugin.json): inputs, outputs and every parameter with default, range and help.

The engine's CLI and every host adapter build their controls from it, through this one reader; nothing
else repeats a default. It looks for plugin.json in ``$OSVOS_PLUGIN_JSON``, inside this package (where
the wheel, the Blender add-on and a Nuke install put it), then in the folders above (a checkout).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

MANIFEST_FILE = "plugin.json"
MANIFEST_ENV = "OSVOS_PLUGIN_JSON"  # an explicit manifest path wins over every other place
MANIFEST_PATH = Path(__file__).resolve().parent / MANIFEST_FILE  # the one shipped inside this package
TYPES = {"int": int, "float": float, "bool": bool, "string": str, "choice": str}
_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")


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

    def validate(self, value: Any) -> Any:
        """The value converted to the parameter's type, or ValueError naming the parameter and its range."""
        if value is None:
            if self.default is None:
                return None
            raise ValueError(f"{self.name}: a value is required")
        if self.type == "bool":
            if isinstance(value, str):
                if value.lower() not in _TRUE + _FALSE:
                    raise ValueError(f"{self.name}: expected a boolean, got {value!r}")
                value = value.lower() in _TRUE
            return bool(value)
        if self.type == "int" and isinstance(value, float) and not value.is_integer():
            raise ValueError(f"{self.name}: expected a whole number, got {value!r}")
        try:
            value = TYPES[self.type](value)
        except (TypeError, ValueError):
            raise ValueError(f"{self.name}: expected {self.type}, got {value!r}") from None
        if self.choices and value not in self.choices:
            raise ValueError(f"{self.name}: {value!r} is not one of {', '.join(self.choices)}")
        if self.min is not None and value < self.min or self.max is not None and value > self.max:
            raise ValueError(f"{self.name}: {value} is outside [{self.min}, {self.max}]")
        return value

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

    def defaults(self) -> dict[str, Any]:
        return {p.name: p.default for p in self.parameters}

    def resolve(self, values: dict[str, Any] | None = None) -> dict[str, Any]:
        """Defaults overlaid with ``values``, each validated; unknown names are an error."""
        values = dict(values or {})
        unknown = sorted(set(values) - {p.name for p in self.parameters})
        if unknown:
            raise ValueError(f"unknown parameters: {', '.join(unknown)}")
        return {p.name: p.validate(values.get(p.name, p.default)) for p in self.parameters}

    def groups(self) -> list[tuple[str, list[Parameter]]]:
        """Parameters by group, groups in the order they first appear (the panel/tab layout)."""
        out: dict[str, list[Parameter]] = {}
        for p in self.parameters:
            out.setdefault(p.group or "Parameters", []).append(p)
        return list(out.items())


def manifest_candidates(start: str | os.PathLike | None = None) -> list[Path]:
    """Where plugin.json is looked for: $OSVOS_PLUGIN_JSON, beside this package (or ``start``), then the
    folders above it (a checkout of the repository)."""
    here = Path(start) if start is not None else Path(__file__).resolve().parent
    found = [Path(os.environ[MANIFEST_ENV])] if os.environ.get(MANIFEST_ENV) else []
    found.append(here / MANIFEST_FILE)
    found += [parent / MANIFEST_FILE for parent in list(here.parents)[:3]]
    return found


def find_manifest(start: str | os.PathLike | None = None) -> Path:
    candidates = manifest_candidates(start)
    for path in candidates:
        if path.is_file() and not _link_stub(path):
            return path
    raise ManifestError(
        "plugin.json not found (looked in " + ", ".join(str(p) for p in candidates) + "); set "
        f"{MANIFEST_ENV} to its path or reinstall the adapter with plugin.json beside it."
    )


def _link_stub(path: Path) -> bool:
    """A git symlink checked out as a plain file (Windows, zip downloads): a few bytes naming its target."""
    try:
        return path.stat().st_size < 256 and not path.read_bytes().lstrip().startswith(b"{")
    except OSError:
        return False


def parse_manifest(data: dict, path: str = "") -> Manifest:
    """A Manifest from plugin.json's decoded JSON: every type known, every default valid."""
    where = path or MANIFEST_FILE
    try:
        params = []
        for p in data["parameters"]:
            ptype = p["type"]
            if ptype not in TYPES:
                raise ManifestError(f"{where}: parameter {p['name']} has unknown type {ptype!r}")
            choices = tuple(p.get("choices", ()))
            if ptype == "choice" and p.get("default") not in choices:
                raise ManifestError(f"{where}: parameter {p['name']}: default is not one of its choices")
            param = Parameter(
                name=p["name"], label=p.get("label", p["name"]), type=ptype, default=p.get("default"),
                help=p.get("help", ""), group=p.get("group", ""), min=p.get("min"), max=p.get("max"),
                choices=choices,
            )
            if param.default is not None:
                try:
                    param.validate(param.default)
                except ValueError as e:
                    raise ManifestError(f"{where}: invalid default: {e}") from None
            params.append(param)
        return Manifest(
            id=data["id"], label=data["label"], version=data["version"],
            description=data.get("description", ""), inputs=tuple(data.get("inputs", ())),
            outputs=tuple(data.get("outputs", ())), parameters=tuple(params), path=path,
        )
    except (KeyError, TypeError) as e:
        raise ManifestError(f"{where}: malformed manifest ({e!r} missing or of the wrong type)") from e


_cache: dict[tuple[str, int, int], Manifest] = {}


def load_manifest(path: str | os.PathLike | None = None) -> Manifest:
    """plugin.json from ``path``, or from the first place :func:`manifest_candidates` lists.

    Read once per file version (path and modification time), so a host can call this from its redraw
    and still sees an edited manifest."""
    path = Path(path) if path is not None else find_manifest()
    try:
        st = path.stat()
        key = (str(path.resolve()), st.st_mtime_ns, st.st_size)
        if key in _cache:
            return _cache[key]
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise ManifestError(f"{path}: cannot be read ({e.strerror or e})") from e
    except ValueError as e:
        raise ManifestError(f"{path}: not valid JSON ({e})") from e
    manifest = _cache[key] = parse_manifest(data, str(path))
    return manifest


def default(name: str) -> Any:
    """The manifest default of one parameter: what library config dataclasses take as theirs."""
    return load_manifest().parameter(name).default
