"""The node's manifest (plugin.json): inputs, outputs and every parameter with default, range and help.

The CLI and every host adapter build their controls from it; nothing else repeats the defaults.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

MANIFEST_PATH = Path(__file__).with_name("plugin.json")
TYPES = {"int": int, "float": float, "bool": bool, "string": str, "choice": str}


@dataclass(frozen=True)
class Parameter:
    name: str
    label: str
    type: str
    default: Any
    help: str
    group: str = ""
    min: float | None = None
    max: float | None = None
    choices: tuple[str, ...] = ()

    @property
    def flag(self) -> str:
        """The command-line flag: ``--process-size`` for ``process_size``."""
        return "--" + self.name.replace("_", "-")

    def validate(self, value: Any) -> Any:
        """The value converted to the parameter's type, or ValueError naming the parameter and its range."""
        if value is None:
            if self.default is None:
                return None
            raise ValueError(f"{self.name}: a value is required")
        if self.type == "bool":
            if isinstance(value, str):
                if value.lower() not in ("1", "0", "true", "false", "yes", "no", "on", "off"):
                    raise ValueError(f"{self.name}: expected a boolean, got {value!r}")
                value = value.lower() in ("1", "true", "yes", "on")
            return bool(value)
        try:
            value = TYPES[self.type](value)
        except (TypeError, ValueError):
            raise ValueError(f"{self.name}: expected {self.type}, got {value!r}") from None
        if self.choices and value not in self.choices:
            raise ValueError(f"{self.name}: {value!r} is not one of {', '.join(self.choices)}")
        if self.min is not None and value < self.min or self.max is not None and value > self.max:
            raise ValueError(f"{self.name}: {value} is outside [{self.min}, {self.max}]")
        return value


@dataclass(frozen=True)
class Manifest:
    id: str
    label: str
    version: str
    description: str
    inputs: tuple[dict, ...]
    outputs: tuple[dict, ...]
    parameters: tuple[Parameter, ...]

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


@functools.cache
def load_manifest(path: str | None = None) -> Manifest:
    data = json.loads(Path(path or MANIFEST_PATH).read_text())
    params = tuple(
        Parameter(
            name=p["name"], label=p.get("label", p["name"]), type=p["type"], default=p.get("default"),
            help=p.get("help", ""), group=p.get("group", ""), min=p.get("min"), max=p.get("max"),
            choices=tuple(p.get("choices", ())),
        )
        for p in data["parameters"]
    )
    for p in params:
        if p.type not in TYPES:
            raise ValueError(f"plugin.json: parameter {p.name} has unknown type {p.type!r}")
        if p.default is not None:
            p.validate(p.default)
    return Manifest(
        id=data["id"], label=data["label"], version=data["version"], description=data.get("description", ""),
        inputs=tuple(data["inputs"]), outputs=tuple(data["outputs"]), parameters=params,
    )
