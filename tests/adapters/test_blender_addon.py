"""The Blender add-on, tested in real Blender (bpy from PyPI in .venv-blender, headless).

blender_driver.py runs inside Blender: it installs the add-on zip as an extension, builds a scene (an
image-sequence movie clip starting at scene frame 11, a Mask datablock), runs the operator, which runs the
real osvos-render with a tiny parent network, and renders the compositor. The checks happen here, in the
engine's venv, with OpenImageIO reading what Blender and the engine wrote.
"""

from __future__ import annotations

import ast
import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import cv2
import numpy as np
import OpenImageIO as oiio
import pytest
from adapter_paths import BLENDER_DIR, CONTRACT_DIR, REPO, blender_env

DRIVER = Path(__file__).with_name("blender_driver.py")
CLIP_START = 11  # scene frame of plate 1001: scene frames and file numbers differ on purpose
# Each run sets core_threshold 0: two steps of the tiny untrained parent are nowhere 0.95 sure (the Core Threshold).


def _imported_modules(source: str) -> set[str]:
    """Top-level modules a source file imports (relative imports of the add-on's own modules left out)."""
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
    return found


def _read(path) -> tuple[tuple[str, ...], np.ndarray]:
    inp = oiio.ImageInput.open(str(path))
    assert inp is not None, oiio.geterror()
    try:
        return tuple(inp.spec().channelnames), inp.read_image("float")
    finally:
        inp.close()


def _run_driver(blender_python, tmp_path, cfg: dict) -> dict:
    cfg = {**cfg, "result": str(tmp_path / "result.json"), "out": str(tmp_path / "out")}
    Path(cfg["out"]).mkdir(exist_ok=True)
    config = tmp_path / "config.json"
    config.write_text(json.dumps(cfg))
    proc = subprocess.run([str(blender_python), str(DRIVER), str(config)], capture_output=True, text=True,
                          timeout=900, env=blender_env(tmp_path / "blender_user"), cwd=tmp_path)
    assert Path(cfg["result"]).is_file(), f"the Blender driver wrote no result:\n{proc.stdout}\n{proc.stderr}"
    result = json.loads(Path(cfg["result"]).read_text())
    assert "traceback" not in result, result["traceback"] + "\n" + proc.stdout[-3000:]
    return result


CONTRACT_MODULES = ("manifest", "patterns", "process", "protocol")


def test_addon_zip_is_installable_and_self_contained(addon_zip):
    with zipfile.ZipFile(addon_zip) as zf:
        listed = zf.namelist()
        names = set(listed)
        init = zf.read("osvos_matte/__init__.py").decode()
        manifest = zf.read("osvos_matte/blender_manifest.toml").decode()
        bundled = zf.read("osvos_matte/osvos_contract/plugin.json")
        sources = {n: zf.read(n).decode() for n in names if n.endswith(".py")}
    assert {"osvos_matte/__init__.py", "osvos_matte/operators.py", "osvos_matte/panels.py",
            "osvos_matte/osvos_contract/__init__.py"} <= names
    assert {f"osvos_matte/osvos_contract/{m}.py" for m in CONTRACT_MODULES} <= names
    assert "osvos_matte/build_zip.py" not in names and len(listed) == len(names)
    assert "bl_info" in init and "def register" in init and "def unregister" in init
    assert 'id = "osvos_matte"' in manifest and 'type = "add-on"' in manifest
    import tomllib

    # Blender's own validator (extension build, the extensions platform): each permission's reason is at
    # most 64 characters and does not end in punctuation
    for what, reason in tomllib.loads(manifest)["permissions"].items():
        assert len(reason) <= 64 and reason[-1].isalnum(), (what, reason)
    # plugin.json once, inside the contract (where its reader looks first): the repository's, not the link
    assert bundled == (REPO / "plugin.json").read_bytes()
    assert [n for n in names if n.endswith("plugin.json")] == ["osvos_matte/osvos_contract/plugin.json"]
    for name, text in sources.items():  # bpy alone (and the standard library): the engine runs out of process
        outside = _imported_modules(text) - set(sys.stdlib_module_names) - {"bpy"}
        assert not outside, f"{name} imports {sorted(outside)}"
    own = {f"osvos_matte/{p.name}" for p in BLENDER_DIR.glob("*.py") if p.name != "build_zip.py"}
    contract = {f"osvos_matte/osvos_contract/{p.relative_to(CONTRACT_DIR).as_posix()}": p
                for p in CONTRACT_DIR.rglob("*.py") if "__pycache__" not in p.parts}
    assert sorted(own | set(contract)) == sorted(sources)
    for name, path in contract.items():  # bundled unchanged from the repository's osvos_contract
        assert sources[name] == path.read_text(), name
    for name in own:  # the add-on reaches the contract as its subpackage, never by absolute name
        assert "osvos_contract" not in _imported_modules(sources[name]), name


