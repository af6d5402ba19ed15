"""osvos_nuke executed against the recording stand-in of the ``nuke`` module (nuke_standin): the group it
builds, what the Render button hands osvos-render, the pre-render's cancel and errors, stopping renders when
the script closes, the frames-to-check report, and one real engine run with two objects in the background
(mattes reloaded as they land)."""

from __future__ import annotations

import importlib
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from nuke_standin import make_nuke

from osvos_contract.manifest import load_manifest
from osvos_contract.process import RenderResult
from osvos_contract.review import review_path
from osvos_plugin.cli import render as render_cli


def _load(monkeypatch, gui: bool = True):
    """A fresh stand-in nuke and osvos_nuke imported against it."""
    nuke = make_nuke(gui)
    monkeypatch.setitem(sys.modules, "nuke", nuke)
    monkeypatch.delitem(sys.modules, "osvos_nuke", raising=False)
    return nuke, importlib.import_module("osvos_nuke")


@pytest.fixture
def nk(monkeypatch):
    nuke, osvos = _load(monkeypatch)
    yield nuke, osvos
    osvos.stop_all_renders()


@pytest.fixture
def fake_engine(tmp_path) -> Path:
    """An osvos-render that reports one step, then sleeps (for renders that must still be running)."""
    path = tmp_path / "bin" / "osvos-render"
    path.parent.mkdir()
    path.write_text(f"#!{sys.executable}\nimport json, time\n"
                    "print(json.dumps({'stage': 'finetune', 'done': 1, 'total': 99, 'fraction': 0.01}), flush=True)\n"
                    "time.sleep(120)\n")
    path.chmod(0o755)
    return path


def _scene(nuke, osvos, tmp_path, engine, plate="/plates/bear.####.png", first=1001, last=1005, mask=None):
    read = nuke.nodes.Read(file=plate, first=first, last=last, origfirst=first, origlast=last,
                           colorspace="default (sRGB)")
    group = osvos.create_node()
    group.setInput(0, read)
    if mask is None:
        mask = tmp_path / "roto.1001.png"
        mask.write_bytes(b"png")
    group.setInput(1, nuke.nodes.Read(file=str(mask), first=1001, last=1001))
    group["engine"].setValue(str(engine))
    group["output_file"].setValue(str(tmp_path / "out" / "matte.####.exr"))
    return group, read


def _inside(group, name):
    return next(n for n in group.nodes() if n.name() == name)


def _args(cmd):
    return render_cli.build_parser().parse_args(cmd[1:])


# ------------------------------------------------------------------------------------------------ the node


def test_group_wiring_black_outside_errors_shown_and_premultiply_switch(nk):
    nuke, osvos = nk
    group = osvos.create_node()
    read = _inside(group, osvos.MATTE_READ)
    assert read["before"].value() == read["after"].value() == "black"
    assert read["on_error"].value() == "error" and read["raw"].value() is True and read["disable"].value()
    copy, premult = _inside(group, osvos.MATTE_COPY), _inside(group, osvos.MATTE_PREMULT)
    output = next(n for n in group.nodes() if n.Class() == "Output")
    assert output.input(0) is premult and premult.input(0) is copy
    assert copy.input(0).name() == "Source" and copy.input(1) is read
    assert group["premultiply"].value() is True
    assert premult["disable"].expression == f"!parent.premultiply || {osvos.MATTE_COPY}.disable"
    assert {p.name for p in load_manifest().parameters} - {"output_format"} <= set(group.knobs())
    hidden = group["check_frames"]
    assert nuke.INVISIBLE in hidden.flags and nuke.INVISIBLE in group[osvos.MARKER_KNOB].flags
    # the callbacks that stop renders were registered when the module was imported, once
    assert [c[1] for c in nuke.session.calls_named("addOnScriptClose")] == ["stop_all_renders"]
    assert nuke.session.calls_named("addOnDestroy") == [("addOnDestroy", "_on_destroy", "Group")]


