"""osvos-render end to end on real frames of the demo shot, with a small real parent network."""

import json
import os
import shutil
import threading
from dataclasses import replace

import numpy as np
import OpenImageIO as oiio
import pytest

from osvos_plugin.cli.render import main as render_main
from osvos_plugin.jobs import Cancelled
from osvos_plugin.pipeline import Keyframe, RenderJob, render

# A few steps of the tiny untrained parent are nowhere 0.95 sure: no Core Threshold (test_core_threshold.py).
# A 3-step fine-tune's matte is mostly noise: no core to hold, and spread wider than the painted bear, so Rescale
# Grown Objects would segment frames again (tests/test_grown.py covers it); these tests are about the output.
FAST = ["--iterations", "3", "--process-size", "64", "--device", "cpu", "--precision", "fp32", "--progress", "none",
        "--core-threshold", "0", "--no-grown-object-rescale"]


@pytest.fixture
def shot(tmp_path):
    """Five frames of the demo plate (1001-1005) and the painted mask for 1001."""
    from osvos_plugin.io import format_frame_path

    demo = __import__("pathlib").Path(__file__).resolve().parents[1] / "osvos_plugin" / "demo" / "bear"
    (tmp_path / "plate").mkdir()
    for f in range(1001, 1006):
        shutil.copy(format_frame_path(str(demo / "plate" / "bear.####.jpg"), f), tmp_path / "plate")
    shutil.copy(demo / "truth" / "bear.1001.png", tmp_path / "roto.png")
    return tmp_path


def _args(shot, parent, *extra):
    return [str(shot / "plate" / "bear.####.jpg"), "--mask", str(shot / "roto.png"), "--mask-frame", "1001",
            "-o", str(shot / "out" / "matte.####.exr"), "--parent", str(parent), *FAST, *extra]


def test_render_writes_one_channel_half_exr_per_frame(shot, tiny_parent, capsys):
    assert render_main(_args(shot, tiny_parent)) == 0
    outs = sorted((shot / "out").glob("matte.*.exr"))
    assert [p.name for p in outs] == [f"matte.{f}.exr" for f in range(1001, 1006)]
    img = oiio.ImageInput.open(str(outs[0]))
    spec = img.spec()
    assert spec.channelnames == ("A",) and spec.format == oiio.HALF
    assert (spec.full_width, spec.full_height) == (854, 480) and spec.get_string_attribute("compression") == "zip"
    a = img.read_image(format=oiio.FLOAT)
    img.close()
    # the default alpha: exactly 0 or 1 but for a one-pixel anti-aliased ramp along the edge
    assert 0.0 <= a.min() and a.max() <= 1.0
    ramp = (a > 0) & (a < 1)
    assert ramp.any() and ramp.mean() < 0.02
    hard = a[..., 0] >= 0.5
    edge = hard ^ np.roll(hard, 1, axis=0) | hard ^ np.roll(hard, 1, axis=1)
    near = np.zeros_like(hard)
    for dy in (-2, -1, 0, 1, 2):
        for dx in (-2, -1, 0, 1, 2):
            near |= np.roll(np.roll(edge, dy, axis=0), dx, axis=1)
    assert near[ramp[..., 0]].all(), "alpha between 0 and 1 away from the matte's edge"
    assert "5 frames written, 0 kept" in capsys.readouterr().out


def test_resume_keeps_written_frames_and_overwrite_redoes_them(shot, tiny_parent, capsys):
    assert render_main(_args(shot, tiny_parent)) == 0
    (shot / "out" / "matte.1003.exr").unlink()
    capsys.readouterr()
    assert render_main(_args(shot, tiny_parent)) == 0
    assert "1 frame written, 4 kept" in capsys.readouterr().out
    assert render_main(_args(shot, tiny_parent, "--overwrite")) == 0
    assert "5 frames written, 0 kept" in capsys.readouterr().out


