"""The render plan: what a render will do, decided from the job, its settings and what is on disk."""

from pathlib import Path

import pytest

from osvos_plugin.errors import InputError
from osvos_plugin.io import PlateError
from osvos_plugin.plan import Keyframe, RenderJob, plan_render
from osvos_plugin.settings import RenderSettings


def _fake_matte_reader(path):
    """Stands in for ``read_matte_metadata``: ``whole <fingerprint>`` reads back whole, anything else not."""
    text = Path(path).read_text()
    return {"fingerprint": text.split()[1]} if text.startswith("whole ") else None


@pytest.fixture
def plates(tmp_path, monkeypatch) -> Path:
    """Ten plate files 1001-1010 (the plan only lists and stats them) and current mattes for 1001 and 1002."""
    monkeypatch.setattr("osvos_plugin.plan.read_matte_metadata", _fake_matte_reader)
    (tmp_path / "plate").mkdir()
    for f in range(1001, 1011):
        (tmp_path / "plate" / f"p.{f}.png").write_bytes(b"")
    (tmp_path / "out").mkdir()
    _, plan = _plan(tmp_path)
    for f in (1001, 1002):
        (tmp_path / "out" / f"m.{f}.exr").write_text(f"whole {plan.fingerprint.for_frame(plan.frames[f - 1001][1])}")
    return tmp_path


def _plan(plates, keyframes=None, **params):
    keyframes = [Keyframe("roto.png")] if keyframes is None else keyframes
    job_kw = {k: params.pop(k) for k in ("overwrite", "load_model", "save_model") if k in params}
    job = RenderJob(str(plates / "plate" / "p.####.png"), str(plates / "out" / "m.####.exr"), list(keyframes),
                    params=params, **job_kw)
    return job, plan_render(job, RenderSettings.resolve(params))


def test_resume_keeps_what_is_written_and_overwrite_renders_everything(plates):
    _, plan = _plan(plates)
    assert [f for f, _ in plan.frames] == list(range(1001, 1011))
    assert [f for f, _ in plan.to_render] == list(range(1003, 1011))
    assert plan.outputs[0] == plates / "out" / "m.1001.exr"
    _, plan = _plan(plates, overwrite=True)
    assert len(plan.to_render) == 10


def test_resume_keeps_only_whole_mattes_made_the_same_way(plates):
    (plates / "out" / "m.1003.exr").write_text("whole 0123456789abcdef")  # made by other settings
    (plates / "out" / "m.1004.exr").write_text("")  # a 0-byte leftover
    _, plan = _plan(plates)
    assert [f for f, _ in plan.to_render] == list(range(1003, 1011)) and (plan.stale, plan.incomplete) == (1, 1)
    _, other = _plan(plates, threshold=0.3)  # a matte-changing parameter: every frame again
    assert len(other.todo) == 10 and other.stale == 3 and other.fingerprint != plan.fingerprint
    _, same = _plan(plates, batch_size=1, device="cpu", frames="1001-1002")  # these do not change a matte
    assert same.todo == [] and same.fingerprint == plan.fingerprint
    _, corrected = _plan(plates, [Keyframe("roto.png"), Keyframe("fix.png", 1005)])  # a keyframe added
    assert corrected.fingerprint != plan.fingerprint
    (plates / "plate" / "p.1002.png").write_bytes(b"re-rendered plate")
    _, replated = _plan(plates)
    assert 1 in replated.todo and 0 not in replated.todo  # the frame whose plate changed, and only that one
    (plates / "plate" / "p.1001.png").write_bytes(b"re-rendered painted frame")
    _, repainted = _plan(plates)
    assert 0 in repainted.todo  # the painted frame's plate makes the model: every frame again


def test_a_matte_made_by_another_grown_objects_rule_is_rendered_again(plates, monkeypatch):
    """Rescale Grown Objects' rule is in the fingerprint while the option is on: mattes made by an earlier rule
    (before session 33, the smaller answer taken unchecked) are rendered again on resume; off, the rule is not
    recorded, so a change of rule leaves those mattes alone."""
    _, now = _plan(plates)  # on by default
    _, off_now = _plan(plates, grown_object_rescale=False)
    monkeypatch.setattr("osvos_plugin.plan.GROWN_RULE", "taken unchecked")
    _, before = _plan(plates)
    _, off_before = _plan(plates, grown_object_rescale=False)
    assert before.fingerprint != now.fingerprint and len(before.todo) == 10 and before.stale == 2
    assert off_before.fingerprint == off_now.fingerprint != now.fingerprint


def test_the_mask_frame_rule_is_applied_once(plates):
    job, plan = _plan(plates, frames="1003-1006")
    assert plan.keyframes == [("roto.png", 1003)]  # no mask frame: the range's first
    job, plan = _plan(plates, [Keyframe("a.png"), Keyframe("b.png", 1009)], mask_frame=1005, frames="1003-1006")
    assert plan.keyframes == [("a.png", 1005), ("b.png", 1009)]  # mask_frame places the first keyframe only
    assert job.keyframes[0].frame is None  # the caller's job is left as it was
    assert {1005, 1009} <= plan.pixel_frames  # painted frames are checked, even outside the range


