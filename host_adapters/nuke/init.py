"""Nuke start-up for OSVOS (runs in every mode, GUI, terminal and farm).

Add this folder to NUKE_PATH (or ``nuke.pluginAddPath`` it from your own init.py). It only makes the
modules importable and checks plugin.json; the menu entry is added by menu.py in the GUI, and OSVOS groups
saved in scripts keep working on a farm because their Render button imports osvos_nuke when pressed.
"""

import os

import nuke

_here = os.path.dirname(os.path.abspath(__file__))
nuke.pluginAddPath(_here)

try:
    import osvos_manifest

    osvos_manifest.find_manifest(_here)
except Exception as error:  # never stop Nuke from starting because of a plug-in
    nuke.tprint(f"OSVOS: {error}")