def test_saved_model_reproduces_the_mattes(shot, tiny_parent):
    assert render_main(_args(shot, tiny_parent, "--save-model", str(shot / "ft.safetensors"), "--soft-matte")) == 0
    first = oiio.ImageBuf(str(shot / "out" / "matte.1004.exr")).get_pixels(oiio.FLOAT)
    args = [str(shot / "plate" / "bear.####.jpg"), "--load-model", str(shot / "ft.safetensors"),
            "-o", str(shot / "again" / "m.####.exr"), "--frames", "1004", *FAST, "--soft-matte"]
    assert render_main(args) == 0
    again = oiio.ImageBuf(str(shot / "again" / "m.1004.exr")).get_pixels(oiio.FLOAT)
    assert np.abs(first - again).max() < 1e-3 and len(np.unique(first)) > 2


def test_bad_input_gets_one_message_and_exit_3(shot, tiny_parent, capsys):
    (shot / "plate" / "bear.1003.jpg").unlink()
    assert render_main(_args(shot, tiny_parent, "--frames", "1001-1005")) == 3
    err = capsys.readouterr().err
    assert "1003" in err and err.count("osvos-render: error") == 1
    assert not (shot / "out").exists() or not any((shot / "out").iterdir())  # nothing fine-tuned or written


def test_empty_mask_and_wrong_model_file(shot, tiny_parent, capsys):
    import cv2

    cv2.imwrite(str(shot / "empty.png"), np.zeros((480, 854), np.uint8))
    args = _args(shot, tiny_parent)
    args[args.index(str(shot / "roto.png"))] = str(shot / "empty.png")
    assert render_main(args) == 3
    assert "empty.png" in capsys.readouterr().err
    (shot / "junk.safetensors").write_bytes(b"\x00" * 100)
    assert render_main(_args(shot, shot / "junk.safetensors")) == 4
    assert "junk.safetensors" in capsys.readouterr().err


def test_json_progress_for_hosts(shot, tiny_parent, capsys):
    args = _args(shot, tiny_parent)
    args[args.index("none")] = "json"
    assert render_main(args) == 0
    records = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    stages = [r["stage"] for r in records]
    assert stages.count("finetune") == 3 and stages[-1] == "infer" and records[-1]["fraction"] == 1.0
    # the plate check first, to its end (how often it reports on the way depends on the machine's speed)
    checks = stages.index("finetune")
    assert set(stages[:checks]) == {"check"} and (records[checks - 1]["done"], records[checks - 1]["total"]) == (5, 5)
    assert all(set(r) == {"stage", "done", "total", "fraction", "loss", "eta_s"} for r in records)


def test_cancel_leaves_only_whole_frames_and_resumes(shot, tiny_parent):
    out = str(shot / "out" / "m.####.exr")
    job = RenderJob(str(shot / "plate" / "bear.####.jpg"), out, [Keyframe(shot / "roto.png", 1001)],
                    params={"iterations": 2, "process_size": 64, "batch_size": 1, "device": "cpu"},
                    parent=tiny_parent)
    cancel = threading.Event()

    def progress(p):
        if p.stage == "infer" and p.done == 2:
            cancel.set()

    with pytest.raises(Cancelled):
        render(job, progress=progress, cancel=cancel)
    written = sorted(p for p in (shot / "out").iterdir() if p.name != ".osvos")  # the kept model's folder
    assert 2 <= len(written) < 5 and all(p.suffix == ".exr" for p in written)
    for p in written:
        assert oiio.ImageBuf(str(p)).get_pixels(oiio.FLOAT).shape == (480, 854, 1)
    summary = render(job)
    assert summary.skipped == len(written) and summary.written == 5 - len(written)