def test_render_hands_on_the_reads_full_size_files_trims_and_colour_space(nk, tmp_path, fake_engine, monkeypatch):
    nuke, osvos = nk
    monkeypatch.delenv("OCIO", raising=False)
    group, read = _scene(nuke, osvos, tmp_path, fake_engine, first=1002, last=1004)
    read["proxy"].setValue("/plates/proxy/bear.####.png")
    nuke.root()["proxy"].setValue(True)  # proxy mode: nuke.filename() would name the proxy files
    job = osvos.prepare_job(group)
    args = _args(job.command)
    assert args.source == "/plates/bear.####.png" and args.frames == "1002-1004"
    assert args.input_colorspace == "sRGB"  # the Read's "default (sRGB)"
    assert args.mask == [str(tmp_path / "roto.1001.png")]  # a still: used as is
    assert not nuke.session.calls_named("execute_render")  # nothing rendered for a plain Read
    read["raw"].setValue(True)
    group["frames"].setValue("1003")
    group["input_colorspace"].setValue("ACES - ACEScg")  # the artist's choice wins over the Read's
    args = _args(osvos.prepare_job(group).command)
    assert args.frames == "1003" and args.input_colorspace == "ACES - ACEScg"
    group["input_colorspace"].setValue("auto")
    assert _args(osvos.prepare_job(group).command).input_colorspace == "raw"


def test_the_scripts_ocio_config_goes_to_the_engine(nk, tmp_path, fake_engine, monkeypatch):
    nuke, osvos = nk
    monkeypatch.delenv("OCIO", raising=False)
    group, _ = _scene(nuke, osvos, tmp_path, fake_engine)
    custom, stock = tmp_path / "studio.ocio", tmp_path / "aces.ocio"
    custom.write_text("ocio_profile_version: 2\n")
    stock.write_text("ocio_profile_version: 1\n")
    root = nuke.root()
    root["colorManagement"].setValue("OCIO")
    root["OCIO_config"].setValue("custom")
    root["customOCIOConfigPath"].setValue(str(custom))
    root["OCIOConfigPath"].setValue(str(stock))
    assert osvos.prepare_job(group).env["OCIO"] == str(custom)
    root["OCIO_config"].setValue("aces_1.2")
    assert osvos.prepare_job(group).env["OCIO"] == str(stock)
    monkeypatch.setenv("OCIO", "/studio/config.ocio")  # Nuke runs on $OCIO: the engine gets the same
    assert osvos.prepare_job(group).env["OCIO"] == "/studio/config.ocio"


def test_other_sources_are_prerendered_full_size_one_call_per_run(nk, tmp_path, fake_engine):
    nuke, osvos = nk
    group, _ = _scene(nuke, osvos, tmp_path, fake_engine)
    comp = nuke.nodes.Blur()
    comp.first, comp.last = 1001, 1020
    group.setInput(0, comp)
    group.setInput(1, nuke.nodes.Roto())
    group["frames"].setValue("1001-1003 1010-1020x5")
    group["use_mask_frame"].setValue(True)
    group["mask_frame"].setValue(1002)
    nuke.root()["proxy"].setValue(True)
    nuke.root()["workingSpaceLUT"].setValue("scene_linear")
    job = osvos.prepare_job(group)
    renders = nuke.session.calls_named("execute_render")
    source_write, mask_write = renders[0][1], renders[-1][1]
    assert [r[2:] for r in renders] == [(1001, 1003, 1, False), (1010, 1020, 5, False), (1002, 1002, 1, False)]
    assert nuke.root()["proxy"].value() is True  # restored after the pre-render
    proxy_sets = [c[3] for c in nuke.session.calls_named("setValue") if c[1:3] == ("root", "proxy")]
    assert proxy_sets == [True, False, True, False, True]  # off around each pre-render, back on after
    created = {c[2]: c for c in nuke.session.calls_named("create")}
    assert source_write in created and mask_write in created
    assert {c[1] for c in nuke.session.calls_named("delete")} >= {source_write, mask_write}  # cleaned up
    writes = [c for c in nuke.session.calls_named("setValue") if c[1] in (source_write, mask_write)]
    assert [c[3] for c in writes if c[2] == "datatype"] == ["16 bit half", "32 bit float"]
    assert [c[3] for c in writes if c[2] == "raw"] == [True, True]  # the working space, no view transform
    args = _args(job.command)
    assert args.source == os.path.join(job.tmpdir, "source.%04d.exr") and args.frames == "1001-1003 1010-1020x5"
    assert args.input_colorspace == "scene_linear" and args.mask == [os.path.join(job.tmpdir, "mask.exr")]


