"""Render-farm jobs: the Open Job Description template built from plugin.json, job bundles, and whole jobs
run with ``openjd run`` on a small real shot (mattes checked against one osvos-render process)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import OpenImageIO as oiio
import pytest

from osvos_contract import farm
from osvos_contract.manifest import load_manifest
from osvos_plugin.cli.render import main as render_main

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
DEMO = ROOT / "osvos_plugin" / "demo" / "bear"
# A few steps of the tiny untrained parent are nowhere 0.95 sure: no Core Threshold (test_core_threshold.py).
FAST = {"iterations": 3, "process_size": 64, "device": "cpu", "precision": "fp32", "core_threshold": 0.0}


def _openjd(*args: str, env: dict | None = None, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / "openjd"), *args], capture_output=True, text=True, env=env, timeout=600, **kw)


@pytest.fixture
def shot(tmp_path, tiny_parent):
    """Seven frames of the demo plate under a "studio" folder, its painted mask, and an environment whose
    osvos-render finds the tiny parent (``OSVOS_MODELS``) as a worker would find the shipped one."""
    plate = tmp_path / "studio" / "shots" / "bear" / "plate"
    plate.mkdir(parents=True)
    for f in range(1001, 1008):
        shutil.copy(DEMO / "plate" / f"bear.{f}.jpg", plate)
    shutil.copy(DEMO / "truth" / "bear.1001.png", plate.parent / "roto.png")
    models = tmp_path / "models"
    models.mkdir()
    shutil.copy(tiny_parent, models / "osvos-parent.safetensors")
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}", "OSVOS_MODELS": str(models)}
    return plate.parent, env


def _mattes(folder: Path) -> dict[int, np.ndarray]:
    return {int(p.name.split(".")[1]): oiio.ImageBuf(str(p)).get_pixels(oiio.FLOAT)
            for p in sorted(folder.glob("matte.*.exr"))}


# ------------------------------------------------------------------------------------------- template


def test_the_template_in_the_repo_is_the_generated_one_and_valid():
    committed = json.loads((ROOT / "farm" / "osvos.template.json").read_text())
    assert committed == farm.job_template(), "regenerate it: python -m osvos_contract.farm > farm/osvos.template.json"
    run = _openjd("check", str(ROOT / "farm" / "osvos.template.json"))
    assert run.returncode == 0, run.stdout + run.stderr


def test_gpu_finetune_asks_for_a_gpu_worker_only_for_the_fine_tune(tmp_path):
    template = farm.job_template(gpu_finetune=True)
    finetune, render = template["steps"]
    assert finetune["hostRequirements"] == {"amounts": [{"name": "amount.worker.gpu", "min": 1}]}
    assert "hostRequirements" not in render
    (tmp_path / "t.json").write_text(json.dumps(template))
    run = _openjd("check", str(tmp_path / "t.json"))
    assert run.returncode == 0, run.stdout + run.stderr


def test_every_node_parameter_is_a_job_parameter_with_its_range():
    params = {p["name"]: p for p in farm.job_template()["parameterDefinitions"]}
    for p in load_manifest().parameters:
        if p.name in farm.SHOT_PARAMETERS:
            continue
        jp = params[farm.job_parameter_name(p.name)]
        assert jp["description"] == p.help and jp["userInterface"]["label"] == p.label
        if p.type in ("int", "float"):
            assert jp["default"] == p.default and jp.get("minValue") == p.min and jp.get("maxValue") == p.max
        elif p.type == "choice":
            assert jp["allowedValues"] == list(p.choices) and jp["default"] == p.default
        elif p.type == "bool":
            assert jp["default"] == ("true" if p.default else "false")
    # each one reaches the command line of both steps, by its plugin.json name
    for step in farm.job_template()["steps"]:
        args = step["script"]["actions"]["onRun"]["args"]
        for p in load_manifest().parameters:
            if p.name not in farm.SHOT_PARAMETERS:
                assert f"{p.name}={{{{Param.{farm.job_parameter_name(p.name)}}}}}" in args


def test_frame_range_text_is_openjd_range_syntax():
    assert farm.frame_range_text([1, 2, 3, 5, 7, 9, 20]) == "1-3,5-9:2,20"
    assert farm.frame_range_text([1001]) == "1001"
    assert farm.frame_range_text([4, 6]) == "4,6"


def test_bundle_values_refuse_bad_input_with_one_message(shot, tmp_path):
    folder, _ = shot
    plates, mask, out = folder / "plate" / "bear.####.jpg", folder / "roto.png", tmp_path / "out" / "m.####.exr"
    with pytest.raises(ValueError, match=r"threshold: 2\.0 is outside \[0\.0, 1\.0\]"):
        farm.bundle_values(plates, mask, out, {"threshold": 2.0})
    with pytest.raises(ValueError, match="chunk size 0"):
        farm.bundle_values(plates, mask, out, chunk_size=0)
    with pytest.raises(ValueError, match="no plate frames found"):
        farm.bundle_values(tmp_path / "empty" / "p.####.exr", mask, out)
    values = farm.bundle_values(plates, mask, out, {"threshold": 0.6, "soft_matte": True}, chunk_size=3)
    assert values["Frames"] == "1001-1007" and values["MaskFrame"] == 1001 and values["ChunkSize"] == 3
    assert values["Threshold"] == 0.6 and values["SoftMatte"] == "true" and values["ShotName"] == "bear"


def test_cli_job_bundle_messages(shot, tmp_path, capsys):
    folder, _ = shot
    base = [str(folder / "plate" / "bear.####.jpg"), "--mask", str(folder / "roto.png"),
            "-o", str(tmp_path / "out" / "m.####.exr")]
    assert render_main([*base, "--job-bundle", str(tmp_path / "b"), "--chunk-size", "0"]) == 3
    err = capsys.readouterr().err
    assert err.count("error") == 1 and "chunk size 0" in err and not (tmp_path / "b").exists()
    assert render_main([*base, "--chunk-size", "4"]) == 2
    assert "--chunk-size and --gpu-finetune are for --job-bundle" in capsys.readouterr().err
    assert render_main([*base, "--set", "thresh=0.5", "--job-bundle", str(tmp_path / "b")]) == 2
    assert "--set thresh=0.5" in capsys.readouterr().err


# --------------------------------------------------------------------------------------- whole jobs


def _bundle(folder: Path, out: Path, bundle: Path, *extra: str, **params) -> dict:
    args = [str(folder / "plate" / "bear.####.jpg"), "--mask", str(folder / "roto.png"),
            "-o", str(out / "matte.####.exr"), "--job-bundle", str(bundle), *extra]
    for k, v in {**FAST, **params}.items():
        args += [f"--{k.replace('_', '-')}", str(v)]
    assert render_main(args) == 0
    return json.loads((bundle / "job_parameters.json").read_text())


@pytest.mark.slow
def test_openjd_job_in_chunks_equals_one_render_and_maps_paths(shot, tmp_path):
    folder, env = shot
    bundle = _bundle(folder, tmp_path / "farm-out", tmp_path / "bundle", "--chunk-size", "3", "--soft-matte")
    assert json.loads((tmp_path / "bundle" / "asset_references.json").read_text())["assetReferences"]["outputs"] == {
        "directories": [str(tmp_path / "farm-out")]}
    # The submitter's paths are under /studio; on the worker they are under tmp_path/studio (path mapping).
    studio = tmp_path / "studio"
    params = {k: (v.replace(str(studio), "/studio") if isinstance(v, str) else v) for k, v in bundle.items()}
    (tmp_path / "params.json").write_text(json.dumps(params))
    rules = {"version": "pathmapping-1.0", "path_mapping_rules": [
        {"source_path_format": "POSIX", "source_path": "/studio", "destination_path": str(studio)}]}
    run = _openjd("run", str(tmp_path / "bundle" / "template.json"), "-p", f"file://{tmp_path / 'params.json'}",
                  "--run-dependencies", "--path-mapping-rules", json.dumps(rules), env=env)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    log = run.stdout
    assert log.count("Frame(CHUNK[INT]) = ") == 3  # 7 frames in chunks of at most 3
    assert "openjd_progress: 100" in log and "openjd_status: Inferring" in log
    assert (tmp_path / "farm-out" / ".osvos" / "bear.model.safetensors").is_file()
    # one osvos-render process with the same parameters
    one = [str(folder / "plate" / "bear.####.jpg"), "--mask", str(folder / "roto.png"), "--mask-frame", "1001",
           "-o", str(tmp_path / "one" / "matte.####.exr"), "--soft-matte", "--progress", "none"]
    for k, v in FAST.items():
        one += [f"--{k.replace('_', '-')}", str(v)]
    subprocess.run([str(BIN / "osvos-render"), *one], env=env, check=True, capture_output=True)
    farm_mattes, one_mattes = _mattes(tmp_path / "farm-out"), _mattes(tmp_path / "one")
    assert sorted(farm_mattes) == list(range(1001, 1008)) == sorted(one_mattes)
    for f in farm_mattes:
        assert np.array_equal(farm_mattes[f], one_mattes[f]), f
    assert len(np.unique(farm_mattes[1004])) > 2  # a soft matte, so equality is a real check
    report = json.loads((tmp_path / "farm-out" / "matte.osvos-review.json").read_text())
    assert [f["frame"] for f in report["frames"]] == list(range(1001, 1008))  # the chunks built one report


@pytest.mark.slow
def test_openjd_bad_values_and_missing_frames_get_one_message(shot, tmp_path):
    folder, env = shot
    bundle = _bundle(folder, tmp_path / "out", tmp_path / "bundle", "--chunk-size", "4")
    template = str(tmp_path / "bundle" / "template.json")
    bad = {**bundle, "Threshold": 2.0, "ChunkSize": 0}
    (tmp_path / "bad.json").write_text(json.dumps(bad))
    run = _openjd("run", template, "-p", f"file://{tmp_path / 'bad.json'}", "--run-dependencies", env=env)
    assert run.returncode != 0
    text = run.stdout + run.stderr
    assert "Threshold" in text and "ChunkSize" in text and not (tmp_path / "out").exists()
    # plates that are not on the worker: osvos-render's own message, and the job fails
    for p in (folder / "plate").glob("*.jpg"):
        p.unlink()
    run = _openjd("run", template, "-p", f"file://{tmp_path / 'bundle' / 'job_parameters.json'}",
                  "--run-dependencies", env=env)
    assert run.returncode != 0
    assert "osvos-render: error" in run.stdout and str(folder / "plate") in run.stdout
    assert not list((tmp_path / "out").glob("matte.*"))


@pytest.mark.slow
def test_cancelled_chunk_leaves_whole_mattes_and_resumes(shot, tmp_path):
    folder, env = shot
    for f in range(1008, 1031):  # a longer shot, so the chunk is still rendering when it is cancelled
        shutil.copy(DEMO / "plate" / f"bear.{1001 + (f - 1001) % 7}.jpg", folder / "plate" / f"bear.{f}.jpg")
    _bundle(folder, tmp_path / "out", tmp_path / "bundle", "--chunk-size", "30", process_size=256, batch_size=1)
    template = str(tmp_path / "bundle" / "template.json")
    values = f"file://{tmp_path / 'bundle' / 'job_parameters.json'}"
    run = _openjd("run", template, "-p", values, "--step", "FineTune", env=env)
    assert run.returncode == 0, run.stdout[-2000:]
    proc = subprocess.Popen([str(BIN / "openjd"), "run", template, "-p", values, "--step", "Render"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    deadline = time.monotonic() + 300
    while not list((tmp_path / "out").glob("matte.*.exr")) and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C: openjd cancels the session (SIGTERM, then the notify period)
    log, _ = proc.communicate(timeout=300)
    written = sorted((tmp_path / "out").glob("matte.*.exr"))
    assert 0 < len(written) < 30, log[-3000:]
    for p in written:  # every matte on disk is whole
        assert oiio.ImageBuf(str(p)).get_pixels(oiio.FLOAT).shape[:2] == (480, 854)
    assert not list((tmp_path / "out").glob(".*.tmp"))
    run = _openjd("run", template, "-p", values, "--step", "Render", env=env)
    assert run.returncode == 0, run.stdout[-2000:]
    assert f"{30 - len(written)} frames written, {len(written)} kept" in run.stdout


def test_shot_bundle_keeps_the_mask_beside_the_mattes_and_submits_with_deadline(shot, tmp_path, monkeypatch):
    folder, _ = shot
    temp_mask = tmp_path / "tmp" / "mask.png"  # a host's rasterised mask lives in a temporary folder
    temp_mask.parent.mkdir()
    shutil.copy(folder / "roto.png", temp_mask)
    out = tmp_path / "mattes" / "m.####.exr"
    bundle = farm.shot_bundle(folder / "plate" / "bear.####.jpg", temp_mask, out, {"mask_frame": 1003}, shot="sh010")
    assert bundle == tmp_path / "mattes" / ".osvos" / "sh010.job"
    values = json.loads((bundle / "job_parameters.json").read_text())
    kept = tmp_path / "mattes" / ".osvos" / "sh010.mask.png"
    assert values["MaskFile"] == str(kept) and kept.read_bytes() == temp_mask.read_bytes()
    assert values["MaskFrame"] == 1003 and values["ShotName"] == "sh010"
    deadline = json.loads((bundle / "parameter_values.json").read_text())["parameterValues"]
    assert {d["name"]: d["value"] for d in deadline} == values
    assert json.loads((bundle / "asset_references.json").read_text())["assetReferences"]["inputs"] == {
        "directories": [str(folder / "plate")], "filenames": [str(kept)]}
    # bad input writes nothing
    with pytest.raises(ValueError, match="outside"):
        farm.shot_bundle(folder / "plate" / "bear.####.jpg", temp_mask, tmp_path / "x" / "m.####.exr",
                         {"iterations": -1})
    assert not (tmp_path / "x").exists()
    # submitting: the deadline command when there is one, its last line reported
    monkeypatch.setenv("PATH", str(tmp_path / "nobin"))
    assert farm.submit(bundle) == (False, "the deadline command is not installed (pip install deadline); "
                                          "the bundle is written")
    fake = tmp_path / "bin" / "deadline"
    fake.parent.mkdir()
    fake.write_text(f"#!/bin/sh\necho \"$@\" > {tmp_path}/args\necho 'Submitted job-0123'\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", str(fake.parent))
    assert farm.submit(bundle) == (True, "Submitted job-0123")
    assert (tmp_path / "args").read_text().split() == ["bundle", "submit", "--yes", str(bundle)]
