"""Nuke start-up for OSVOS (runs in every mode, GUI, terminal and farm).

Add this folder to NUKE_PATH (or ``nuke.pluginAddPath`` it from your own init.py): Nuke then puts it on
``sys.path`` and runs this file. It only makes ``osvos_contract`` importable and checks plugin.json; the
menu entry is added by menu.py in the GUI, and OSVOS groups saved in scripts keep working on a farm because
their Render button imports osvos_nuke when pressed. It does not ``pluginAddPath`` its own folder: called
from an init.py, that runs the folder's init.py again (Foundry's documentation of pluginAddPath).

The node imports ``osvos_contract``, the package the engine and the Blender add-on share (plugin.json's
reader, the progress protocol, frame patterns, running osvos-render; standard library only). When it is
not importable already (e.g. on PYTHONPATH), the folder holding it is looked for beside this plugin folder
(an install: ``<dir>/nuke`` and ``<dir>/osvos_contract``) or two folders up (the repository root in a
checkout: ``host_adapters/nuke``), and added to ``sys.path``; not to the plugin path, since Nuke would then
run whatever init.py and menu.py that folder holds.
"""

import importlib.util
import os
import sys

import nuke

CONTRACT = "osvos_contract"

_here = os.path.dirname(os.path.abspath(__file__))


def _contract_folder():
    """The folder holding an osvos_contract package, beside this folder or two folders up, or None. A
    symlinked plugin folder is looked at where it is linked from and where it lives."""
    roots = []
    for here in (_here, os.path.dirname(os.path.realpath(__file__))):
        for folder in (os.path.dirname(here), os.path.dirname(os.path.dirname(here))):
            if folder not in roots:
                roots.append(folder)
    for folder in roots:
        if os.path.isfile(os.path.join(folder, CONTRACT, "__init__.py")):
            return folder
    return None


try:
    if importlib.util.find_spec(CONTRACT) is None:
        _folder = _contract_folder()
        if _folder is None:
            raise ImportError(
                f"the {CONTRACT} package was not found beside {_here} or two folders above it: copy the "
                f"{CONTRACT} folder beside this plugin folder, or add a checkout's host_adapters/nuke instead"
            )
        if _folder not in sys.path:
            sys.path.append(_folder)
    import osvos_contract.manifest

    osvos_contract.manifest.find_manifest()  # where the node will look: in the package, then the folders above
except Exception as error:  # never stop Nuke from starting because of a plug-in
    nuke.tprint(f"OSVOS: {error}")
