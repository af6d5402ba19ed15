"""The Nuke adapter without Nuke: the knobs generated from plugin.json, knob values back to osvos-render's
command line (checked by the engine's own parser), and the knob names the nuke-side module relies on."""

from __future__ import annotations

import ast
import json
import re
import runpy
import shutil
import subprocess
import sys
import types
from pathlib import Path

import osvos_knobs
import pytest
from adapter_paths import CONTRACT_DIR, NUKE_DIR, REPO

import osvos_contract.process as rp
from osvos_contract.manifest import load_manifest
from osvos_plugin.cli import render as render_cli


@pytest.fixture(scope="module")
def manifest():
    return load_manifest()


@pytest.fixture(scope="module")
def knobs(manifest):
    return osvos_knobs.node_knobs(manifest)


def test_every_parameter_gets_a_knob_with_its_manifest_settings(manifest, knobs):
    by_param = {k.parameter: k for k in knobs if k.parameter}
    expected = [p.name for p in manifest.parameters if p.name not in osvos_knobs.FIXED_VALUES]
    assert list(by_param) == expected
    for p in manifest.parameters:
        if p.name in osvos_knobs.FIXED_VALUES:
            continue
        k = by_param[p.name]
        assert k.kind == osvos_knobs.KNOB_CLASSES[p.type] and k.label == p.label and k.tooltip == p.help
        if p.default is not None:
            assert k.value == p.default
        if p.min is not None and p.max is not None:
            assert k.range == (p.min, p.max)
        assert k.choices == p.choices
    assert by_param["optimizer"].kind == "Enumeration_Knob" and by_param["optimizer"].choices == ("adam", "sgd")
    assert "LOG_SLIDER" in by_param["learning_rate"].flags  # 1e-7..0.1 on a linear slider is unusable
    assert "LOG_SLIDER" not in by_param["threshold"].flags


def test_optional_parameter_gets_a_toggle_before_its_knob(knobs):
    names = [k.name for k in knobs]
    i = names.index("mask_frame")
    toggle = knobs[i - 1]
    assert toggle.name == "use_mask_frame" and toggle.kind == "Boolean_Knob" and toggle.value is False
    assert knobs[i].kind == "Int_Knob" and knobs[i].value == 0


def test_knob_layout_has_inputs_help_render_button_and_groups(manifest, knobs):
    names = [k.name for k in knobs]
    assert len(names) == len(set(names)), "knob names must be unique on a node"
    assert names[0] == "osvos" and knobs[0].kind == "Tab_Knob"
    render = next(k for k in knobs if k.name == "render")
    assert render.kind == "PyScript_Knob" and "osvos_nuke.render(nuke.thisNode())" in render.script
    inputs_help = next(k for k in knobs if k.name == "inputs_help").value
    assert "Source:" in inputs_help and "Mask:" in inputs_help
    group_labels = [k.label for k in knobs if k.name.startswith("group_")]
    assert group_labels == [g for g, _ in manifest.groups()]
    assert all(re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", n) for n in names)  # valid Nuke knob names


def _default_knob_values(knobs) -> dict:
    """What the knobs return in Nuke right after the node is made (Enumeration knobs give the label)."""
    return {k.name: k.value for k in knobs if k.kind not in ("Tab_Knob", "PyScript_Knob", "Text_Knob")}


def test_untouched_knobs_give_a_command_line_of_engine_defaults(manifest, knobs):
    values = osvos_knobs.parameter_values(_default_knob_values(knobs), manifest)
    cmd = rp.build_command("osvos-render", "/p/plate.####.exr", "/o/m.%04d.exr", parameters=manifest.parameters,
                           values=values, mask="/m.exr", mask_frame=1001)
    assert cmd == ["osvos-render", "/p/plate.####.exr", "--mask", "/m.exr", "--output", "/o/m.%04d.exr",
                   "--mask-frame", "1001", "--progress", "json"]


def test_changed_knobs_reach_the_engine(manifest, knobs):
    values = _default_knob_values(knobs)
    values.update({"iterations": 250.0, "learning_rate": 0.001, "optimizer": 1, "soft_matte": True,
                   "frames": "1001-1020", "process_size": 320, "precision": "fp32", "use_mask_frame": True,
                   "mask_frame": 1010})
    params = osvos_knobs.parameter_values(values, manifest)
    assert "mask_frame" not in params  # the adapter passes the mask frame itself
    assert params["optimizer"] == "sgd" and params["iterations"] == 250 and params["output_format"] == "exr"
    cmd = rp.build_command(["osvos-render"], "/p/plate.%04d.exr", "/o/m.%04d.exr", parameters=manifest.parameters,
                           values=params, mask="/m.exr", mask_frame=1010)
    args = render_cli.build_parser().parse_args(cmd[1:])
    job = render_cli.job_from_args(args)
    assert job.params == {"iterations": 250, "learning_rate": 0.001, "optimizer": "sgd", "soft_matte": True,
                          "frames": "1001-1020", "process_size": 320, "precision": "fp32", "mask_frame": 1010}


def test_optional_parameter_ignored_while_its_toggle_is_off(manifest):
    values = osvos_knobs.parameter_values({"mask_frame": 1010, "use_mask_frame": False}, manifest, skip=())
    assert "mask_frame" not in values
    values = osvos_knobs.parameter_values({"mask_frame": 1010, "use_mask_frame": True}, manifest, skip=())
    assert values["mask_frame"] == 1010


def _knob_names_used(path) -> set[str]:
    """Every ``node["name"]`` / ``group["name"]`` subscript with a literal key in a module."""
    tree = ast.parse(path.read_text())
    used = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Subscript) and isinstance(node.value, ast.Name) and node.value.id == "group":
            if isinstance(node.slice, ast.Constant) and isinstance(node.slice.value, str):
                used.add(node.slice.value)
    return used


