"""The fault suite: what a pipeline TD tries before letting osvos-render onto a farm.

Each case asserts the exit code, the first line of the message, that every input file is unchanged,
and that every matte on disk reads back whole. Renders use five real demo frames at a tiny processing
size, so the suite runs in seconds.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from osvos_plugin.cli.render import main as render_main
from osvos_plugin.io import read_matte_metadata
from osvos_plugin.outputs import output_lock

REPO = Path(__file__).resolve().parents[1]
DEMO = REPO / "osvos_plugin" / "demo" / "bear"
FAST = ["--iterations", "2", "--process-size", "64", "--device", "cpu", "--precision", "fp32", "--progress", "none",
        "--output-format", "png8", "--no-flip-average", "--core-threshold", "0"]  # the tiny parent is nowhere 0.95 sure


@pytest.fixture
def shot(tmp_path) -> Path:
    """``in/bear.1001-1005.jpg`` (real demo frames) and ``roto.png``, the mask painted on 1001."""
    (tmp_path / "in").mkdir()
    for f in range(1001, 1006):
        shutil.copy(DEMO / "plate" / f"bear.{f}.jpg", tmp_path / "in")
    shutil.copy(DEMO / "truth" / "bear.1001.png", tmp_path / "roto.png")
    return tmp_path


def hashes(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file() and "out" not in p.parts}


def mattes_whole(folder: Path) -> bool:
    return all(read_matte_metadata(p) is not None for p in folder.glob("*.png"))


def render(shot: Path, parent: Path, *args: str, plate: str | None = None) -> int:
    plate = plate or str(shot / "in" / "bear.####.jpg")
    return render_main([plate, "--mask", str(shot / "roto.png"), "--mask-frame", "1001", "--parent", str(parent),
                        *FAST, *args])


def first_error_line(capsys) -> str:
    return next(line for line in capsys.readouterr().err.splitlines() if "error:" in line)


@pytest.mark.parametrize("spelling", ["dotdot", "relative", "symlink"])
def test_an_output_that_names_the_plates_another_way_is_refused(shot, tiny_parent, capsys, monkeypatch, spelling):
    before = hashes(shot)
    if spelling == "dotdot":
        out = str(shot / "in" / ".." / "in" / "bear.####.jpg")
    elif spelling == "relative":
        monkeypatch.chdir(shot)
        out = "in/bear.####.jpg"
    else:
        (shot / "link").symlink_to(shot / "in")
        out = str(shot / "link" / "bear.####.jpg")
    for extra in ([], ["--overwrite"]):
        assert render(shot, tiny_parent, "-o", out, "--output-format", "rgba", *extra) == 3
        line = first_error_line(capsys)
        assert "is the plate" in line and "refusing to overwrite an input" in line
    assert hashes(shot) == before


def test_the_painted_mask_is_never_overwritten(shot, tiny_parent, capsys):
    before = hashes(shot)
    assert render(shot, tiny_parent, "-o", str(shot / "out" / "m.####.png"),
                  "--save-model", str(shot / "roto.png")) == 3
    line = first_error_line(capsys)
    assert "the fine-tuned model" in line and "is the mask" in line
    assert render(shot, tiny_parent, "--frames", "1001", "-o", str(shot / "roto.png"), "--overwrite") == 3
    assert "the matte" in first_error_line(capsys)
    assert hashes(shot) == before


def test_resume_renders_again_what_other_settings_made(shot, tiny_parent, capsys):
    out = shot / "out" / "m.####.png"
    assert render(shot, tiny_parent, "-o", str(out)) == 0
    first = {p.name: p.read_bytes() for p in (shot / "out").glob("*.png")}
    assert len(first) == 5 and mattes_whole(shot / "out")
    capsys.readouterr()
    assert render(shot, tiny_parent, "-o", str(out)) == 0  # the same render: nothing to do
    assert "0 frames written, 5 kept" in capsys.readouterr().out
    assert render(shot, tiny_parent, "-o", str(out), "--threshold", "0.3") == 0
    text = capsys.readouterr().out
    assert "5 frames written, 0 kept" in text and "5 were rendered with another model or other settings" in text
    assert render(shot, tiny_parent, "-o", str(out), "--threshold", "0.3",
                  "--keyframe", "1003", str(DEMO / "truth" / "bear.1003.png")) == 0  # a correction
    assert "5 frames written" in capsys.readouterr().out
    (shot / "out" / "m.1002.png").write_bytes(b"")  # left by something else
    (shot / "out" / "m.1004.png").write_bytes((shot / "out" / "m.1004.png").read_bytes()[:200])  # truncated
    assert render(shot, tiny_parent, "-o", str(out), "--threshold", "0.3",
                  "--keyframe", "1003", str(DEMO / "truth" / "bear.1003.png")) == 0
    text = capsys.readouterr().out
    assert "2 frames written, 3 kept" in text and "2 were incomplete or unreadable" in text
    assert mattes_whole(shot / "out")


def test_resume_renders_again_what_auto_precision_made_differently(shot, tiny_parent, capsys, monkeypatch):
    """precision auto runs int8, bf16 or fp32 by the CPU: a render resumed where auto runs otherwise (an
    AMX farm node after an AVX2 one) renders the frames again rather than mixing the two."""
    from osvos_plugin import device

    out = shot / "out" / "m.####.png"
    monkeypatch.setattr(device, "cpu_has_fast_bf16", lambda: False)
    monkeypatch.setattr(device, "cpu_has_amx", lambda: False)
    assert render(shot, tiny_parent, "-o", str(out), "--precision", "auto") == 0
    assert "5 frames written" in capsys.readouterr().out
    assert render(shot, tiny_parent, "-o", str(out), "--precision", "auto") == 0
    assert "0 frames written, 5 kept" in capsys.readouterr().out
    monkeypatch.setattr(device, "cpu_has_fast_bf16", lambda: True)
    monkeypatch.setattr(device, "cpu_has_amx", lambda: True)
    assert render(shot, tiny_parent, "-o", str(out), "--precision", "auto", "--frames", "1001-1002") == 0
    text = capsys.readouterr().out
    assert "2 frames written, 0 kept" in text and "2 were rendered with another model or other settings" in text


def test_a_second_render_of_the_same_output_is_refused(shot, tiny_parent, capsys):
    out = shot / "out" / "m.####.png"
    with output_lock(out):
        assert render(shot, tiny_parent, "-o", str(out)) == 5
    line = first_error_line(capsys)
    assert "is being rendered by another osvos-render" in line and f"process {os.getpid()} on" in line
    assert not list((shot / "out").glob("*.png"))
    assert render(shot, tiny_parent, "-o", str(out)) == 0  # the lock went with the first render


def test_chunks_of_one_shot_render_side_by_side_but_not_twice(shot, tiny_parent, capsys):
    out = shot / "out" / "m.####.png"
    with output_lock(out, [1001, 1002]):  # a farm chunk of the same shot is rendering 1001-1002
        assert render(shot, tiny_parent, "-o", str(out), "--frames", "1003-1005") == 0  # another chunk: fine
        assert render(shot, tiny_parent, "-o", str(out), "--frames", "1001-1002") == 5  # the same chunk: refused
        assert "frames 1001-1002 of" in first_error_line(capsys)
        assert render(shot, tiny_parent, "-o", str(out)) == 5  # the whole shot waits for no chunk: refused
        assert "is being rendered by another osvos-render" in first_error_line(capsys)
    assert sorted(p.name for p in (shot / "out").glob("m.*.png")) == ["m.1003.png", "m.1004.png", "m.1005.png"]
    assert not list((shot / "out").glob(".*lock"))  # every lock file went with its last holder
    assert render(shot, tiny_parent, "-o", str(out)) == 0


def test_cheap_checks_come_before_the_plate_check(shot, tiny_parent, capsys):
    bad = shot / "corrupt.safetensors"
    bad.write_bytes(b"not a model")
    calls = []
    import osvos_plugin.pipeline as pipeline

    real = pipeline.validate_plates
    pipeline.validate_plates = lambda *a, **k: calls.append(1) or real(*a, **k)
    try:
        assert render(shot, tiny_parent, "-o", str(shot / "out" / "m.####.png"), "--parent", str(bad)) == 4
        assert "corrupt.safetensors" in first_error_line(capsys)
        assert render_main([str(shot / "in" / "bear.####.jpg"), "--load-model", str(bad), *FAST,
                            "-o", str(shot / "out" / "m.####.png")]) == 4
        capsys.readouterr()
        assert render(shot, tiny_parent, "-o", str(shot / "out" / "m.####.jpg")) == 5  # png8 into .jpg
        assert "has the extension '.jpg' but the format is 'png8'" in first_error_line(capsys)
        assert render(shot, tiny_parent, "-o", str(shot / "out" / "m.####.jpg"), "--output-format", "rgba") == 5
        assert "no alpha channel" in first_error_line(capsys)
    finally:
        pipeline.validate_plates = real
    assert calls == [] and not (shot / "out").exists()


def _subprocess_render(shot: Path, parent: Path, tmpdir: Path, *args: str) -> subprocess.Popen:
    env = {**os.environ, "TMPDIR": str(tmpdir), "PYTHONPATH": str(REPO)}
    cmd = [sys.executable, "-m", "osvos_plugin.cli.render", str(shot / "in" / "bear.####.jpg"), "--mask",
           str(shot / "roto.png"), "--parent", str(parent), "-o", str(shot / "out" / "m.####.png"),
           *[a for a in FAST if a not in ("--progress", "none")], "--progress", "json", *args]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def _wait_for_stage(proc: subprocess.Popen, stage: str) -> None:
    for line in proc.stdout:
        if f'"stage": "{stage}"' in line:
            return
    raise AssertionError(f"the render ended before {stage}: {proc.stderr.read()}")


@pytest.mark.slow
def test_sigterm_stops_cleanly_and_a_rerun_resumes(shot, tiny_parent, tmp_path_factory):
    tmpdir = tmp_path_factory.mktemp("tmp")
    before = hashes(shot)
    proc = _subprocess_render(shot, tiny_parent, tmpdir, "--iterations", "400")
    _wait_for_stage(proc, "finetune")
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "interrupted" in err and "Traceback" not in err
    assert not list(tmpdir.iterdir())  # the prepared-plates folder went too
    assert hashes(shot) == before and mattes_whole(shot / "out")


@pytest.mark.slow
def test_kill_9_leaves_whole_mattes_and_a_later_render_removes_the_orphaned_temp_folder(shot, tiny_parent,
                                                                                       tmp_path_factory):
    tmpdir = tmp_path_factory.mktemp("tmp")
    proc = _subprocess_render(shot, tiny_parent, tmpdir, "--iterations", "400")
    _wait_for_stage(proc, "finetune")
    proc.kill()
    proc.communicate(timeout=60)
    orphans = [p for p in tmpdir.iterdir() if p.name.startswith("osvos-plates-")]
    assert len(orphans) == 1 and f"-{proc.pid}-" in orphans[0].name
    done = _subprocess_render(shot, tiny_parent, tmpdir)
    _, err = done.communicate(timeout=300)
    assert done.returncode == 0, err
    assert not list(tmpdir.iterdir())  # the orphan was removed, and the render's own folder too
    assert len(list((shot / "out").glob("*.png"))) == 5 and mattes_whole(shot / "out")


def test_a_live_renders_temp_folder_is_left_alone(tmp_path):
    from osvos_plugin.io.prepared import PreparedPlates, remove_orphans

    with PreparedPlates(directory=tmp_path) as mine:
        assert mine.directory.exists()
        assert remove_orphans(tmp_path) == []  # this process is alive
        other_host = tmp_path / "osvos-plates-elsewhere-1-abc"
        other_host.mkdir()
        assert remove_orphans(tmp_path) == [] and other_host.exists()
