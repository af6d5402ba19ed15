"""Fixtures for the host-adapter tests: a way to start the real engine, a small real plate sequence, the
Blender add-on zip, and Blender's own virtualenv (the Blender tests skip without it)."""

from __future__ import annotations

import stat
import subprocess
import sys
from pathlib import Path

import cv2
import pytest
from adapter_paths import BLENDER_DIR, BLENDER_VENVS, DEMO_PLATE, REPO


@pytest.fixture(scope="session")
def engine(tmp_path_factory) -> list[str]:
    """The command that starts osvos-render: the venv's entry point, or a wrapper around this Python."""
    script = Path(sys.executable).with_name("osvos-render")
    if script.is_file():
        return [str(script)]
    wrapper = tmp_path_factory.mktemp("engine") / "osvos-render"
    wrapper.write_text(f'#!/bin/sh\nPYTHONPATH="{REPO}" exec "{sys.executable}" -m osvos_plugin.cli.render "$@"\n')
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return [str(wrapper)]


@pytest.fixture(scope="session")
def small_plates(tmp_path_factory) -> Path:
    """Five real frames of the demo shot at 96x54, as bear.1001.png ... bear.1005.png."""
    folder = tmp_path_factory.mktemp("plate")
    for n in range(1001, 1006):
        img = cv2.imread(str(DEMO_PLATE / f"bear.{n}.jpg"))
        cv2.imwrite(str(folder / f"bear.{n}.png"), cv2.resize(img, (96, 54), interpolation=cv2.INTER_AREA))
    return folder


@pytest.fixture(scope="session")
def small_mask(small_plates) -> Path:
    """A painted mask for the small plates: a white box on black."""
    mask = cv2.imread(str(small_plates / "bear.1001.png"), cv2.IMREAD_GRAYSCALE) * 0
    mask[15:45, 25:70] = 255
    path = small_plates.parent / "roto.1001.png"
    cv2.imwrite(str(path), mask)
    return path


@pytest.fixture(scope="session", params=sorted(BLENDER_VENVS, reverse=True), ids=lambda v: f"blender{v}")
def blender_python(request) -> Path:
    """The Python of one supported Blender's venv (every test that takes it runs once per release), with bpy
    of that release importable headless; skips the test (saying why) otherwise."""
    venv = BLENDER_VENVS[request.param]
    python = venv / "bin" / "python"
    reason = venv / ".osvos-bpy-unavailable"
    if reason.is_file():
        pytest.skip(f"bpy {request.param} unavailable: {reason.read_text().strip()}")
    if not python.is_file():
        pytest.skip(f"{venv} is absent: run scripts/blender_setup.sh (make blender-setup)")
    probe = subprocess.run([str(python), "-c", "import bpy; print(bpy.app.version_string)"],
                           capture_output=True, text=True, timeout=120)
    if probe.returncode != 0:
        pytest.skip(f"bpy does not import in {python}: {probe.stderr.strip()[-300:]}")
    assert probe.stdout.strip().startswith(request.param + "."), f"{venv} holds bpy {probe.stdout.strip()}"
    return python


@pytest.fixture(scope="session")
def addon_zip(tmp_path_factory) -> Path:
    """The installable add-on zip, built by the add-on's own build script."""
    out = tmp_path_factory.mktemp("dist") / "osvos_matte.zip"
    subprocess.run([sys.executable, str(BLENDER_DIR / "build_zip.py"), str(out)], check=True,
                   capture_output=True, text=True)
    return out
