"""What osvos-render is given from a Blender scene: the plate sequence and the painted mask as files.

Frame numbers: osvos-render numbers mattes like the plate files. Blender shows plate file
``first + (f - clip.frame_start) + clip.frame_offset`` at scene frame ``f`` (the number in the clip's
file name is ``first``), so :class:`SourcePlates` converts both ways. An Image datablock has no frame
start of its own: its file numbers are taken as scene frames.

A Mask datablock is rasterised headless by rendering a throw-away scene whose compositor holds one Mask
node, at the plate's size, at the chosen frame, to a float EXR (mask in RGB and alpha, no view transform).
"""

from __future__ import annotations

import logging
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

import bpy

from .compat import remove_scratch, scratch_compositor, set_alpha_mode
from .osvos_contract.patterns import sequence_pattern

log = logging.getLogger(__name__)


class InputError(Exception):
    """The scene does not give what a render needs; the message tells the artist what to do."""


@dataclass(frozen=True)
class SourcePlates:
    pattern: str  # absolute, printf token: /shot/plate.%04d.exr
    padding: int
    first_file: int  # plate file number shown at scene frame ``scene_start``
    scene_start: int
    width: int
    height: int
    name: str
    kind: str  # "CLIP" or "IMAGE"
    datablock: str  # name of the MovieClip or Image
    colorspace: str = ""  # the datablock's colour space, a name in Blender's OCIO config

    def file_frame(self, scene_frame: int) -> int:
        return self.first_file + scene_frame - self.scene_start

    def scene_frame(self, file_frame: int) -> int:
        return self.scene_start + file_frame - self.first_file


def _abspath(idblock: bpy.types.ID, path: str) -> str:
    return os.path.normpath(bpy.path.abspath(path, library=idblock.library))


def clip_plates(clip: bpy.types.MovieClip) -> SourcePlates:
    if clip.source != "SEQUENCE":
        raise InputError(
            f"Clip '{clip.name}' is a movie file; osvos-render reads image sequences (EXR, DPX, PNG, JPEG, "
            "TIFF). Render the movie to an image sequence and load that as the clip."
        )
    path = _abspath(clip, clip.filepath)
    try:
        seq = sequence_pattern(path)
    except ValueError as e:
        raise InputError(str(e)) from None
    width, height = clip.size
    if not width or not height:
        raise InputError(f"Clip '{clip.name}': {path} cannot be read (missing file?)")
    return SourcePlates(seq.pattern, seq.padding, seq.frame + clip.frame_offset, clip.frame_start,
                        int(width), int(height), Path(path).name, "CLIP", clip.name,
                        clip.colorspace_settings.name)


def image_plates(image: bpy.types.Image) -> SourcePlates:
    if image.source not in ("SEQUENCE", "FILE") or not image.filepath:
        raise InputError(f"Image '{image.name}' is not an image sequence on disk")
    path = _abspath(image, image.filepath)
    try:
        seq = sequence_pattern(path)
    except ValueError as e:
        raise InputError(str(e)) from None
    width, height = image.size
    if not width or not height:  # a sequence has no pixels loaded until a frame is shown: read the file
        width, height = _file_size(path)
    if not width or not height:
        raise InputError(f"Image '{image.name}': {path} cannot be read (missing file?)")
    return SourcePlates(seq.pattern, seq.padding, seq.frame, seq.frame, int(width), int(height),
                        Path(path).name, "IMAGE", image.name, image.colorspace_settings.name)


def _file_size(path: str) -> tuple[int, int]:
    """Width and height of an image file, through a throw-away datablock."""
    if not os.path.isfile(path):
        return 0, 0
    probe = bpy.data.images.load(path, check_existing=False)
    try:
        return int(probe.size[0]), int(probe.size[1])
    finally:
        bpy.data.images.remove(probe)


def mask_objects(mask: bpy.types.Mask) -> list[tuple[str, bpy.types.MaskLayer]]:
    """The objects a Mask datablock holds: one per layer that renders, named for the engine after the layer
    (``Layer 2`` -> ``Layer_2``; names made unique). A mask with one such layer is one object."""
    found, used = [], set()
    for layer in mask.layers:
        if layer.hide_render or not len(layer.splines):
            continue
        name = re.sub(r"[^A-Za-z0-9_-]+", "_", layer.name).strip("_") or "obj"
        if not name[0].isalpha():
            name = "obj_" + name
        base, k = name, 2
        while name in used:
            name, k = f"{base}_{k}", k + 1
        used.add(name)
        found.append((name, layer))
    return found


def rasterize_mask(mask: bpy.types.Mask, frame: int, width: int, height: int, path: str,
                   layer: bpy.types.MaskLayer | None = None) -> str:
    """Render ``mask`` (only ``layer`` of it, when given) at scene ``frame`` to a float EXR of ``width`` x
    ``height`` (object white, alpha = mask).

    A separate scene and compositor are made and removed again, so the artist's scene, its render settings
    and its compositor stay untouched; layers hidden for one object's raster are shown again after.
    """
    hidden = [other for other in mask.layers if layer is not None and other != layer and not other.hide_render]
    for other in hidden:
        other.hide_render = True
    scene = bpy.data.scenes.new("OSVOS mask raster")
    tree = None
    try:
        tree, result = scratch_compositor(scene, "OSVOS mask raster")
        node = tree.nodes.new("CompositorNodeMask")
        node.mask = mask
        set_alpha = tree.nodes.new("CompositorNodeSetAlpha")
        set_alpha_mode(set_alpha, "REPLACE_ALPHA")
        tree.links.new(node.outputs["Mask"], set_alpha.inputs["Image"])
        tree.links.new(node.outputs["Mask"], set_alpha.inputs["Alpha"])
        tree.links.new(set_alpha.outputs["Image"], result)
        render = scene.render
        render.resolution_x, render.resolution_y, render.resolution_percentage = width, height, 100
        render.use_compositing = True
        render.image_settings.file_format = "OPEN_EXR"
        render.image_settings.color_mode = "RGBA"
        render.image_settings.color_depth = "32"
        render.filepath = path
        scene.view_settings.view_transform = "Standard"
        scene.frame_start = scene.frame_end = scene.frame_current = frame
        result = bpy.ops.render.render(scene=scene.name, write_still=True)
        if "FINISHED" not in result or not os.path.isfile(path):
            what = f"Mask '{mask.name}'" + (f" layer '{layer.name}'" if layer is not None else "")
            raise InputError(f"{what} could not be rasterised at frame {frame}")
    finally:
        bpy.data.scenes.remove(scene)
        remove_scratch(tree)
        for other in hidden:
            other.hide_render = False
    return path


def image_mask_file(image: bpy.types.Image, tmpdir: str) -> str:
    """A file holding the painted mask image: its own file when saved and unchanged, else a saved copy."""
    if image.source == "FILE" and image.filepath and not image.is_dirty and not image.packed_file:
        path = _abspath(image, image.filepath)
        if os.path.isfile(path):
            return path
    if not image.has_data and not image.size[0]:
        raise InputError(f"Mask image '{image.name}' holds no pixels")
    path = os.path.join(tmpdir, "mask.png")
    image.save(filepath=path, save_copy=True)
    return path


def make_tempdir() -> str:
    return tempfile.mkdtemp(prefix="osvos_blender_")
