"""osvos_contract.process against the engine: the osvos-render command line, its progress, the process.

Checked against the engine itself: the command lines go through osvos-render's own argument parser, the
progress lines come from its own ProgressPrinter, and the process tests run the real osvos-render. The
contract's own rules (manifest, patterns, progress record) are tested without the engine in tests/contract.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import stat
import struct
import sys
import time
from pathlib import Path

import pytest

import osvos_contract.process as rp
from osvos_contract.manifest import load_manifest
from osvos_contract.patterns import frames_on_disk
from osvos_contract.protocol import RENDER_STAGES, ExitCode, Progress, parse_progress
from osvos_plugin.cli import render as render_cli
from osvos_plugin.cli.progress import ProgressPrinter

# ------------------------------------------------------------------------------------------ command line


def _parse_with_engine(cmd: list[str]):
    """The command line as osvos-render itself reads it (its argparse, then its RenderJob)."""
    args = render_cli.build_parser().parse_args(cmd[1:])
    return args, render_cli.job_from_args(args)


def test_command_line_is_what_the_engine_parses():
    manifest = load_manifest()
    values = {"iterations": 7, "learning_rate": 3e-4, "optimizer": "sgd", "soft_matte": True,
              "threshold": next(p.default for p in manifest.parameters if p.name == "threshold"),
              "frames": "1001-1010x2", "input_colorspace": "", "device": "cpu",
              "batch_size": 2}
    cmd = rp.build_command(["osvos-render"], "/s/plate.%04d.exr", "/o/m.%04d.exr",
                           parameters=manifest.parameters, values=values, mask="/m/roto.exr", mask_frame=1003,
                           keyframes=[(1008, "/m/k.exr")], parent="/p.safetensors", save_model="/s.safetensors",
                           overwrite=True)
    args, job = _parse_with_engine(cmd)
    assert args.progress == "json" and args.overwrite and args.save_model == Path("/s.safetensors")
    assert job.source == "/s/plate.%04d.exr" and job.output == "/o/m.%04d.exr"
    assert [(k.mask, k.frame) for k in job.keyframes] == [("/m/roto.exr", None), ("/m/k.exr", 1008)]
    assert job.params == {"iterations": 7, "learning_rate": 3e-4, "optimizer": "sgd", "soft_matte": True,
                          "frames": "1001-1010x2", "device": "cpu", "mask_frame": 1003}
    # Values equal to the manifest default, and empty strings, are left to the engine's defaults.
    assert "--threshold" not in cmd and "--batch-size" not in cmd and "--input-colorspace" not in cmd


def test_command_line_booleans_floats_and_unknowns():
    manifest = load_manifest()
    off = rp.build_command("e", "p", "o", parameters=manifest.parameters, values={"soft_matte": False})
    assert "--soft-matte" not in off and "--no-soft-matte" not in off  # False is the default
    # Host floats are 32-bit: the default read back from a float32 control is still the default, not a change.
    default = next(p.default for p in manifest.parameters if p.name == "learning_rate")
    f32 = struct.unpack("f", struct.pack("f", default))[0]  # as a float32 control holds it
    assert f32 != default  # the rounding this checks is there
    assert "--learning-rate" not in rp.build_command("e", "p", "o", parameters=manifest.parameters,
                                                     values={"learning_rate": f32})
    cmd = rp.build_command("e", "p", "o", parameters=manifest.parameters, values={"threshold": 0.30000001192})
    assert cmd[cmd.index("--threshold") + 1] == "0.3"
    with pytest.raises(ValueError, match="unknown parameters: colour"):
        rp.build_command("e", "p", "o", parameters=manifest.parameters, values={"colour": 1})
    with pytest.raises(ValueError, match="exclude"):
        rp.build_command("e", "p", "o", save_model="a", load_model="b")


# ------------------------------------------------------------------------------------------------ progress


def test_progress_lines_of_the_engine_are_parsed():
    printer = ProgressPrinter("json")
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        printer(Progress.timed("finetune", 100, 400, 42.0, 0.3125))
        printer(Progress.timed("infer", 3, 12, 1.5))
        printer(Progress.timed("check", 50, 200, 2.0))
        printer(Progress.timed("selftrain", 50, 100, 20.0, 0.2))
    lines = out.getvalue().splitlines()
    parsed = [parse_progress(line) for line in lines]
    assert parsed[0].stage == "finetune" and (parsed[0].done, parsed[0].total) == (100, 400)
    assert parsed[0].fraction == pytest.approx(0.25) and parsed[0].loss == pytest.approx(0.3125)
    assert json.loads(lines[0])["fraction"] == pytest.approx(0.25)
    shares = {s.name: s.share for s in RENDER_STAGES}
    assert sum(shares.values()) == pytest.approx(1.0)
    assert parsed[0].overall == pytest.approx(shares["check"] + shares["finetune"] * 0.25)
    eta = json.loads(lines[0])["eta_s"]
    assert eta == pytest.approx(42.0 / 100 * 300) and parsed[0].eta_s == pytest.approx(eta)
    assert re.fullmatch(r"Fine-tuning 100/400, loss 0\.3125, \d+ min \d\d s left", parsed[0].message())
    assert parsed[1].overall == pytest.approx(1 - shares["infer"] * 0.75) and parsed[1].loss is None
    assert re.fullmatch(r"Inferring 3/12 frames, \d s left", parsed[1].message())
    assert parsed[2].overall == pytest.approx(shares["check"] * 0.25) and parsed[2].overall < parsed[0].overall
    assert re.fullmatch(r"Checking plates 50/200 frames, \d s left", parsed[2].message())
    assert parsed[0].overall < parsed[3].overall < parsed[1].overall  # fine-tuning, self-training, inference
    assert re.fullmatch(r"Self-training 50/100, loss 0\.2000, \d+ s left", parsed[3].message())


# ------------------------------------------------------------------------------------------------- engine


def _script(tmp_path: Path, body: str) -> list[str]:
    """A stand-in engine: a Python script run by this interpreter (for behaviour the real one cannot be
    made to show on demand, such as ignoring a stop request)."""
    path = tmp_path / "fake_engine.py"
    path.write_text(body)
    return [sys.executable, str(path)]


def test_find_engine_setting_env_then_path(tmp_path, monkeypatch):
    exe = tmp_path / "bin" / "osvos-render"
    exe.parent.mkdir()
    exe.write_text("#!/bin/sh\n")
    exe.chmod(exe.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    monkeypatch.delenv(rp.ENGINE_ENV, raising=False)
    with pytest.raises(rp.EngineNotFound, match="osvos-render on PATH"):
        rp.find_engine("")
    assert rp.find_engine(str(exe)) == [str(exe)]
    assert rp.find_engine(str(exe.parent)) == [str(exe)]  # a folder holding it works too
    monkeypatch.setenv(rp.ENGINE_ENV, str(exe))
    assert rp.find_engine("") == [str(exe)]
    with pytest.raises(rp.EngineNotFound, match="nowhere"):
        monkeypatch.delenv(rp.ENGINE_ENV)
        rp.find_engine(str(tmp_path / "nowhere"))
    monkeypatch.setenv("PATH", str(exe.parent))
    assert rp.find_engine("") == [str(exe)]


def test_engine_environment_drops_host_python_paths():
    env = rp.engine_environment({"PYTHONPATH": "/blender/python", "PYTHONHOME": "/x", "PATH": "/bin"})
    assert env == {"PATH": "/bin", "PYTHONUNBUFFERED": "1", "PYTHONIOENCODING": "utf-8"}


def test_real_engine_error_is_reported_with_its_own_message(engine, tmp_path, small_mask):
    cmd = rp.build_command(engine, str(tmp_path / "missing.%04d.png"), str(tmp_path / "out.%04d.exr"),
                           mask=str(small_mask))
    events = []
    result = rp.run(cmd, on_progress=events.append, env=rp.engine_environment())
    assert result.returncode == 3 and not result.ok and not result.cancelled
    assert "missing" in result.message and not result.message.startswith("osvos-render failed")
    assert events == []


@pytest.mark.slow
def test_real_engine_progress_then_cancel(engine, tmp_path, small_plates, small_mask, tiny_parent):
    """A long fine-tune, cancelled at its first progress line: exit 130, reported as cancelled."""
    cmd = rp.build_command(engine, str(small_plates / "bear.%04d.png"), str(tmp_path / "m.%04d.exr"),
                           parameters=load_manifest().parameters,
                           values={"iterations": 20000, "process_size": 64, "device": "cpu"},
                           mask=str(small_mask), mask_frame=1001, parent=str(tiny_parent))
    seen = []

    def cancel_once_started() -> bool:
        return any(p.stage == "finetune" for p in seen)

    t0 = time.monotonic()
    result = rp.run(cmd, on_progress=seen.append, should_cancel=cancel_once_started, env=rp.engine_environment())
    # the up-front plate check reports first, then fine-tuning
    assert seen[0].stage == "check" and seen[0].total > 0
    tuning = [p for p in seen if p.stage == "finetune"]
    assert tuning and tuning[0].total == 20000 and seen.index(tuning[0]) > 0
    assert result.returncode == ExitCode.INTERRUPTED and result.cancelled
    assert result.message.startswith("cancelled")
    assert time.monotonic() - t0 < 120
    assert frames_on_disk(str(tmp_path / "m.%04d.exr")) == []


def test_cancel_escalates_when_the_engine_ignores_it(tmp_path):
    cmd = _script(tmp_path, "import json, signal, time\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\n"
                  "print(json.dumps({'stage': 'finetune', 'done': 1, 'total': 9, 'fraction': 0.1}), flush=True)\n"
                  "time.sleep(60)\n")
    proc = rp.RenderProcess(cmd, grace_s=0.5).start()
    while not proc.poll():
        time.sleep(0.05)
    assert proc.latest.done == 1
    proc.cancel()
    t0 = time.monotonic()
    while proc.returncode is None:
        proc.poll()
        time.sleep(0.05)
    result = proc.result()
    assert result.cancelled and result.returncode != 0 and result.message.startswith("cancelled")
    assert time.monotonic() - t0 < 10


@pytest.mark.skipif(os.name == "nt", reason="POSIX signals")
def test_unknown_exit_code_and_stderr_tail(tmp_path):
    cmd = _script(tmp_path, "import sys\nprint('a log line', flush=True)\nprint('disk on fire', file=sys.stderr)\n"
                  "sys.exit(5)\n")
    result = rp.run(cmd)
    assert result.returncode == 5
    assert result.message == "osvos-render failed (the mattes could not be written): disk on fire"
    with pytest.raises(rp.EngineNotFound, match="cannot start"):
        rp.RenderProcess([str(tmp_path / "no-such-binary")]).start()