def test_cancel_during_the_plate_check_stops_before_fine_tuning(shot, tiny_parent):
    """A host's cancel is honoured by the up-front check too: no fine-tuning, nothing written."""
    job = RenderJob(str(shot / "plate" / "bear.####.jpg"), str(shot / "out" / "m.####.exr"),
                    [Keyframe(shot / "roto.png", 1001)],
                    params={"iterations": 2, "process_size": 64, "device": "cpu"}, parent=tiny_parent)
    cancel = threading.Event()
    cancel.set()
    stages = []
    with pytest.raises(Cancelled, match="plate check stopped after 0 of 5 frames"):
        render(job, progress=lambda p: stages.append(p.stage), cancel=cancel)
    assert "finetune" not in stages
    assert not (shot / "out").exists() or not any((shot / "out").iterdir())


def test_mask_frame_parameter_places_the_keyframe_without_changing_the_job(shot, tiny_parent):
    job = RenderJob(str(shot / "plate" / "bear.####.jpg"), str(shot / "out" / "m.####.exr"),
                    [Keyframe(shot / "roto.png")],
                    params={"iterations": 1, "process_size": 64, "device": "cpu", "mask_frame": 1003,
                            "frames": "1002-1003"},
                    parent=tiny_parent)
    # frame 1003 is in the range, the first frame (1002) too: only mask_frame can say which one was painted
    render(job)
    assert job.keyframes[0].frame is None  # a host may reuse its job object
    bad = RenderJob(job.source, str(shot / "out2" / "m.####.exr"), [Keyframe(shot / "roto.png")],
                    params={**job.params, "mask_frame": 999}, parent=tiny_parent)
    with pytest.raises(Exception, match="999"):
        render(bad)


@pytest.mark.parametrize("extra", [[], ["--self-train-iterations", "2", "--self-train-frames", "2"]])
def test_each_plate_is_decoded_once(shot, tiny_parent, monkeypatch, extra):
    """The up-front pixel check hands its decoded frames to self-training and inference: no plate is
    decoded twice, the frames self-training reads (1004, 1005) included."""
    from osvos_plugin.io import plates

    reads = []
    raw = plates._read_raw
    monkeypatch.setattr(plates, "_read_raw", lambda path, frame: (reads.append(frame), raw(path, frame))[1])
    checks = []
    check = plates._check_frame
    monkeypatch.setattr(plates, "_check_frame", lambda f, p, pixels, prepare=None: (
        checks.append((f, pixels)), check(f, p, pixels, prepare))[1])
    assert render_main(_args(shot, tiny_parent, *extra)) == 0
    assert sorted(checks) == [(f, True) for f in range(1001, 1006)]
    assert len(list((shot / "out").glob("matte.*.exr"))) == 5
    assert reads == [1001]  # the painted frame, read at full size for fine-tuning; inference read none


def test_resume_decodes_only_the_frames_it_renders(shot, tiny_parent, capsys):
    assert render_main(_args(shot, tiny_parent)) == 0
    broken = shot / "plate" / "bear.1003.jpg"
    data, st = broken.read_bytes(), broken.stat()
    broken.write_bytes(data[:2000] + bytes(len(data) - 2000))  # header intact, pixels gone, same size
    os.utime(broken, ns=(st.st_atime_ns, st.st_mtime_ns))  # and the same time: the matte is still current
    assert render_main(_args(shot, tiny_parent)) == 0  # 1003's matte is done: its plate is not read again
    assert "0 frames written, 5 kept" in capsys.readouterr().out
    (shot / "out" / "matte.1003.exr").unlink()
    assert render_main(_args(shot, tiny_parent)) == 3
    err = capsys.readouterr().err
    assert "1003" in err and "truncated" in err


