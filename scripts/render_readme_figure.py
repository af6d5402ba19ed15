"""The README picture of the Blender adapter: plate | matte | composite, rendered through the add-on.

Run with the engine's venv (it builds the add-on zip, starts Blender headless, and assembles the picture
with OpenCV and OpenImageIO):

    .venv/bin/python scripts/render_readme_figure.py            # writes docs/blender_result.png

What happens, as an artist would do it in Blender: this script starts ``.venv-blender/bin/python`` (bpy,
headless, its user folders in a temporary directory, so your own Blender settings are left alone) on this
same file. There the add-on zip is installed as an extension; a scene gets the demo plate
(``osvos_plugin/demo/bear/plate/bear.####.jpg``, frames 1001-1020) as a Movie Clip and the demo's
ground-truth mask of frame 1001 as the painted image; the add-on's operator runs the real ``osvos-render``
(the shipped parent network unless ``--parent``), wires the mattes into the compositor, and the scene is
rendered at ``--frame`` with that wiring laid over a checkerboard (an Alpha Over node under the add-on's
Set Alpha). The engine's matte of that frame, the plate and Blender's composite are then put side by side.

Quick check without the shipped parent: ``--parent tiny.safetensors --iterations 5 --process-size 128``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEMO = REPO / "osvos_plugin" / "demo" / "bear"
PLATE_FIRST = DEMO / "plate" / "bear.1001.jpg"
PAINTED = DEMO / "truth" / "bear.1001.png"
PAINTED_FRAME = 1001
FIRST, LAST = 1001, 1020
BLENDER_PYTHON = REPO / ".venv-blender" / "bin" / "python"
BUILD_ZIP = REPO / "host_adapters" / "blender" / "build_zip.py"
ADDON = "bl_ext.user_default.osvos_matte"
PANEL_WIDTH = 427


# ------------------------------------------------------------------------------------- inside Blender


def blender_side(config_path: str) -> int:
    """Runs in .venv-blender's Python: bpy and the standard library only."""
    import importlib
    import logging
    import traceback

    import bpy

    cfg = json.loads(Path(config_path).read_text())
    logging.basicConfig(level=logging.INFO, format="blender: %(message)s", stream=sys.stdout, force=True)
    result: dict = {}
    try:
        installed = bpy.ops.extensions.package_install_files(filepath=cfg["zip"], repo="user_default",
                                                             enable_on_install=True)
        if ADDON not in bpy.context.preferences.addons:
            raise RuntimeError(f"the add-on did not enable after installing {cfg['zip']}: {sorted(installed)}")
        prefs = bpy.context.preferences.addons[ADDON].preferences
        prefs.engine_path = cfg["engine"]
        prefs.parent_model = cfg["parent"]

        scene = bpy.context.scene
        scene.render.engine = "BLENDER_WORKBENCH"  # nothing 3D is shown: the compositor makes the picture
        clip = bpy.data.movieclips.load(cfg["plate_first"])
        clip.frame_start = FIRST  # scene frames are the plate's file numbers
        scene.frame_start, scene.frame_end = FIRST, LAST
        settings = scene.osvos
        settings.source_type = "CLIP"
        settings.clip = clip
        settings.mask_type = "IMAGE"
        settings.mask_image = bpy.data.images.load(cfg["painted"])
        settings.use_mask_frame = True
        settings.mask_frame = PAINTED_FRAME
        settings.output_dir = cfg["matte_dir"]
        settings.overwrite = True
        for name, value in cfg["params"].items():
            setattr(settings, name, value)
        result["operator"] = sorted(bpy.ops.osvos.render_matte())

        # The add-on's wiring (clip -> Set Alpha <- matte), laid over a background for the picture.
        compat = importlib.import_module(ADDON + ".compat")  # the compositor of whichever Blender runs this
        tree, _ = compat.compositor_tree(scene, create=False)
        set_alpha = tree.nodes["OSVOS Set Alpha"]
        over = tree.nodes.new("CompositorNodeAlphaOver")
        over.location = (600, 150)
        if cfg["background_image"]:
            back = tree.nodes.new("CompositorNodeImage")
            back.image = bpy.data.images.load(cfg["background_image"])
            back.location = (300, 300)
            tree.links.new(back.outputs["Image"], over.inputs["Background"])
        else:
            over.inputs["Background"].default_value = (*cfg["background_rgb"], 1.0)
        tree.links.new(set_alpha.outputs["Image"], over.inputs["Foreground"])
        tree.links.new(over.outputs["Image"], compat.output_node(tree).inputs[0])
        result["nodes"] = sorted(n.name for n in tree.nodes)

        r = scene.render
        r.resolution_x, r.resolution_y = clip.size
        r.resolution_percentage = 100
        r.image_settings.file_format = "PNG"
        r.image_settings.color_mode = "RGB"
        r.image_settings.color_depth = "8"
        scene.view_settings.view_transform = "Standard"  # sRGB plate in, sRGB picture out
        scene.frame_set(cfg["frame"])
        r.filepath = cfg["composite"]
        bpy.ops.render.render(write_still=True)
        result["composite"] = r.filepath
        importlib.import_module("addon_utils").disable(ADDON)
    except Exception:
        result["traceback"] = traceback.format_exc()
    Path(cfg["result"]).write_text(json.dumps(result, indent=1))
    return 0


