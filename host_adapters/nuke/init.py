"""Nuke start-up for OSVOS (runs in every mode, GUI, terminal and farm).

Add this folder to NUKE_PATH (or ``nuke.pluginAddPath`` it from your own init.py). It only makes the
modules importable and checks plugin.json; the menu entry is added by menu.py in the GUI, and OSVOS groups
saved in scripts keep working on a farm because their Render button imports osvos_nuke when pressed.

The modules shared with the Blender adapter (osvos_manifest, osvos_render_process) live in ../common
(host_adapters/common in the repository), added to the plugin path here; an install that copies them into
this folder instead works too.
"""

import os

import nuke

_here = os.path.dirname(os.path.abspath(__file__))
_common = os.path.join(os.path.dirname(_here), "common")
nuke.pluginAddPath(_here)
if os.path.isdir(_common):
    nuke.pluginAddPath(_common)

try:
    import osvos_manifest

    osvos_manifest.find_manifest()  # where the node will look: beside the module, then the folders above
except Exception as error:  # never stop Nuke from starting because of a plug-in
    nuke.tprint(f"OSVOS: {error}")