@pytest.mark.parametrize("gui", [True, False])
def test_cancelled_or_failed_prerender_is_reported_not_raised(monkeypatch, tmp_path, fake_engine, gui):
    nuke, osvos = _load(monkeypatch, gui)
    group, _ = _scene(nuke, osvos, tmp_path, fake_engine)
    group.setInput(0, nuke.nodes.Blur())
    nuke.session.fail_render = "Cancelled"
    if gui:
        nuke.session.press(group, "render")  # the real button: no traceback escapes
        assert group["status"].value().startswith("cancelled while rendering the Source")
        assert not nuke.session.calls_named("message")  # the artist cancelled: no dialog
    else:
        with pytest.raises(osvos.RenderCancelled):
            osvos.render(group)
    nuke.session.fail_render = "Write3: Can't write /tmp/x.exr: No space left on device"
    if gui:
        nuke.session.press(group, "render")
        assert "No space left on device" in group["status"].value()
        assert "No space left on device" in nuke.session.calls_named("message")[-1][1]
    else:
        with pytest.raises(osvos.OSVOSError, match="No space left"):
            osvos.render(group)
    assert not [n for n in group.nodes() if n.Class() == "Write"]  # the pre-render's Writes are gone
    assert nuke.root()["proxy"].value() is False
    assert not osvos._running


def _wait(predicate, timeout=20.0):
    t0 = time.monotonic()
    while not predicate():
        assert time.monotonic() - t0 < timeout, "timed out"
        time.sleep(0.05)


def _alive(pid: int) -> bool:
    try:
        os.waitpid(pid, os.WNOHANG)  # reap it if it has ended
        os.kill(pid, 0)
    except (ChildProcessError, ProcessLookupError):
        return False
    return True


def test_closing_the_script_stops_the_running_render(nk, tmp_path, fake_engine):
    nuke, osvos = nk
    group, _ = _scene(nuke, osvos, tmp_path, fake_engine)
    nuke.session.press(group, "render")
    job, proc = osvos._running[group.fullName()]
    _wait(lambda: proc.latest is not None)  # osvos-render is up and reporting
    assert _alive(proc.pid)
    nuke.session.close_script()
    _wait(lambda: not _alive(proc.pid))
    assert not osvos._running and job.abandoned
    _wait(lambda: nuke.session.queue)
    nuke.session.pump()  # the watcher's finish: nothing to touch, the script is gone
    assert not os.path.exists(job.tmpdir)


def test_deleting_the_node_stops_its_render(nk, tmp_path, fake_engine):
    nuke, osvos = nk
    group, _ = _scene(nuke, osvos, tmp_path, fake_engine)
    other = osvos.create_node()  # another OSVOS node's render is left alone
    other.setInput(0, group.input(0))
    other.setInput(1, group.input(1))
    other["engine"].setValue(str(fake_engine))
    other["output_file"].setValue(str(tmp_path / "other" / "m.####.exr"))
    nuke.session.press(group, "render")
    nuke.session.press(other, "render")
    _, proc = osvos._running[group.fullName()]
    _, other_proc = osvos._running[other.fullName()]
    nuke.delete(group)
    _wait(lambda: not _alive(proc.pid))
    assert _alive(other_proc.pid) and list(osvos._running) == [other.fullName()]
    nuke.session.press(other, "render")  # a second press while it runs: a message, not a second render
    assert "already rendering" in nuke.session.calls_named("message")[-1][1]


def test_frames_to_check_shown_and_next_frame_button(nk, tmp_path, fake_engine):
    nuke, osvos = nk
    group, _ = _scene(nuke, osvos, tmp_path, fake_engine)
    out = tmp_path / "out"
    out.mkdir()
    for f in range(1001, 1011):
        (out / f"matte.{f}.exr").write_bytes(b"exr")
    pattern = str(out / "matte.%04d.exr")
    review_path(pattern).write_text(json.dumps({
        "version": 1, "summary": "check frames 1004-1005: the matte's area jumps; 1009: the matte is unsure",
        "flagged": [{"reason": "area_jump", "ranges": [[1004, 1005]]},
                    {"reason": "low_confidence", "ranges": [[1009, 1009]]}], "frames": []}))
    job = osvos.Job(group.fullName(), [], pattern, str(tmp_path / "tmpdir"))
    osvos.finish(job, RenderResult(0, False, "done"))
    assert group["frames_to_check"].value().startswith("check frames 1004-1005")
    assert group["status"].value() == "10 mattes, frames 1001-1010"
    read = _inside(group, osvos.MATTE_READ)
    assert (read["first"].value(), read["last"].value()) == (1001, 1010) and not read["disable"].value()
    assert not _inside(group, osvos.MATTE_COPY)["disable"].value()
    nuke.frame(1001)
    seen = []
    for _ in range(3):
        nuke.session.press(group, "next_check")
        seen.append(nuke.frame())
    assert seen == [1004, 1009, 1004]  # wraps round


