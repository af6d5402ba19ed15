"""The built wheel is a working install: ``pip install`` gives ``osvos-render`` with the shipped parent."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DEMO = REPO / "osvos_plugin" / "demo" / "bear"


@pytest.mark.slow
def test_the_wheel_installs_a_render_that_finds_its_parent(tmp_path):
    wheels = tmp_path / "wheels"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w",
                    str(wheels), str(REPO)], check=True, capture_output=True, cwd=tmp_path)
    wheel = next(wheels.glob("osvos_plugin-*.whl"))
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-deps", "--no-index",
                    str(wheel)], check=True, capture_output=True)
    # torch, OpenImageIO and the rest come from this environment: a .pth line adds its site-packages after
    # the new one (the .pth files inside it, such as this checkout's editable install, are not run)
    site = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                               check=True, capture_output=True, text=True).stdout.strip())
    (site / "outer.pth").write_text(sysconfig.get_path("purelib") + "\n")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "OSVOS_MODELS", "OSVOS_PLUGIN_JSON")}
    where = subprocess.run([str(python), "-c", "import osvos_plugin, osvos_contract.manifest as m, "
                            "osvos_plugin.models as d; print(osvos_plugin.__file__); print(m.load_manifest().path); "
                            "print(d.default_parent_path())"], check=True, capture_output=True, text=True, env=env,
                           cwd=tmp_path).stdout.split()
    assert all(str(venv) in line for line in where), where  # the installed code, manifest and parent
    shot = tmp_path / "shot"
    shot.mkdir()
    for f in (1001, 1002, 1003):
        shutil.copy(DEMO / "plate" / f"bear.{f}.jpg", shot)
    done = subprocess.run([str(venv / "bin" / "osvos-render"), str(shot / "bear.####.jpg"), "--mask",
                           str(DEMO / "truth" / "bear.1001.png"), "-o", str(tmp_path / "out" / "m.####.png"),
                           "--output-format", "png8", "--iterations", "2", "--process-size", "64", "--device", "cpu",
                           "--no-flip-average", "--progress", "none"], capture_output=True, text=True, env=env,
                          cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "3 frames written" in done.stdout
    from osvos_plugin.io import read_matte_metadata

    assert all(read_matte_metadata(tmp_path / "out" / f"m.{f}.png") is not None for f in (1001, 1002, 1003))
    version = subprocess.run([str(venv / "bin" / "osvos-demo"), "--version"], capture_output=True, text=True, env=env)
    assert version.returncode == 0 and version.stdout.startswith("osvos-demo ")