def test_self_training_frames_are_recorded_and_checked_on_resume(shot, tiny_parent):
    """Self-training learns from frames spread over the whole shot, whatever the range, resumed or not: they
    are listed in the saved model, and a resumed render checks their pixels even when their mattes exist."""
    from osvos_plugin.io import PlateError
    from osvos_plugin.weights import load_checkpoint

    params = {"iterations": 2, "process_size": 64, "device": "cpu", "self_train_frames": 2,
              "self_train_iterations": 2}
    job = RenderJob(str(shot / "plate" / "bear.####.jpg"), str(shot / "out" / "m.####.exr"),
                    [Keyframe(shot / "roto.png", 1001)], params=params, parent=tiny_parent,
                    save_model=shot / "ft.safetensors")
    render(job)
    _, info = load_checkpoint(shot / "ft.safetensors")
    assert info.provenance["self_train_frames"] == [1004, 1005] and info.provenance["self_train_iterations"] == 2
    # the recipe travels with the model: the scales, and the zoom that follows the painted object
    assert (info.provenance["scales"][-1], info.provenance["zoom_to"]) == (1.5, 0.5)
    # a farm's fine-tune-once step renders one frame, and still learns from the whole shot
    once = replace(job, output=str(shot / "once" / "m.####.exr"), params={**params, "frames": "1001"},
                   save_model=shot / "once.safetensors")
    render(once)
    assert load_checkpoint(shot / "once.safetensors")[1].provenance["self_train_frames"] == [1004, 1005]
    (shot / "out" / "m.1002.exr").unlink()
    (shot / "plate" / "bear.1005.jpg").write_bytes((shot / "plate" / "bear.1005.jpg").read_bytes()[:2000])
    with pytest.raises(PlateError, match="1005"):
        render(job)
    # without self-training and outside the range, 1005 is not read
    render(replace(job, params={**params, "self_train_iterations": 0, "frames": "1001-1004"}))
    assert (shot / "out" / "m.1002.exr").exists()


def test_a_plate_folder_named_demo_is_rendered(shot, tiny_parent, monkeypatch, capsys):
    """``osvos-demo`` is its own command, so ``osvos-render demo`` is a render of the folder ``demo``."""
    (shot / "plate").rename(shot / "demo")
    monkeypatch.chdir(shot)
    assert render_main(["demo", "--mask", "roto.png", "--mask-frame", "1001", "-o", "out/m.####.exr",
                        "--parent", str(tiny_parent), *FAST]) == 0
    assert sorted(p.name for p in (shot / "out").glob("m.*.exr")) == [f"m.{f}.exr" for f in range(1001, 1006)]
    assert "5 frames written" in capsys.readouterr().out


def test_threads_parameter_reaches_the_network_and_keeps_the_resume(shot, tiny_parent, capsys):
    import torch

    before = torch.get_num_threads()
    try:
        assert render_main(_args(shot, tiny_parent, "--threads", "1")) == 0
        assert torch.get_num_threads() == 1
        capsys.readouterr()
        assert render_main(_args(shot, tiny_parent, "--threads", "2")) == 0  # not part of what made a matte
        assert "0 frames written, 5 kept" in capsys.readouterr().out
    finally:
        torch.set_num_threads(before)