SOURCE_TREE_CHECK = """
import importlib, json, sys
import bpy
import addon_utils  # importable once bpy is
addon_utils.enable("osvos_matte", default_set=True, handle_error=None)
operators = importlib.import_module("osvos_matte.operators")
found = {"registered": hasattr(bpy.types, "OSVOS_OT_render_matte"),
         "modules": {n: sys.modules["osvos_matte.osvos_contract." + n].__file__
                     for n in ("manifest", "patterns", "process", "protocol")},
         "absolute": "osvos_contract" in sys.modules,
         "manifest": str(operators.load_manifest().path)}
addon_utils.disable("osvos_matte")
found["unregistered"] = not hasattr(bpy.types, "OSVOS_OT_render_matte")
print("RESULT " + json.dumps(found))
"""


def test_addon_zip_passes_blenders_own_validator(blender_python, addon_zip):
    """``blender --command extension validate``, run from the installed bpy: what extension build and the
    extensions platform check (install from disk is more lenient)."""
    found = subprocess.run([str(blender_python), "-c", "import bpy, pathlib; print(pathlib.Path(bpy.__file__).parent)"],
                           capture_output=True, text=True, check=True).stdout.strip()
    tools = [p for p in (Path(found).parents[1] / "addons_core" / "bl_pkg" / "cli" / "blender_ext.py",) if p.is_file()]
    assert tools, f"no extension validator under {found}"
    run = subprocess.run([str(blender_python), str(tools[-1]), "validate", str(addon_zip)], capture_output=True,
                         text=True, timeout=120)
    assert run.returncode == 0 and "Success" in run.stdout, run.stdout + run.stderr


def test_addon_runs_from_the_source_tree(blender_python, tmp_path):
    """The add-on folder linked into Blender's add-ons (development): the repository's osvos_contract is
    its subpackage, plugin.json comes from the checkout."""
    addons = tmp_path / "blender_user" / "scripts" / "addons"
    addons.mkdir(parents=True)
    (addons / "osvos_matte").symlink_to(BLENDER_DIR, target_is_directory=True)
    proc = subprocess.run([str(blender_python), "-c", SOURCE_TREE_CHECK], capture_output=True, text=True,
                          timeout=300, env=blender_env(tmp_path / "blender_user"), cwd=tmp_path)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    assert lines, proc.stdout[-3000:] + proc.stderr[-3000:]
    found = json.loads(lines[-1][len("RESULT "):])
    assert found["registered"] and found["unregistered"]
    assert {n: Path(f).resolve() for n, f in found["modules"].items()} == {
        n: CONTRACT_DIR / f"{n}.py" for n in CONTRACT_MODULES}
    assert not found["absolute"]  # a subpackage of the add-on, not a second top-level copy
    assert Path(found["manifest"]).resolve() == REPO / "plugin.json"