def test_nuke_module_only_reads_knobs_the_node_has(knobs):
    used = _knob_names_used(NUKE_DIR / "osvos_nuke.py")
    assert {"engine", "parent", "save_model", "output_file", "status"} <= used
    assert used <= {k.name for k in knobs}


def test_nuke_plugin_files_are_there_and_do_not_import_the_engine():
    for name in ("init.py", "menu.py", "osvos_nuke.py", "osvos_knobs.py"):
        text = (NUKE_DIR / name).read_text()
        assert "osvos_plugin" not in text and "import torch" not in text
    assert "osvos_nuke.create_node()" in (NUKE_DIR / "menu.py").read_text()
    assert "import nuke" not in (NUKE_DIR / "osvos_knobs.py").read_text()


def _run_init_py(monkeypatch, init_py) -> tuple[list[str], list[str]]:
    """Runs a Nuke init.py in this process against a stand-in ``nuke`` module: the folders it adds to the
    plugin path, what it printed."""
    added, printed = [], []
    fake = types.ModuleType("nuke")
    fake.pluginAddPath = added.append
    fake.tprint = printed.append
    monkeypatch.setitem(sys.modules, "nuke", fake)
    runpy.run_path(str(init_py))
    return added, printed


def test_init_py_finds_plugin_json_and_adds_nothing_to_the_plugin_path(monkeypatch):
    path_before = list(sys.path)
    added, printed = _run_init_py(monkeypatch, NUKE_DIR / "init.py")
    assert added == []  # its own folder is on the path already (it would run twice), osvos_contract never
    assert printed == []  # osvos_contract importable already (here: the repository root) and plugin.json found
    assert sys.path == path_before


# Runs init.py the way a fresh Nuke would: no site-packages (so no engine install that makes osvos_contract
# importable), a stand-in nuke module; prints what happened as JSON.
INIT_IN_BARE_PYTHON = """
import json, runpy, sys, types
init_py = sys.argv[1]
added, printed = [], []
nuke = types.ModuleType("nuke")
nuke.pluginAddPath = added.append
nuke.tprint = printed.append
sys.modules["nuke"] = nuke
before = list(sys.path)
runpy.run_path(init_py)
contract = sys.modules.get("osvos_contract")
print("RESULT " + json.dumps({"added": added, "printed": printed,
                              "sys_path_added": [p for p in sys.path if p not in before],
                              "contract": getattr(contract, "__file__", None)}))
"""