def test_a_correction_continues_from_the_kept_model(shot, tiny_parent, capsys, caplog):
    """Keep Model: the first render keeps its model beside the mattes; the same keyframes again reuse it
    (no fine-tuning); one more keyframe continues from it for Continue Iterations; mattes are redone exactly
    when their model changed."""
    import logging

    from osvos_plugin.plan import kept_model_path
    from osvos_plugin.weights import read_checkpoint_info

    demo = __import__("pathlib").Path(__file__).resolve().parents[1] / "osvos_plugin" / "demo" / "bear"
    shutil.copy(demo / "truth" / "bear.1003.png", shot / "roto1003.png")
    base = _args(shot, tiny_parent, "--iterations", "6", "--continue-iterations", "2")
    assert render_main(base) == 0
    kept = kept_model_path(str(shot / "out" / "matte.####.exr"))
    assert kept == shot / "out" / ".osvos" / "matte.model.safetensors" and kept.is_file()
    record = read_checkpoint_info(kept).provenance
    assert record["iterations"] == 6 and len(record["keyframe_digests"]) == 1
    first = oiio.ImageBuf(str(shot / "out" / "matte.1004.exr")).get_pixels(oiio.FLOAT)
    capsys.readouterr()
    # the same keyframes, every frame again: the kept model is reused, the mattes come out the same
    assert render_main([*base, "--overwrite"]) == 0
    out = capsys.readouterr().out
    assert "the shot's kept model, reused" in out and "5 frames written" in out
    assert np.array_equal(oiio.ImageBuf(str(shot / "out" / "matte.1004.exr")).get_pixels(oiio.FLOAT), first)
    # a correction on frame 1003: continued (2 steps), every matte redone, the kept model replaced
    with caplog.at_level(logging.INFO, logger="osvos_plugin.finetune"):
        assert render_main([*base, "--keyframe", "1003", str(shot / "roto1003.png")]) == 0
    out = capsys.readouterr().out
    assert "continued from the shot's kept model with 1 new keyframe(s), 2 steps" in out
    assert "5 frames written, 0 kept" in out
    order = [p.stem for p in sorted((shot / "out").glob("matte.*.exr"), key=lambda p: p.stat().st_mtime_ns)]
    assert order[0] == "matte.1003"  # the correction's frame is rendered first, then its neighbours
    assert set(order[1:3]) == {"matte.1002", "matte.1004"}
    assert any("fine-tuned 2 iterations" in r.getMessage() for r in caplog.records)
    assert len(read_checkpoint_info(kept).provenance["keyframe_digests"]) == 2
    # again with both keyframes: nothing to do (the mattes record the continued model)
    assert render_main([*base, "--keyframe", "1003", str(shot / "roto1003.png")]) == 0
    assert "0 frames written, 5 kept" in capsys.readouterr().out
    # other settings or --no-keep-model: from the parent
    assert render_main([*base, "--keyframe", "1003", str(shot / "roto1003.png"), "--seed", "3"]) == 0
    out = capsys.readouterr().out
    assert "kept model" not in out and "5 frames written" in out
    kept.write_bytes(b"broken")
    with caplog.at_level(logging.WARNING, logger="osvos_plugin.plan"):
        assert render_main([*base, "--overwrite"]) == 0
    assert any("cannot be used" in r.getMessage() for r in caplog.records)
    assert read_checkpoint_info(kept).provenance["iterations"] == 6  # rebuilt
    (shot / "out2").mkdir()
    assert render_main([*_args(shot, tiny_parent, "--no-keep-model"), "-o", str(shot / "out2" / "m.####.exr")]) == 0
    assert not (shot / "out2" / ".osvos").exists()


@pytest.mark.slow
def test_a_new_engine_recipe_fine_tunes_afresh_and_renders_every_matte_again(shot, tiny_parent, capsys, monkeypatch):
    """An engine default that is no node parameter (here the fine-tuning samples' crop) changes what a render
    learns: the kept model and the mattes made under the old recipe must not pass for the new one's."""
    from osvos_plugin.plan import kept_model_path
    from osvos_plugin.settings import RenderSettings
    from osvos_plugin.weights import read_checkpoint_info

    base = _args(shot, tiny_parent, "--iterations", "4")
    assert render_main(base) == 0
    kept = kept_model_path(str(shot / "out" / "matte.####.exr"))
    assert read_checkpoint_info(kept).provenance["recipe"]["engine"]["finetune"]["augment"]["crop"] == 0.8
    capsys.readouterr()
    assert render_main(base) == 0  # the same recipe: nothing to do
    assert "0 frames written, 5 kept" in capsys.readouterr().out
    made = RenderSettings.finetune

    def new_default(self):
        cfg = made(self)
        return replace(cfg, augment=replace(cfg.augment, crop=0.6))

    monkeypatch.setattr(RenderSettings, "finetune", new_default)
    assert render_main(base) == 0
    out = capsys.readouterr().out
    assert "kept model" not in out and "5 frames written, 0 kept" in out, out
    assert read_checkpoint_info(kept).provenance["recipe"]["engine"]["finetune"]["augment"]["crop"] == 0.6
    assert render_main([*base, "--overwrite"]) == 0  # and the model kept under the new recipe serves it
    assert "the shot's kept model, reused" in capsys.readouterr().out