@pytest.mark.slow
def test_clip_and_mask_to_mattes_and_compositor_alpha(blender_python, addon_zip, engine, tiny_parent,
                                                      small_plates, tmp_path):
    result = _run_driver(blender_python, tmp_path, {
        "scenario": "clip", "zip": str(addon_zip), "engine": engine[0], "parent": str(tiny_parent),
        "blend": str(tmp_path / "shot.blend"), "plate_first": str(small_plates / "bear.1001.png"),
        "clip_start": CLIP_START, "mask_rect": [0.3, 0.3, 0.7, 0.6], "mask_scene_frame": CLIP_START + 1,
        "params": {"iterations": 2, "core_threshold": 0.0, "process_size": 64, "soft_matte": True,
                   "frames": "1002-1004",
                   "device": "cpu", "large_object_scale": 1.0},  # the untrained heads' 2 steps: kept at 64 px
        "render_frames": [CLIP_START + 1, CLIP_START + 3], "size": [96, 54],
    })
    install = result["install"]
    assert install["enabled"] and install["scene_settings"]
    assert install["registered"] == ["OSVOS_OT_render_matte", "OSVOS_OT_cancel_render", "OSVOS_OT_farm_job",
                                     "CLIP_PT_osvos", "NODE_PT_osvos"]
    run = result["clip"]

    # The command line: the clip's files as a pattern, scene frame 12 -> plate frame 1002.
    cmd = run["command"]
    assert cmd[1] == str(small_plates / "bear.%04d.png")
    assert cmd[cmd.index("--mask-frame") + 1] == "1002" and run["mask_file_frame"] == 1002
    assert cmd[cmd.index("--frames") + 1] == "1002-1004" and cmd[cmd.index("--parent") + 1] == str(tiny_parent)
    assert cmd[-2:] == ["--progress", "json"]
    # Only what the test changed reaches the command line: every other property holds plugin.json's default.
    assert {c for c in cmd if c.startswith("--")} == {
        "--mask", "--output", "--parent", "--frames", "--iterations", "--process-size", "--soft-matte",
        "--device", "--mask-frame", "--progress", "--input-colorspace", "--large-object-scale", "--core-threshold"}
    # The clip's colour space, named in Blender's OCIO config, which the engine is handed as $OCIO.
    assert cmd[cmd.index("--input-colorspace") + 1] == "sRGB"
    assert run["env_ocio"].endswith("config.ocio") and Path(run["env_ocio"]).is_file()

    # The Mask datablock rasterised at the plate's size: the drawn box, hard-edged, in RGB and alpha.
    channels, raster = _read(run["mask_raster"])
    assert channels == ("R", "G", "B", "A") and raster.shape == (54, 96, 4)
    covered = raster[..., 3] > 0.5
    assert 0.18 < covered.mean() < 0.25
    cols = np.where(covered.any(axis=0))[0]
    assert abs(cols[0] - 0.3 * 96) <= 2 and abs(cols[-1] - 0.7 * 96) <= 2

    # The mattes: next to the blend file, numbered like the plate, only the frames asked for.
    matte_dir = tmp_path / "osvos"
    assert run["output_pattern"] == str(matte_dir / "bear_matte.%04d.exr")
    assert sorted(p.name for p in matte_dir.glob("*.exr")) == [f"bear_matte.{n}.exr" for n in (1002, 1003, 1004)]
    assert run["operator"] == ["FINISHED"]
    assert any(m.startswith("Fine-tuning 2/2") for m in result["log"])
    assert any(m.startswith("Inferring 3/3") for m in result["log"])

    # The compositor: an Image node of the sequence, mapped so scene frame f shows the plate's matte.
    # The compositor's result node: Blender 5.0's Group Output, the Composite node of 4.2 and 4.5.
    assert run["output_node"] == ("Group Output" if result["version"][0] >= 5 else "Composite")
    assert run["nodes"] == sorted([run["output_node"], "OSVOS Matte", "OSVOS Set Alpha", "OSVOS Source"])
    assert run["matte_node"] == {"frame_start": CLIP_START + 1, "frame_offset": 1001, "frame_duration": 3,
                                 "image": str(matte_dir / "bear_matte.1002.exr"), "source": "SEQUENCE"}
    assert run["output_linked_from"] == ["OSVOS Set Alpha"]
    mattes = {n: _read(matte_dir / f"bear_matte.{n}.exr") for n in (1002, 1004)}
    assert all(ch == ("A",) for ch, _ in mattes.values())
    assert np.abs(mattes[1002][1] - mattes[1004][1]).max() > 0.02, "frames too alike to check the mapping"
    for scene_frame, plate_frame in ((CLIP_START + 1, 1002), (CLIP_START + 3, 1004)):
        channels, comp = _read(run["renders"][str(scene_frame)])
        matte = mattes[plate_frame][1][..., 0]
        assert channels == ("R", "G", "B", "A") and comp.shape[:2] == matte.shape
        assert matte.std() > 0.01
        np.testing.assert_allclose(comp[..., 3], matte, atol=2e-3)
        plate = cv2.cvtColor(cv2.imread(str(small_plates / f"bear.{plate_frame}.png")), cv2.COLOR_BGR2RGB)
        assert np.corrcoef(comp[..., :3].sum(-1).ravel(), (plate.sum(-1) * matte).ravel())[0, 1] > 0.9
    other = mattes[1004][1][..., 0]
    _, comp12 = _read(run["renders"][str(CLIP_START + 1)])
    assert np.abs(comp12[..., 3] - other).max() > 0.02  # 10x the tolerance of the right frame above

    # Rendering again keeps the frames (resume) and reuses the nodes; disabling unregisters everything.
    assert run["nodes_after_rerun"] == run["nodes"]
    assert result["unregistered"]


