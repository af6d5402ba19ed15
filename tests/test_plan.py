"""The render plan: what a render will do, decided from the job, its settings and what is on disk."""

from pathlib import Path

import pytest

from osvos_plugin.io import PlateError
from osvos_plugin.plan import Keyframe, RenderJob, plan_render
from osvos_plugin.settings import RenderSettings


@pytest.fixture
def plates(tmp_path) -> Path:
    """Ten plate files 1001-1010 (the plan only lists them) and mattes already written for 1001 and 1002."""
    (tmp_path / "plate").mkdir()
    for f in range(1001, 1011):
        (tmp_path / "plate" / f"p.{f}.png").write_bytes(b"")
    (tmp_path / "out").mkdir()
    for f in (1001, 1002):
        (tmp_path / "out" / f"m.{f}.exr").write_bytes(b"")
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


def test_the_mask_frame_rule_is_applied_once(plates):
    job, plan = _plan(plates, frames="1003-1006")
    assert plan.keyframes == [("roto.png", 1003)]  # no mask frame: the range's first
    job, plan = _plan(plates, [Keyframe("a.png"), Keyframe("b.png", 1009)], mask_frame=1005, frames="1003-1006")
    assert plan.keyframes == [("a.png", 1005), ("b.png", 1009)]  # mask_frame places the first keyframe only
    assert job.keyframes[0].frame is None  # the caller's job is left as it was
    assert {1005, 1009} <= plan.pixel_frames  # painted frames are checked, even outside the range


def test_nothing_to_fine_tune_without_work_or_with_a_loaded_model(plates):
    for f in range(1003, 1011):
        (plates / "out" / f"m.{f}.exr").write_bytes(b"")
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
    job = RenderJob(str(plates / "plate" / "p.####.png"), str(plates / "plate" / "p.####.png"),
                    [Keyframe("roto.png")])
    with pytest.raises(PlateError, match="is a Source frame"):
        plan_render(job, RenderSettings.resolve())
    job = RenderJob(str(plates / "plate" / "p.####.png"), str(plates / "out" / "single.exr"), [Keyframe("r.png")])
    with pytest.raises(PlateError, match="no frame number token"):
        plan_render(job, RenderSettings.resolve())


def test_planning_writes_nothing(plates):
    before = sorted(p.relative_to(plates) for p in plates.rglob("*"))
    _plan(plates, overwrite=True, self_train_iterations=10)
    assert sorted(p.relative_to(plates) for p in plates.rglob("*")) == before
