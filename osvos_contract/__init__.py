"""The contract between the OSVOS engine and the hosts that run it, kept once and imported by both sides.

* :mod:`.manifest`  plugin.json: every node parameter with its default, range and help
* :mod:`.protocol`  exit codes, progress stages and the ``--progress json`` record (write and parse)
* :mod:`.patterns`  frame patterns (``####``, ``%04d``, ``@``, ``$F4``): which file holds which frame
* :mod:`.process`   the host side: find ``osvos-render``, build its command line, run, poll and stop it

Standard library only, Python 3.9 and later, with relative imports inside: Blender's and Nuke's own
Pythons import it (the Blender add-on bundles it as a subpackage; Nuke's init.py puts the folder holding
it on ``sys.path``), and so does the engine (``pip install`` ships it beside ``osvos_plugin``).
"""

from .manifest import Manifest, ManifestError, Parameter, load_manifest
from .protocol import EXIT_MEANINGS, ExitCode, Progress, Stage, parse_progress

__all__ = [
    "EXIT_MEANINGS",
    "ExitCode",
    "Manifest",
    "ManifestError",
    "Parameter",
    "Progress",
    "Stage",
    "load_manifest",
    "parse_progress",
]