@pytest.mark.slow
def test_render_button_progress_esc_landing_and_cancel(blender_python, addon_zip, engine, tiny_parent, small_plates,
                                                       tmp_path):
    """The button's (modal) path, driven event by event as Blender's window manager would."""
    result = _run_driver(blender_python, tmp_path, {
        "scenario": "modal", "zip": str(addon_zip), "engine": engine[0], "parent": str(tiny_parent),
        "blend": str(tmp_path / "shot.blend"), "plate_first": str(small_plates / "bear.1001.png"),
        "clip_start": CLIP_START, "mask_rect": [0.3, 0.3, 0.7, 0.6], "mask_scene_frame": CLIP_START + 1,
        "params": {"iterations": 2, "core_threshold": 0.0, "process_size": 64, "frames": "1002-1004", "device": "cpu"},
    })
    run = result["modal"]
    assert run["undo"] and run["status_bar"]  # one undo step; progress drawn in the status bar
    assert run["started"] == {"running": True, "active": True}
    # Esc released, Esc pressed outside the editor, a mouse move: all passed on to Blender, render untouched
    assert run["esc"] == [["PASS_THROUGH"]] * 3
    full = run["full"]
    assert full["outcome"] == ["FINISHED"] and not full["cancelling"]
    assert not full["running"] and not full["active"]
    assert any(s.startswith("Fine-tuning") and s.endswith("(Esc to cancel)") for s in full["statuses"])
    assert any(s.startswith("Inferring") for s in full["statuses"])
    matte_dir = tmp_path / "osvos"
    assert sorted(p.name for p in matte_dir.glob("*.exr")) == [f"bear_matte.{n}.exr" for n in (1002, 1003, 1004)]
    level, message = run["reports"][-1]
    assert "3 mattes in" in message and "wired into the compositor" in message
    # the frames-to-check sentence of the engine's report, in the panel and in the message
    review = json.loads((matte_dir / "bear_matte.osvos-review.json").read_text())["summary"]
    assert full["review"] == review and (review in message if review else level == ["INFO"])
    # the mattes shown as they land: nothing to show, then one frame, then three, from the folder they land in
    assert run["landed_none"] is False
    landing = str(tmp_path / "out" / "landing" / "bear_matte.1002.exr")
    assert run["landing"] == [[1, landing], [2, landing], [3, landing]]
    # Esc over the editor while fine-tuning: cancelled after the frames in flight, nothing lost
    cancel = run["cancel"]
    assert cancel["esc"] == ["RUNNING_MODAL"] and cancel["status"].startswith("Cancelling")
    assert cancel["outcome"] == ["CANCELLED"] and not cancel["running"]
    assert cancel["reports"][-1][0] == ["WARNING"] and "cancelled" in cancel["reports"][-1][1]
    assert sorted(p.name for p in matte_dir.glob("*.exr")) == [f"bear_matte.{n}.exr" for n in (1002, 1003, 1004)]