@pytest.mark.slow
def test_demo_renders_the_shot_and_its_plate_resolution_case(tmp_path, capsys):
    """``osvos-demo`` (what ``make demo`` runs), quickly: the 480p render scored against the ground truth, then
    the 1080p case with and without plate-resolution edges, and the picture that compares them."""
    from osvos_plugin.cli.demo import main as demo_main

    assert demo_main(["--output-dir", str(tmp_path), "--iterations", "20", "--process-size", "128",
                      "--progress", "none"]) == 0
    out = capsys.readouterr().out
    j = float(out.split("J mean against the ground truth")[1].split(":")[1].split()[0])
    hd = out.split("at 1920x1080: J ")[1]
    bilinear, guided = (float(hd.split(name + " ")[1].split(",")[0].split(";")[0])
                        for name in ("bilinear", "plate edges"))
    assert 0.5 < j <= 1 and 0.5 < bilinear <= 1 and 0.5 < guided <= 1
    matte = oiio.ImageBuf(str(tmp_path / "hd" / "plate_edges" / "bear.1010.exr"))
    assert (matte.spec().width, matte.spec().height) == (1920, 1080)
    picture = oiio.ImageBuf(str(tmp_path / "edges.png"))
    assert (picture.spec().width, picture.spec().height) == (1920, 720)


def _square_shot(folder, side: int) -> list[np.ndarray]:
    """Five 96x64 frames of a bright textured square (``side`` px) moving over a dark noisy ground; its masks."""
    import cv2

    rng = np.random.default_rng(0)
    (folder / "plate").mkdir(parents=True)
    masks = []
    for i in range(5):
        img = rng.integers(0, 60, (64, 96, 3), dtype=np.uint8)
        m = np.zeros((64, 96), bool)
        m[12:12 + side, 10 + 4 * i:10 + 4 * i + side] = True
        img[m] = rng.integers(190, 256, (int(m.sum()), 3), dtype=np.uint8)
        cv2.imwrite(str(folder / "plate" / f"sq.{i + 1}.png"), img)
        masks.append(m)
    cv2.imwrite(str(folder / "roto.png"), masks[0].astype(np.uint8) * 255)
    return masks


@pytest.mark.parametrize("scale, runs_at", [(None, 96), ("1", 64)])
def test_an_object_painted_large_is_learnt_and_segmented_at_the_larger_size(tmp_path, scale, runs_at):
    """End to end: a square over 15% of the frame runs at Processing Size x Large Object Scale (64 x 1.78),
    capped at the plate's long side (96), or with the scale at 1 at Processing Size; the matte matches the
    square either way (the shipped parent)."""
    from osvos_plugin.io import read_mask
    from osvos_plugin.weights import read_checkpoint_info

    masks = _square_shot(tmp_path, 30)
    args = [str(tmp_path / "plate" / "sq.#.png"), "--mask", str(tmp_path / "roto.png"), "--mask-frame", "1",
            "-o", str(tmp_path / "out" / "m.#.png"), "--iterations", "60", "--process-size", "64", "--device", "cpu",
            "--precision", "fp32", "--progress", "none", "--output-format", "png8", "--no-flip-average",
            "--save-model", str(tmp_path / "ft.safetensors"), *(["--large-object-scale", scale] if scale else [])]
    assert render_main(args) == 0
    assert read_checkpoint_info(tmp_path / "ft.safetensors").provenance["process_size"] == runs_at
    for f, truth in enumerate(masks, 1):
        matte = read_mask(tmp_path / "out" / f"m.{f}.png", allow_empty=True) >= 0.5
        assert (matte & truth).sum() / (matte | truth).sum() > 0.9, f"frame {f}"
