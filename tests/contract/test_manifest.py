"""osvos_contract.manifest: the one plugin.json reader of the engine and both host adapters."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from osvos_contract import manifest as mf
from osvos_contract.manifest import (
    MANIFEST_ENV,
    MANIFEST_PATH,
    ManifestError,
    Parameter,
    find_manifest,
    load_manifest,
    manifest_candidates,
    parse_manifest,
)

REPO = Path(__file__).resolve().parents[2]
REPO_JSON = REPO / "plugin.json"


@pytest.fixture(autouse=True)
def _no_manifest_override(monkeypatch):
    monkeypatch.delenv(MANIFEST_ENV, raising=False)


@pytest.fixture
def data() -> dict:
    return json.loads(REPO_JSON.read_text())


def _write(path: Path, data: dict) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))
    return path


def test_the_manifest_beside_the_package_is_the_repositorys():
    assert MANIFEST_PATH == REPO / "osvos_contract" / "plugin.json"
    assert MANIFEST_PATH.resolve() == REPO_JSON.resolve()
    assert MANIFEST_PATH.read_bytes() == REPO_JSON.read_bytes()
    m = load_manifest()
    assert Path(m.path).resolve() == REPO_JSON.resolve() and m.id and m.label == "OSVOS"
    assert [i["name"] for i in m.inputs] == ["Source", "Mask"] and [o["name"] for o in m.outputs] == ["Matte"]
    assert [g for g, _ in m.groups()] == ["Input", "Learning", "Quality", "Output", "Edges", "Performance"]
    assert m.parameter("mask_frame").optional and not m.parameter("iterations").optional
    assert mf.default("iterations") == m.parameter("iterations").default == m.defaults()["iterations"]
    with pytest.raises(KeyError):
        m.parameter("nope")


def test_found_through_env_then_beside_the_package_then_the_folders_above(tmp_path, monkeypatch, data):
    start = tmp_path / "a" / "b" / "c" / "d" / "e"
    start.mkdir(parents=True)
    assert manifest_candidates(start) == [start / "plugin.json"] + [
        start.parents[i] / "plugin.json" for i in range(3)]
    with pytest.raises(ManifestError, match="plugin.json not found") as error:
        find_manifest(start)
    assert MANIFEST_ENV in str(error.value) and str(start / "plugin.json") in str(error.value)
    _write(start.parents[2] / "plugin.json", data)  # three folders up: the last place looked at
    assert find_manifest(start) == start.parents[2] / "plugin.json"
    _write(start.parents[0] / "plugin.json", data)
    assert find_manifest(start) == start.parents[0] / "plugin.json"
    _write(start / "plugin.json", data)
    assert find_manifest(start) == start / "plugin.json"
    custom = _write(tmp_path / "custom.json", {**data, "label": "Custom"})
    monkeypatch.setenv(MANIFEST_ENV, str(custom))
    assert manifest_candidates(start)[0] == custom and find_manifest(start) == custom
    assert load_manifest().label == "Custom" and load_manifest().path == str(custom)
    monkeypatch.setenv(MANIFEST_ENV, str(tmp_path / "missing.json"))  # a wrong override: the next place
    assert find_manifest(start) == start / "plugin.json"


def test_an_edited_manifest_is_read_again(tmp_path, data):
    path = _write(tmp_path / "plugin.json", data)
    first = load_manifest(path)
    assert load_manifest(path) is first  # read once per file version
    _write(path, {**data, "label": "Edited"})
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 1_000_000))
    assert load_manifest(path).label == "Edited"


def _set(data: dict, name: str, **changes) -> None:
    next(p for p in data["parameters"] if p["name"] == name).update(changes)


@pytest.mark.parametrize("edit, message", [
    (lambda d: _set(d, "iterations", type="integer"), "unknown type 'integer'"),
    (lambda d: d.pop("parameters"), "malformed manifest"),
    (lambda d: d.pop("version"), "malformed manifest"),
    (lambda d: d["parameters"][0].pop("name"), "malformed manifest"),
    (lambda d: _set(d, "optimizer", default="rmsprop"), "default is not one of its choices"),
    (lambda d: _set(d, "iterations", default=99999), "invalid default: iterations: 99999 is outside"),
    (lambda d: _set(d, "soft_matte", default="maybe"), "invalid default: soft_matte: expected a boolean"),
])
def test_a_malformed_manifest_is_reported_with_its_path(tmp_path, data, edit, message):
    edit(data)
    path = _write(tmp_path / "plugin.json", data)
    with pytest.raises(ManifestError, match=message) as error:
        load_manifest(path)
    assert str(path) in str(error.value)


def test_unreadable_and_invalid_json(tmp_path):
    path = tmp_path / "plugin.json"
    path.write_text("{not json")
    with pytest.raises(ManifestError, match="not valid JSON"):
        load_manifest(path)
    with pytest.raises(ManifestError, match="cannot be read"):
        load_manifest(tmp_path / "missing.json")
    with pytest.raises(ManifestError, match="plugin.json: malformed"):
        parse_manifest({})  # no path: named by its file name


def test_parse_fills_optional_fields():
    m = parse_manifest({"id": "x", "label": "X", "version": "1", "parameters": [
        {"name": "edge_width", "type": "float", "default": 0.5}]}, "mem.json")
    p = m.parameter("edge_width")
    assert (p.label, p.help, p.group, p.min, p.max, p.choices) == ("edge_width", "", "", None, None, ())
    assert (m.description, m.inputs, m.outputs, m.path) == ("", (), (), "mem.json")
    assert m.groups() == [("Parameters", [p])]


def _param(**kw) -> Parameter:
    base = {"name": "process_size", "label": "Process Size", "type": "int", "default": 480}
    return Parameter(**{**base, **kw})


def test_flag_and_command_line_words():
    assert _param().flag == "--process-size"
    assert _param().cli_args(320) == ["--process-size", "320"] and _param().cli_args(None) == []
    assert _param().cli_args(320.0) == ["--process-size", "320"]
    soft = _param(name="soft_matte", type="bool", default=False)
    assert soft.cli_args(True) == ["--soft-matte"] and soft.cli_args(False) == ["--no-soft-matte"]
    lr = _param(name="learning_rate", type="float", default=1e-4)
    assert lr.cli_args(float.fromhex("0x1.a36e2ep-14")) == ["--learning-rate", "0.0001"]  # a float32 host value
    assert lr.cli_args(0.30000001192) == ["--learning-rate", "0.3"]
    frames = _param(name="frames", type="string", default="")
    assert frames.cli_args("1001-1010x2") == ["--frames", "1001-1010x2"]
    assert _param(default=None).optional and not _param().optional


def test_validate_converts_and_checks_ranges_and_choices():
    p = _param(min=64, max=4096)
    assert p.validate("320") == 320 and p.validate(64) == 64
    for bad, message in ((10, "outside"), ("big", "expected int"), (None, "a value is required")):
        with pytest.raises(ValueError, match=message):
            p.validate(bad)
    assert _param(default=None).validate(None) is None
    flag = _param(name="soft_matte", type="bool", default=False)
    assert flag.validate("on") is True and flag.validate("No") is False and flag.validate(1) is True
    with pytest.raises(ValueError, match="expected a boolean"):
        flag.validate("perhaps")
    choice = _param(name="device", type="choice", default="auto", choices=("auto", "cpu"))
    assert choice.validate("cpu") == "cpu"
    with pytest.raises(ValueError, match="'tpu' is not one of auto, cpu"):
        choice.validate("tpu")


def test_resolve_overlays_validated_values_on_the_defaults():
    m = load_manifest()
    resolved = m.resolve({"iterations": "50", "soft_matte": "on"})
    assert resolved == {**m.defaults(), "iterations": 50, "soft_matte": True}
    assert m.resolve() == m.defaults()
    with pytest.raises(ValueError, match="threshold"):
        m.resolve({"threshold": 1.5})
    with pytest.raises(ValueError, match="unknown parameters: colour, nope"):
        m.resolve({"nope": 1, "colour": 2})


def test_every_parameter_of_the_shipped_manifest_is_usable():
    m = load_manifest()
    assert len({p.name for p in m.parameters}) == len(m.parameters)
    for p in m.parameters:
        assert p.help and p.label and p.group and p.flag.startswith("--")
        if not p.optional:
            assert p.validate(p.default) == p.default
            p.cli_args(p.default)


def test_an_int_parameter_refuses_a_fraction_rather_than_truncating_it():
    from osvos_contract.manifest import load_manifest

    p = load_manifest().parameter("iterations")
    assert p.validate(300.0) == 300 and p.validate("12") == 12
    with pytest.raises(ValueError, match="iterations: expected a whole number, got 2.9"):
        p.validate(2.9)