# ------------------------------------------------------------------------------------ outside Blender


def engine_command() -> Path:
    beside = Path(sys.executable).with_name("osvos-render")
    return beside if beside.is_file() else REPO / ".venv" / "bin" / "osvos-render"


def check_setup(args: argparse.Namespace, engine: Path) -> None:
    if not BLENDER_PYTHON.is_file():
        sys.exit(f"{BLENDER_PYTHON} is missing: run `make blender-setup` (scripts/blender_setup.sh)")
    if not engine.is_file():
        sys.exit(f"{engine} is missing: run `make setup`")
    if args.parent is None:
        from osvos_plugin.models import default_parent_path

        try:
            default_parent_path()
        except Exception as e:  # the shipped parent is not there yet: say so before Blender starts
            sys.exit(f"no shipped parent network: {e}\n(pass --parent PATH to use another one)")
    elif not args.parent.is_file():
        sys.exit(f"--parent {args.parent}: no such file")
    if not FIRST <= args.frame <= LAST:
        sys.exit(f"--frame must be in {FIRST}-{LAST} (the demo plate)")


def checkerboard(path: Path, width: int, height: int, square: int = 24) -> Path:
    import cv2
    import numpy as np

    y, x = np.mgrid[:height, :width]
    board = np.where(((x // square) + (y // square)) % 2 == 0, 200, 140).astype(np.uint8)
    cv2.imwrite(str(path), cv2.merge([board, board, board]))
    return path


def background(text: str) -> str | tuple[float, float, float]:
    """'checker', or #RRGGBB (sRGB) as scene-linear floats for the compositor."""
    if text == "checker":
        return text
    digits = text.lstrip("#")
    try:
        srgb = [int(digits[i:i + 2], 16) / 255 for i in (0, 2, 4)] if len(digits) == 6 else None
    except ValueError:
        srgb = None
    if srgb is None:
        raise argparse.ArgumentTypeError(f"{text!r}: give 'checker' or a colour as #RRGGBB")
    return tuple(c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in srgb)


def read_matte(path: Path):
    import numpy as np
    import OpenImageIO as oiio

    inp = oiio.ImageInput.open(str(path))
    if inp is None:
        raise RuntimeError(f"cannot read the matte {path}: {oiio.geterror()}")
    try:
        pixels = inp.read_image("float")
    finally:
        inp.close()
    return (np.clip(pixels[..., 0], 0, 1) * 255 + 0.5).astype(np.uint8)


def panel(image, label: str):
    """``image`` (BGR or grey, uint8) downscaled to PANEL_WIDTH with ``label`` in its top-left corner."""
    import cv2

    if image.ndim == 2:
        image = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    h, w = image.shape[:2]
    out = cv2.resize(image, (PANEL_WIDTH, round(h * PANEL_WIDTH / w)), interpolation=cv2.INTER_AREA)
    font, scale, thick = cv2.FONT_HERSHEY_SIMPLEX, 0.45, 1
    (tw, th), base = cv2.getTextSize(label, font, scale, thick)
    box = out[4:4 + th + base + 8, 4:4 + tw + 10]
    box[:] = (box * 0.35).astype(out.dtype)  # a darkened box behind the label, readable on any plate
    cv2.putText(out, label, (9, 4 + th + 4), font, scale, (255, 255, 255), thick, cv2.LINE_AA)
    return out


def assemble(plate_path: Path, matte_path: Path, composite_path: Path, frame: int, out: Path) -> Path:
    import cv2
    import numpy as np

    plate = cv2.imread(str(plate_path))
    composite = cv2.imread(str(composite_path))
    if composite is None:
        raise RuntimeError(f"Blender wrote no composite at {composite_path}")
    panels = [panel(plate, f"plate  {frame}"),
              panel(read_matte(matte_path), f"OSVOS matte  {frame}  (painted: {PAINTED_FRAME})"),
              panel(composite, f"Blender composite  {frame}")]
    gap = np.full((panels[0].shape[0], 4, 3), 255, np.uint8)
    row = np.hstack([panels[0], gap, panels[1], gap, panels[2]])
    out.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(out), row):
        raise RuntimeError(f"cannot write {out}")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frame", type=int, default=1015, help="the frame shown (default 1015)")
    parser.add_argument("--iterations", type=int, default=None, help="fine-tuning steps (default: plugin.json's)")
    parser.add_argument("--process-size", type=int, default=None, help="processing size (default: plugin.json's)")
    parser.add_argument("--parent", type=Path, default=None,
                        help="parent network (default: the shipped models/osvos-parent.safetensors)")
    parser.add_argument("--background", type=background, default="checker",
                        help="'checker' (default) or a colour as #RRGGBB")
    parser.add_argument("--output", type=Path, default=REPO / "docs" / "blender_result.png",
                        help="the picture to write (default docs/blender_result.png)")
    parser.add_argument("--keep", action="store_true", help="keep the working folder (mattes, composite, config)")
    args = parser.parse_args(argv)
    engine = engine_command()
    check_setup(args, engine)
    background_rgb = None if args.background == "checker" else args.background

    sys.path.insert(0, str(BUILD_ZIP.parent))
    import build_zip

    work = Path(tempfile.mkdtemp(prefix="osvos-readme-figure-"))
    try:
        params = {}
        if args.iterations is not None:
            params["iterations"] = args.iterations
        if args.process_size is not None:
            params["process_size"] = args.process_size
        import cv2

        height, width = cv2.imread(str(PLATE_FIRST)).shape[:2]
        cfg = {
            "zip": str(build_zip.build(work / "osvos_matte.zip")), "engine": str(engine),
            "parent": str(args.parent.resolve()) if args.parent else "",
            "plate_first": str(PLATE_FIRST), "painted": str(PAINTED), "matte_dir": str(work / "mattes"),
            "params": params, "frame": args.frame, "composite": str(work / f"composite.{args.frame}.png"),
            "background_image": "" if background_rgb else str(checkerboard(work / "checker.png", width, height)),
            "background_rgb": background_rgb, "result": str(work / "result.json"),
        }
        config = work / "config.json"
        config.write_text(json.dumps(cfg, indent=1))
        env = dict(os.environ, BLENDER_USER_RESOURCES=str(work / "blender_user"))
        env.pop("PYTHONPATH", None)
        print(f"Blender: rendering mattes for {FIRST}-{LAST} and the composite of {args.frame} (work: {work})",
              flush=True)
        subprocess.run([str(BLENDER_PYTHON), str(Path(__file__).resolve()), "--blender-side", str(config)],
                       env=env, cwd=work, check=False)
        result_file = Path(cfg["result"])
        if not result_file.is_file():
            sys.exit("the Blender side wrote no result (see its output above)")
        result = json.loads(result_file.read_text())
        if "traceback" in result:
            sys.exit("Blender side failed:\n" + result["traceback"])
        if result.get("operator") != ["FINISHED"]:
            sys.exit(f"the add-on's operator returned {result.get('operator')}")
        matte = work / "mattes" / f"bear_matte.{args.frame}.exr"
        out = assemble(DEMO / "plate" / f"bear.{args.frame}.jpg", matte, Path(result["composite"]), args.frame,
                       args.output)
        print(out)
    finally:
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    if "--blender-side" in sys.argv:
        sys.exit(blender_side(sys.argv[sys.argv.index("--blender-side") + 1]))
    sys.exit(main())
