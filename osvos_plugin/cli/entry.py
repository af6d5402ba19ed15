"""The console scripts' entry points: a stop during start-up (importing torch takes seconds) is clean too.

Until a command's runner takes over the signals, Ctrl-C or SIGTERM ends the process with the documented
"interrupted" exit code and one line, not a traceback or an undocumented 143. Kept free of heavy imports.
"""

from __future__ import annotations

import importlib
import signal
import sys

INTERRUPTED = 130  # osvos_contract.protocol.ExitCode.INTERRUPTED, without importing anything first


def _stop(signum, frame) -> None:
    raise KeyboardInterrupt


def _run(module: str, prog: str) -> int:
    if hasattr(signal, "SIGTERM"):
        signal.signal(signal.SIGTERM, _stop)
    try:
        main = importlib.import_module(module).main
    except KeyboardInterrupt:
        print(f"{prog}: error: interrupted while starting; nothing was written.", file=sys.stderr)
        return INTERRUPTED
    return main()


def render() -> int:
    return _run("osvos_plugin.cli.render", "osvos-render")


def demo() -> int:
    return _run("osvos_plugin.cli.demo", "osvos-demo")


def evaluate() -> int:
    return _run("osvos_plugin.cli.evaluate", "osvos-eval")


def train_parent() -> int:
    return _run("osvos_plugin.cli.train_parent", "osvos-train-parent")


def export() -> int:
    return _run("osvos_plugin.cli.export", "osvos-export")
