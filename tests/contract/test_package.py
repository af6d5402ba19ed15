"""osvos_contract as a package: the standard library only, Python 3.9 syntax, relative imports inside, so
Blender's and Nuke's own Pythons import it (the Blender add-on bundles it as its subpackage)."""

from __future__ import annotations

import ast
import glob
import json
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
CONTRACT = REPO / "osvos_contract"
SOURCES = sorted(p for p in CONTRACT.rglob("*.py") if "__pycache__" not in p.parts)
MODULES = [".".join(p.relative_to(REPO).with_suffix("").parts).removesuffix(".__init__") for p in SOURCES]
HOSTS_AND_ENGINE = ("numpy", "torch", "cv2", "OpenImageIO", "fileseq", "tqdm", "osvos_plugin", "bpy", "nuke")

# Imports every contract module in a Python with nothing but the standard library and the repository root on
# sys.path (-I: no environment, no user site; -S: no site-packages), then lists what got imported.
IMPORT_ALL = """
import importlib, json, sys
sys.path.insert(0, sys.argv[1])
for name in sys.argv[2:]:
    importlib.import_module(name)
print("RESULT " + json.dumps({"modules": sorted(sys.modules), "stdlib": sorted(sys.stdlib_module_names)}))
"""


def _bare_python(python: str, code: str, *args: str) -> dict:
    proc = subprocess.run([python, "-I", "-S", "-c", code, *args], capture_output=True, text=True, timeout=120,
                          cwd=REPO.parent)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    assert proc.returncode == 0 and lines, proc.stdout + proc.stderr
    return json.loads(lines[-1][len("RESULT "):])


def test_the_package_has_its_modules():
    assert {"osvos_contract", "osvos_contract.manifest", "osvos_contract.patterns", "osvos_contract.process",
            "osvos_contract.protocol"} <= set(MODULES)


def test_imports_nothing_outside_the_standard_library():
    found = _bare_python(sys.executable, IMPORT_ALL, str(REPO), *MODULES)
    roots = {name.split(".")[0] for name in found["modules"]}
    assert not roots & set(HOSTS_AND_ENGINE), sorted(roots & set(HOSTS_AND_ENGINE))
    outside = roots - set(found["stdlib"]) - {"osvos_contract", "__main__"}
    assert not outside, f"osvos_contract imports {sorted(outside)}, which are not in the standard library"
    assert set(MODULES) <= set(found["modules"])


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: p.name)
def test_python_3_9_syntax(path):
    ast.parse(path.read_text(encoding="utf-8"), str(path), feature_version=(3, 9))


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: p.name)
def test_imports_inside_the_package_are_relative(path):
    """Absolute imports of itself would break the copy the Blender add-on bundles as its subpackage."""
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            assert all(a.name.split(".")[0] != "osvos_contract" for a in node.names), ast.unparse(node)
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            assert (node.module or "").split(".")[0] != "osvos_contract", ast.unparse(node)


def test_works_as_a_subpackage_of_another_package(tmp_path):
    """As the Blender add-on holds it: ``osvos_matte/osvos_contract/`` with plugin.json inside."""
    shutil.copytree(CONTRACT, tmp_path / "host_addon" / "osvos_contract",
                    ignore=shutil.ignore_patterns("__pycache__"))
    (tmp_path / "host_addon" / "__init__.py").write_text("")
    code = """
import json, sys
sys.path.insert(0, sys.argv[1])
from host_addon.osvos_contract.manifest import load_manifest
from host_addon.osvos_contract.process import build_command
from host_addon.osvos_contract.protocol import parse_progress
m = load_manifest()
cmd = build_command("osvos-render", "p.%04d.exr", "m.%04d.exr", parameters=m.parameters, values={"iterations": 5})
print("RESULT " + json.dumps({"path": m.path, "cmd": cmd, "stage": parse_progress('{"stage": "infer"}').stage,
                              "absolute": "osvos_contract" in sys.modules}))
"""
    found = _bare_python(sys.executable, code, str(tmp_path))
    assert found["path"] == str(tmp_path / "host_addon" / "osvos_contract" / "plugin.json")
    assert found["cmd"][-4:] == ["--iterations", "5", "--progress", "json"] and found["stage"] == "infer"
    assert not found["absolute"]


def _python_3_9() -> str | None:
    pyenv = sorted(glob.glob(str(Path.home() / ".pyenv" / "versions" / "3.9*" / "bin" / "python3.9")))
    candidates = [shutil.which("python3.9"), *pyenv]
    for exe in filter(None, candidates):
        try:
            probe = subprocess.run([exe, "-c", "import sys; print(sys.version_info[:2] == (3, 9))"],
                                   capture_output=True, text=True, timeout=30)
        except OSError:
            continue
        if probe.stdout.strip() == "True":
            return exe
    return None


def test_runs_under_python_3_9():
    """Syntax alone misses what 3.9 fails on at run time (``int | None`` outside an annotation,
    ``zip(strict=True)``): run the contract in a real 3.9 when one is installed."""
    python = _python_3_9()
    if python is None:
        pytest.skip("no Python 3.9 found (python3.9 on PATH or in ~/.pyenv/versions)")
    code = """
import json, sys
sys.path.insert(0, sys.argv[1])
from osvos_contract.manifest import load_manifest
from osvos_contract.patterns import format_frame, matte_pattern, printf_pattern, sequence_pattern
from osvos_contract.process import build_command, engine_environment, exit_message
from osvos_contract.protocol import Progress, parse_progress
m = load_manifest()
values = {p.name: p.default for p in m.parameters if not p.optional}
cmd = build_command("osvos-render", "p.%04d.exr", "m.%04d.exr", parameters=m.parameters, values=values)
p = parse_progress(Progress.timed("finetune", 1, 4, 3.0, 0.5).to_json())
print("RESULT " + json.dumps({
    "resolved": m.resolve({"iterations": "7"})["iterations"], "cmd": cmd, "message": p.message(),
    "overall": p.overall, "frame": format_frame(printf_pattern("/a/m.####.exr"), 7),
    "matte": matte_pattern("/o", sequence_pattern("/p/bear.1001.exr").pattern),
    "exit": exit_message(3, ["osvos-render: error: no plate"]), "env": "PYTHONUNBUFFERED" in engine_environment({}),
}))
"""
    found = _bare_python(python, code, str(REPO))
    assert found["resolved"] == 7 and found["cmd"] == ["osvos-render", "p.%04d.exr", "--output", "m.%04d.exr",
                                                       "--progress", "json"]
    assert found["message"] == "Fine-tuning 1/4, loss 0.5000, 9 s left" and 0 < found["overall"] < 1
    assert found["frame"] == "/a/m.0007.exr" and found["matte"] == "/o/bear_matte.%04d.exr"
    assert found["exit"] == "no plate" and found["env"]


def test_blender_zip_bundles_the_contract_with_plugin_json(tmp_path):
    out = tmp_path / "osvos_matte.zip"
    subprocess.run([sys.executable, str(REPO / "host_adapters" / "blender" / "build_zip.py"), str(out)],
                   check=True, capture_output=True, text=True, timeout=120)
    with zipfile.ZipFile(out) as zf:
        names = set(zf.namelist())
        assert zf.read("osvos_matte/osvos_contract/__init__.py") == (CONTRACT / "__init__.py").read_bytes()
        assert zf.read("osvos_matte/osvos_contract/plugin.json") == (REPO / "plugin.json").read_bytes()
    assert {"osvos_matte/osvos_contract/" + p.relative_to(CONTRACT).as_posix() for p in SOURCES} <= names