def _run_init_py_bare(init_py: Path, tmp_path: Path) -> dict:
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}  # no PYTHONPATH, no OSVOS_PLUGIN_JSON
    proc = subprocess.run([sys.executable, "-I", "-S", "-c", INIT_IN_BARE_PYTHON, str(init_py)],
                          capture_output=True, text=True, timeout=60, env=env, cwd=tmp_path)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    assert proc.returncode == 0 and lines, proc.stdout + proc.stderr
    return json.loads(lines[-1][len("RESULT "):])


def test_init_py_in_a_checkout_puts_the_repository_root_on_sys_path(tmp_path):
    found = _run_init_py_bare(NUKE_DIR / "init.py", tmp_path)
    assert found["added"] == []
    assert [Path(p).resolve() for p in found["sys_path_added"]] == [REPO]
    assert Path(found["contract"]).resolve() == CONTRACT_DIR / "__init__.py"
    assert found["printed"] == []


def test_init_py_installed_beside_a_copy_of_the_contract(tmp_path):
    """An install outside the checkout: <dir>/nuke and <dir>/osvos_contract, plugin.json inside the package."""
    install = tmp_path / "a" / "b" / "c" / "d" / "osvos"
    shutil.copytree(NUKE_DIR, install / "nuke", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(CONTRACT_DIR, install / "osvos_contract", ignore=shutil.ignore_patterns("__pycache__"))
    assert (install / "osvos_contract" / "plugin.json").read_bytes() == (REPO / "plugin.json").read_bytes()
    found = _run_init_py_bare(install / "nuke" / "init.py", tmp_path)
    assert found["added"] == []
    assert found["sys_path_added"] == [str(install)]
    assert found["contract"] == str(install / "osvos_contract" / "__init__.py")
    assert found["printed"] == []


def test_init_py_copied_without_the_contract_reports_instead_of_failing(tmp_path):
    lonely = tmp_path / "a" / "b" / "c" / "d" / "nuke"
    lonely.mkdir(parents=True)
    (lonely / "init.py").write_text((NUKE_DIR / "init.py").read_text())
    found = _run_init_py_bare(lonely / "init.py", tmp_path)
    assert found["added"] == []
    assert found["sys_path_added"] == [] and found["contract"] is None
    assert len(found["printed"]) == 1 and found["printed"][0].startswith("OSVOS: ")
    assert "osvos_contract" in found["printed"][0] and "copy" in found["printed"][0]


def test_init_py_reports_a_missing_plugin_json(tmp_path):
    install = tmp_path / "a" / "b" / "c" / "d" / "osvos"
    shutil.copytree(NUKE_DIR, install / "nuke", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(CONTRACT_DIR, install / "osvos_contract", ignore=shutil.ignore_patterns("__pycache__", "*.json"))
    found = _run_init_py_bare(install / "nuke" / "init.py", tmp_path)
    assert found["sys_path_added"] == [str(install)]
    assert len(found["printed"]) == 1 and found["printed"][0].startswith("OSVOS: plugin.json not found")


def test_objects_frame_lists_and_render_runs():
    assert osvos_knobs.parse_objects("car:rgba.red, person:rgba.green") == [("car", "rgba.red"),
                                                                            ("person", "rgba.green")]
    assert osvos_knobs.parse_objects("  ") == []
    for bad in ("car", "car:red", "1car:rgba.red", "car:rgba.red car:rgba.blue"):
        with pytest.raises(ValueError, match="objects"):
            osvos_knobs.parse_objects(bad)
    assert osvos_knobs.frame_list("1001-1005x2, 1010 1002") == [1001, 1002, 1003, 1005, 1010]
    with pytest.raises(ValueError, match="frame range"):
        osvos_knobs.frame_list("1005-1001")
    assert osvos_knobs.frame_runs([1, 2, 3, 7, 9, 11, 20]) == [(1, 3, 1), (7, 11, 2), (20, 20, 1)]
    assert osvos_knobs.frame_runs([5]) == [(5, 5, 1)] and osvos_knobs.frame_runs([]) == []