@pytest.mark.slow
def test_mask_layers_are_objects_with_a_matte_layer_and_composite_each(blender_python, addon_zip, engine,
                                                                       tiny_parent, small_plates, tmp_path):
    result = _run_driver(blender_python, tmp_path, {
        "scenario": "objects", "zip": str(addon_zip), "engine": engine[0], "parent": str(tiny_parent),
        "blend": str(tmp_path / "shot.blend"), "plate_first": str(small_plates / "bear.1001.png"),
        "clip_start": CLIP_START, "mask_rect": [0.1, 0.3, 0.4, 0.6], "second_rect": [0.6, 0.35, 0.9, 0.55],
        "mask_scene_frame": CLIP_START + 1,
        # fp32: two steps from an untrained parent leave the objects' probabilities a hair apart, which int8
        # (``auto`` on x86 CPUs) rounds together; what is checked here is the layers, not the precision
        "params": {"iterations": 2, "core_threshold": 0.0, "process_size": 64, "soft_matte": True,
                   "frames": "1002-1003", "device": "cpu",
                   "precision": "fp32"},
        "render_frames": [CLIP_START + 2], "size": [96, 54],
    })
    run = result["objects"]
    # One object per layer that renders, named after it for the engine; the hidden layer left out and still hidden
    assert run["objects"] == ["hero", "side_prop"]
    cmd = run["command"]
    assert "--mask" not in cmd
    assert [cmd[i + 1] for i, c in enumerate(cmd) if c == "--object"] == ["hero", "side_prop"]
    assert run["layers_restored"] == [False, False, True]
    # Each layer rasterised alone: its own rectangle, nothing of the other
    for name, (x0, x1) in {"hero": (0.1, 0.4), "side_prop": (0.6, 0.9)}.items():
        _, raster = _read(run["rasters"][name])
        cols = np.where((raster[..., 3] > 0.5).any(axis=0))[0]
        assert abs(cols[0] - x0 * 96) <= 2 and abs(cols[-1] - x1 * 96) <= 2, name
    # A farm job takes one object: refused, saying what to do
    assert run["farm"].startswith("RuntimeError: Error: OSVOS: a farm job takes one object")
    assert run["operator"] == ["FINISHED"]
    channels, matte = _read(tmp_path / "osvos" / "bear_matte.1003.exr")
    assert set(channels) == {"A", "hero.A", "side_prop.A"}
    # A Set Alpha per object, fed by that object's layer; its composite's alpha is that layer
    assert {"OSVOS hero", "OSVOS side_prop", "OSVOS Set Alpha", "OSVOS Matte"} <= set(run["nodes"])
    assert run["side_prop_links"] == ["OSVOS Matte:side_prop"]
    _, comp = _read(run["renders"][str(CLIP_START + 2)])
    layer = matte[..., channels.index("side_prop.A")]
    assert np.abs(layer - matte[..., channels.index("hero.A")]).max() > 0.02, "layers too alike to tell apart"
    np.testing.assert_allclose(comp[..., 3], layer, atol=2e-3)


