"""Nuke GUI menu entry for OSVOS: Nodes toolbar > Keyer > OSVOS."""

import nuke

nuke.menu("Nodes").addCommand("Keyer/OSVOS", "import osvos_nuke; osvos_nuke.create_node()")
nuke.menu("Nuke").addCommand("Render/OSVOS: Render Selected", "import osvos_nuke\n"
                             "for n in nuke.selectedNodes():\n"
                             "    if osvos_nuke.is_osvos_node(n): osvos_nuke.render(n)")