def test_nothing_to_fine_tune_without_work_or_with_a_loaded_model(plates):
    _, plan = _plan(plates)
    for f in range(1003, 1011):
        (plates / "out" / f"m.{f}.exr").write_text(f"whole {plan.fingerprint.for_frame(plan.frames[f - 1001][1])}")
    _, plan = _plan(plates)
    assert not plan.todo and not plan.need_model and not plan.fine_tune and plan.keyframes == []
    _, plan = _plan(plates, save_model=str(plates / "shot.safetensors"))
    assert plan.need_model and plan.fine_tune  # nothing to render, but a model to save
    _, plan = _plan(plates, overwrite=True, load_model="shot.safetensors")
    assert plan.need_model and not plan.fine_tune and plan.keyframes == []


def test_self_training_frames_come_from_the_whole_shot_whatever_the_range(plates):
    _, whole = _plan(plates, overwrite=True, self_train_iterations=10, self_train_frames=3)
    _, ranged = _plan(plates, overwrite=True, self_train_iterations=10, self_train_frames=3, frames="1001-1002")
    picked = [f for f, _ in whole.self_train_frames]
    assert len(picked) == 3 and 1001 not in picked  # never the painted frame
    assert [f for f, _ in ranged.self_train_frames] == picked  # a chunk of the shot trains the same model
    # those outside the range are checked and decoded too, after the range (indices into frames hold)
    assert [f for f, _ in ranged.to_check] == [1001, 1002, *[f for f in picked if f > 1002]]
    assert set(picked) <= set(ranged.to_decode)
    _, off = _plan(plates, overwrite=True, self_train_frames=3)  # self-training off by default
    assert off.self_train_frames == []


def test_an_output_that_names_the_plates_is_refused(plates):
    job = RenderJob(str(plates / "plate" / "p.####.png"), str(plates / "plate" / ".." / "plate" / "p.####.png"),
                    [Keyframe("roto.png")])
    with pytest.raises(InputError, match="the matte .* is the plate .*: refusing to overwrite an input"):
        plan_render(job, RenderSettings.resolve())
    job = RenderJob(str(plates / "plate" / "p.####.png"), str(plates / "out" / "single.exr"), [Keyframe("r.png")])
    with pytest.raises(PlateError, match="no frame number token"):
        plan_render(job, RenderSettings.resolve())


def test_planning_writes_nothing(plates):
    before = sorted(p.relative_to(plates) for p in plates.rglob("*"))
    _plan(plates, overwrite=True, self_train_iterations=10)
    assert sorted(p.relative_to(plates) for p in plates.rglob("*")) == before


def test_an_object_painted_large_runs_at_the_larger_size(plates, tiny_parent):
    """Large Object Scale: decided on the first keyframe's object, recorded in the fingerprint as what runs."""
    import cv2
    import numpy as np

    from osvos_plugin.weights import load_checkpoint, save_checkpoint

    big, small = np.zeros((48, 64), np.uint8), np.zeros((48, 64), np.uint8)
    big[10:30, 10:40] = 255  # 20% of the frame
    small[10:14, 10:20] = 255  # 1.3%
    cv2.imwrite(str(plates / "big.png"), big)
    cv2.imwrite(str(plates / "small.png"), small)
    cv2.imwrite(str(plates / "plate" / "p.1001.png"), np.zeros((90, 160, 3), np.uint8))  # the keyframe's plate
    _, large = _plan(plates, [Keyframe(plates / "big.png")], process_size=64)
    assert large.settings.process_size == 114 and large.settings.finetune().process_size == 114
    _, explicit = _plan(plates, [Keyframe(plates / "big.png")], process_size=114, large_object_scale=1.0)
    assert explicit.fingerprint == large.fingerprint  # the same network size: the same mattes
    _, painted_small = _plan(plates, [Keyframe(plates / "small.png")], process_size=64)
    assert painted_small.settings.process_size == 64
    _, off = _plan(plates, [Keyframe(plates / "big.png")], process_size=64, large_object_scale=1.0)
    assert off.settings.process_size == 64 and off.fingerprint != large.fingerprint
    # never above the plate's own long side: 100 x 1.78 would be 178, the plate is 160 wide; at 160, unchanged
    _, capped = _plan(plates, [Keyframe(plates / "big.png")], process_size=100)
    assert capped.settings.process_size == 160
    _, at_plate = _plan(plates, [Keyframe(plates / "big.png")], process_size=160)
    assert at_plate.settings.process_size == 160 and at_plate.settings.large_object_scale == 1.78
    # a correction painted later on a smaller object keeps the first keyframe's size (and the kept model's)
    _, corrected = _plan(plates, [Keyframe(plates / "big.png"), Keyframe(plates / "small.png", 1005)], process_size=64)
    assert corrected.settings.process_size == 114
    # a loaded model (a farm's render task) runs at the size it was fine-tuned at, capped or not; a record
    # Large Object Scale could not have made runs at Processing Size
    model, _ = load_checkpoint(tiny_parent)
    for made_at, runs_at in ((114, 114), (100, 100), (64, 64), (115, 64), (32, 64)):
        path = plates / f"ft{made_at}.safetensors"
        save_checkpoint(model, path, provenance={"kind": "fine-tuned", "process_size": made_at})
        _, loaded = _plan(plates, [], process_size=64, overwrite=True, load_model=str(path))
        assert loaded.settings.process_size == runs_at