@pytest.mark.slow
def test_farm_job_button_writes_a_bundle_that_runs_and_submits(blender_python, addon_zip, engine, tiny_parent,
                                                               small_plates, tmp_path):
    result = _run_driver(blender_python, tmp_path, {
        "scenario": "farm", "zip": str(addon_zip), "engine": engine[0], "parent": str(tiny_parent),
        "blend": str(tmp_path / "shot.blend"), "plate_first": str(small_plates / "bear.1001.png"),
        "clip_start": CLIP_START, "mask_rect": [0.3, 0.3, 0.7, 0.6], "mask_scene_frame": CLIP_START + 1,
        "params": {"iterations": 2, "core_threshold": 0.0, "process_size": 64, "frames": "1002-1004", "device": "cpu"},
    })
    run = result["farm"]
    assert run["written"] == ["FINISHED"] and run["submitted"] == ["FINISHED"]
    bundle = tmp_path / "osvos" / ".osvos" / "Scene.job"
    values = json.loads((bundle / "job_parameters.json").read_text())
    # the same render the Render Matte button runs: the clip's files, scene frame 12 -> plate frame 1002
    assert values["PlateDir"] == str(small_plates) and values["PlateName"] == "bear.%04d.png"
    assert values["MaskFrame"] == 1002 and values["Frames"] == "1002-1004"
    assert values["OutputDir"] == str(tmp_path / "osvos") and values["OutputName"] == "bear_matte.%04d.exr"
    assert values["Iterations"] == 2 and values["ProcessSize"] == 64 and values["Device"] == "cpu"
    # the rasterised mask is kept beside the mattes (the render's temporary copy is gone)
    assert values["MaskFile"] == str(tmp_path / "osvos" / ".osvos" / "Scene.mask.exr")
    channels, raster = _read(values["MaskFile"])
    assert 0.18 < (raster[..., 3] > 0.5).mean() < 0.25
    assert (tmp_path / "out" / "deadline-args.txt").read_text().split() == ["bundle", "submit", "--yes", str(bundle)]
    # the bundle runs: openjd renders the frames the button would have
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
           "OSVOS_MODELS": str(tiny_parent.parent)}
    shutil.copy(tiny_parent, tiny_parent.parent / "osvos-parent.safetensors")
    proc = subprocess.run([str(Path(sys.executable).parent / "openjd"), "run", str(bundle / "template.json"), "-p",
                           f"file://{bundle / 'job_parameters.json'}", "--run-dependencies"],
                          capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert sorted(p.name for p in (tmp_path / "osvos").glob("*.exr")) == [
        f"bear_matte.{n}.exr" for n in (1002, 1003, 1004)]


@pytest.mark.slow
def test_image_sequence_and_painted_image_to_chosen_folder(blender_python, addon_zip, engine, tiny_parent,
                                                           small_plates, small_mask, tmp_path):
    out_dir = tmp_path / "mattes"
    result = _run_driver(blender_python, tmp_path, {
        "scenario": "image", "zip": str(addon_zip), "engine": engine[0], "parent": str(tiny_parent),
        "plate_first": str(small_plates / "bear.1001.png"), "mask_image": str(small_mask),
        "output_dir": str(out_dir), "current_frame": 1003,
        "params": {"iterations": 2, "core_threshold": 0.0, "process_size": 64, "soft_matte": True,
                   "edge_softness": 0.0, "device": "cpu"},
        "render_frames": [1003], "size": [96, 54],
    })
    run = result["image"]
    cmd = run["command"]
    assert cmd[cmd.index("--mask") + 1] == str(small_mask)  # a saved, unchanged image is used as is
    assert cmd[cmd.index("--mask-frame") + 1] == "1003"  # image file numbers are scene frames
    assert "--frames" not in cmd  # empty: every frame on disk
    assert run["operator"] == ["FINISHED"]
    assert sorted(p.name for p in out_dir.glob("*.exr")) == [f"bear_matte.{n}.exr" for n in range(1001, 1006)]
    assert run["source_node"] == {"type": "CompositorNodeImage", "frame_start": 1001, "frame_offset": 1000}
    _, comp = _read(run["renders"]["1003"])
    _, matte = _read(out_dir / "bear_matte.1003.exr")
    assert matte.std() > 0.01
    np.testing.assert_allclose(comp[..., 3], matte[..., 0], atol=2e-3)


def _movie(path: Path, plates: Path) -> Path | None:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 24, (96, 54))
    if not writer.isOpened():
        return None
    for n in range(1001, 1004):
        writer.write(cv2.imread(str(plates / f"bear.{n}.png")))
    writer.release()
    return path if path.is_file() and path.stat().st_size > 0 else None


def test_setup_errors_stop_before_the_engine_runs(blender_python, addon_zip, small_plates, tmp_path):
    movie = _movie(tmp_path / "plate.avi", small_plates)
    result = _run_driver(blender_python, tmp_path, {
        "scenario": "errors", "zip": str(addon_zip), "plate_first": str(small_plates / "bear.1001.png"),
        "movie": str(movie) if movie else "",
    })
    found = result["errors"]
    assert found["no_clip"].startswith("InputError: Choose the plate")
    assert found["unsaved_blend"].startswith("InputError: Save the blend file first")
    assert found["no_engine"].startswith("EngineNotFound: osvos-render not found")
    assert "no-such-osvos-render" in found["no_engine"]
    assert found["operator_no_engine"].startswith("RuntimeError: Error: OSVOS: osvos-render not found")
    if movie is not None:
        assert found["movie_file"].startswith("InputError: Clip 'plate.avi' is a movie file")