def test_objects_knob_is_checked_before_anything_runs(nk, tmp_path, fake_engine):
    nuke, osvos = nk
    group, _ = _scene(nuke, osvos, tmp_path, fake_engine)
    group["objects"].setValue("car:rgba.red car:rgba.green")
    nuke.session.press(group, "render")
    assert "given twice" in group["status"].value() and not osvos._running
    group["objects"].setValue("car")
    nuke.session.press(group, "render")
    assert "name:layer.channel" in nuke.session.calls_named("message")[-1][1]


def test_init_py_does_not_add_its_own_folder_to_the_plugin_path():
    """pluginAddPath inside an init.py runs that folder's init.py again (Foundry's docs)."""
    from adapter_paths import NUKE_DIR

    assert "pluginAddPath(" not in (NUKE_DIR / "init.py").read_text().replace("``nuke.pluginAddPath``", "")


# ---------------------------------------------------------------------------------------- a real render


def _write_exr_alpha(path: str, alpha: np.ndarray) -> None:
    import OpenImageIO as oiio

    h, w = alpha.shape
    rgba = np.zeros((h, w, 4), np.float32)
    rgba[..., 3] = alpha
    spec = oiio.ImageSpec(w, h, 4, oiio.FLOAT)
    out = oiio.ImageOutput.create(path)
    assert out.open(path, spec)
    out.write_image(rgba)
    out.close()


def test_two_objects_rendered_in_the_background_mattes_reloaded_as_they_land(
        nk, tmp_path, engine, small_plates, tiny_parent, monkeypatch):
    """The real engine: the Mask's red and green channels as two objects, rendered by the Render button in
    the background; the matte Read is reloaded while frames land, the layers are wired after."""
    nuke, osvos = nk
    monkeypatch.setattr(osvos, "RELOAD_S", 0.0)
    boxes = {"rgba.red": (slice(15, 45), slice(10, 40)), "rgba.green": (slice(10, 50), slice(50, 90))}

    def render_mask(write, frame):
        pick = write.input(0)
        alpha = np.zeros((54, 96), np.float32)
        alpha[boxes[pick["from0"].value()]] = 1.0
        _write_exr_alpha(write["file"].value(), alpha)

    nuke.session.on_render = render_mask
    group, _ = _scene(nuke, osvos, tmp_path, engine[0], plate=str(small_plates / "bear.####.png"))
    group.setInput(1, nuke.nodes.Roto())
    group["objects"].setValue("car:rgba.red bear:rgba.green")
    group["parent"].setValue(str(tiny_parent))
    for knob, value in (("iterations", 3), ("process_size", 64), ("device", "cpu"), ("flip_average", False),
                        ("batch_size", 1), ("keep_model", False)):
        group[knob].setValue(value)
    nuke.frame(1001)
    nuke.session.press(group, "render")
    assert group["status"].value() == "rendering..." and group.fullName() in osvos._running
    lasts = []  # the matte Read's last frame each time the main thread ran something
    t0 = time.monotonic()
    while not any(c == ("main_thread", "finish") for c in nuke.session.calls):
        assert time.monotonic() - t0 < 300, "the render did not finish"
        if nuke.session.pump():
            lasts.append(_inside(group, osvos.MATTE_READ)["last"].value())
        time.sleep(0.05)
    assert group["status"].value() == "5 mattes, frames 1001-1005", group["status"].value()
    ran = [c[1] for c in nuke.session.calls_named("main_thread")]
    assert ran[-1] == "finish" and "show_mattes" in ran[:-1]  # mattes shown before the render ended
    reloads = [i for i, c in enumerate(nuke.session.calls) if c[0] == "execute" and c[2] == "reload"]
    finish_at = nuke.session.calls.index(("main_thread", "finish"))
    assert reloads[0] < finish_at < reloads[-1]  # reloaded as they landed, and once more at the end
    assert lasts[-1] == 1005
    # the engine got both objects and wrote their layers; the group copies them into its output
    import OpenImageIO as oiio

    spec = oiio.ImageInput.open(str(tmp_path / "out" / "matte.1003.exr")).spec()
    assert sorted(spec.channelnames) == ["A", "bear.A", "car.A"]  # EXR keeps channels sorted
    layers = _inside(group, f"{osvos.LAYER_COPY}1")
    assert (layers["from0"].value(), layers["from1"].value()) == ("car.alpha", "bear.alpha")
    assert layers.input(1) is _inside(group, osvos.MATTE_READ)
    assert _inside(group, osvos.MATTE_PREMULT).input(0) is layers
    assert group["frames_to_check"].value()  # the review's summary, or "nothing flagged"
