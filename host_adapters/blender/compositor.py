"""Putting the matte sequence into the scene's compositor with stock nodes only.

A Python-defined compositor node crashed Blender 5.0's compositor at render, so the wiring is an Image
node (the matte EXRs, channel A on its Alpha socket), the plate (Movie Clip or Image node) and a Set
Alpha node that applies the matte as the plate's alpha. Nodes are found again by name on a rerun, so
rendering twice updates the same nodes instead of stacking copies. The artist's own links are kept: the
Set Alpha result goes to the compositor output only when that output is free.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

import bpy

from .compat import compositor_tree, output_node, set_alpha_mode
from .inputs import SourcePlates
from .osvos_contract.patterns import format_frame

MATTE_NODE = "OSVOS Matte"
SOURCE_NODE = "OSVOS Source"
ALPHA_NODE = "OSVOS Set Alpha"


@dataclass(frozen=True)
class MatteSequence:
    pattern: str  # printf pattern of the matte files
    first: int  # first and last matte file numbers on disk
    last: int


def _node(tree: bpy.types.NodeTree, name: str, bl_idname: str, location: tuple[float, float]) -> bpy.types.Node:
    node = tree.nodes.get(name)
    if node is not None and node.bl_idname != bl_idname:
        tree.nodes.remove(node)
        node = None
    if node is None:
        node = tree.nodes.new(bl_idname)
        node.name = node.label = name
        node.location = location
    return node


def matte_image(seq: MatteSequence) -> bpy.types.Image:
    """The Image datablock of the matte sequence (reloaded when it exists, so a rerun shows new files)."""
    path = format_frame(seq.pattern, seq.first)
    for image in bpy.data.images:
        if image.source == "SEQUENCE" and os.path.normpath(bpy.path.abspath(image.filepath)) == path:
            image.reload()
            return image
    image = bpy.data.images.load(path, check_existing=False)
    image.name = "OSVOS " + os.path.basename(seq.pattern).split("%")[0].rstrip("._-")
    image.source = "SEQUENCE"
    image.colorspace_settings.is_data = True  # a matte is data: no view or colour transform
    return image


def wire_matte(scene: bpy.types.Scene, plates: SourcePlates, seq: MatteSequence,
               objects: Sequence[str] = ()) -> bpy.types.Node:
    """Image node of the mattes, set as the plate's alpha; returns the Image node.

    With several ``objects`` the matte EXRs hold a layer per object (``<name>.A``), which the Image node
    offers as an output socket each; every object gets a Set Alpha of its own (``OSVOS <name>``: the plate
    with that object's matte), while the output gets all of them together (``A``).

    The Image node shows file ``f - frame_start + 1 + frame_offset`` at scene frame ``f``; with
    ``frame_start`` the scene frame of the first matte and ``frame_offset = first - 1`` it shows the matte
    of the plate frame the clip shows, for every frame.
    """
    tree, new_tree = compositor_tree(scene)
    matte = _node(tree, MATTE_NODE, "CompositorNodeImage", (0, -300))
    matte.image = matte_image(seq)
    matte.frame_start = plates.scene_frame(seq.first)
    matte.frame_offset = seq.first - 1
    matte.frame_duration = seq.last - seq.first + 1
    matte.use_cyclic = False
    matte.use_auto_refresh = True

    if plates.kind == "CLIP":
        source = _node(tree, SOURCE_NODE, "CompositorNodeMovieClip", (0, 0))
        source.clip = bpy.data.movieclips[plates.datablock]
    else:
        source = _node(tree, SOURCE_NODE, "CompositorNodeImage", (0, 0))
        source.image = bpy.data.images[plates.datablock]
        source.frame_start = plates.scene_start
        source.frame_offset = plates.first_file - 1
        source.frame_duration = max(1, seq.last - plates.first_file + 1)
        source.use_auto_refresh = True

    set_alpha = _node(tree, ALPHA_NODE, "CompositorNodeSetAlpha", (300, 0))
    set_alpha_mode(set_alpha, "APPLY")
    tree.links.new(source.outputs["Image"], set_alpha.inputs["Image"])
    tree.links.new(matte.outputs["Alpha"], set_alpha.inputs["Alpha"])

    output = output_node(tree)
    if output is not None and output.inputs and (new_tree or not output.inputs[0].is_linked):
        tree.links.new(set_alpha.outputs["Image"], output.inputs[0])
    for k, name in enumerate(objects):
        if name not in matte.outputs:
            continue
        node = _node(tree, f"OSVOS {name}", "CompositorNodeSetAlpha", (300, -200 - 150 * k))
        set_alpha_mode(node, "APPLY")
        tree.links.new(source.outputs["Image"], node.inputs["Image"])
        tree.links.new(matte.outputs[name], node.inputs["Alpha"])
    scene.render.use_compositing = True
    return matte
