"""What differs between the Blender releases the add-on supports: 4.2 LTS, 4.5 LTS and 5.0.

Blender 5.0 made the compositor a node group (``Scene.compositing_node_group``, a Group Output as the
result) and turned the Set Alpha node's mode into a menu socket (``inputs["Type"]``). In 4.2 and 4.5 the
compositor is ``Scene.node_tree`` (switched on with ``use_nodes``), its result is the Composite node, and
Set Alpha has a ``mode`` property. Everything else the add-on calls is the same in all three, so these
few functions are the only place that asks which release is running.
"""

from __future__ import annotations

import bpy

NODE_GROUP_COMPOSITOR = "compositing_node_group" in bpy.types.Scene.bl_rna.properties  # Blender 5.0 on
ALPHA_MODES = {"APPLY": "Apply Mask", "REPLACE_ALPHA": "Replace Alpha"}  # 4.x identifier -> 5.0 menu item


def compositor_tree(scene: bpy.types.Scene, create: bool = True) -> tuple[bpy.types.NodeTree | None, bool]:
    """The scene's compositor node tree and whether it was made just now (empty but for its output node).

    With ``create`` False a scene without a compositor gives ``(None, False)``.
    """
    if NODE_GROUP_COMPOSITOR:
        tree = scene.compositing_node_group
        if tree is not None or not create:
            return tree, False
        tree = _new_group(f"{scene.name} Compositor")
        scene.compositing_node_group = tree
        return tree, True
    tree = scene.node_tree
    if tree is not None:
        if create:
            scene.use_nodes = True
        return tree, False
    if not create:
        return None, False
    scene.use_nodes = True  # makes the tree, with Render Layers and Composite (and more in 4.5)
    tree = scene.node_tree
    for node in list(tree.nodes):  # the same start as 5.0: nothing but the output
        tree.nodes.remove(node)
    tree.nodes.new("CompositorNodeComposite").location = (600, 0)
    return tree, True


def _new_group(name: str) -> bpy.types.NodeTree:
    tree = bpy.data.node_groups.new(name, "CompositorNodeTree")
    tree.interface.new_socket("Image", in_out="OUTPUT", socket_type="NodeSocketColor")
    tree.nodes.new("NodeGroupOutput").location = (600, 0)
    return tree


def output_node(tree: bpy.types.NodeTree) -> bpy.types.Node | None:
    """The node whose input is the compositor's result: the Group Output (5.0) or the Composite node."""
    kind = "NodeGroupOutput" if NODE_GROUP_COMPOSITOR else "CompositorNodeComposite"
    found = [n for n in tree.nodes if n.bl_idname == kind]
    active = [n for n in found if getattr(n, "is_active_output", False)]
    return (active or found or [None])[0]


def set_alpha_mode(node: bpy.types.Node, mode: str) -> None:
    """Set a Set Alpha node's mode by its 4.x identifier, ``APPLY`` or ``REPLACE_ALPHA``."""
    if "Type" in node.inputs:
        node.inputs["Type"].default_value = ALPHA_MODES[mode]
    else:
        node.mode = mode


def scratch_compositor(scene: bpy.types.Scene, name: str) -> tuple[bpy.types.NodeTree, bpy.types.NodeSocket]:
    """An empty compositor for a throw-away ``scene`` and the socket its result goes to.

    Remove the tree with :func:`remove_scratch` once the scene is gone.
    """
    if NODE_GROUP_COMPOSITOR:
        tree = _new_group(name)
        scene.compositing_node_group = tree
    else:
        tree, _ = compositor_tree(scene)
    return tree, output_node(tree).inputs[0]


def remove_scratch(tree: bpy.types.NodeTree | None) -> None:
    """Free a scratch compositor: a node group in 5.0; in 4.x the tree went with its scene."""
    if NODE_GROUP_COMPOSITOR and tree is not None:
        bpy.data.node_groups.remove(tree)
