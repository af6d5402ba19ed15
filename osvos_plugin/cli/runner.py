"""The one way every osvos command runs: parse, set up logging, run, turn what happened into an exit code.

A farm acts on the exit code and an artist reads one line, so every command ends the same way: an
``OSVOSError`` prints ``<prog>: error: <message>`` and exits with its ``exit_code``; Ctrl-C asks for a
clean stop (a second one stops at once) and exits 130; anything else is an internal error (exit 1), with
its traceback under ``-v``. The codes and their meanings are the contract's (``osvos_contract.protocol``).
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from collections.abc import Callable
from typing import Any

from osvos_contract.manifest import Parameter, load_manifest
from osvos_contract.protocol import ExitCode, exit_codes_help

from ..errors import Cancelled, InputError, OSVOSError, UsageError

log = logging.getLogger("osvos_plugin.cli")

Body = Callable[[argparse.Namespace, threading.Event], int]
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM) if hasattr(signal, "SIGTERM") else (signal.SIGINT,)


class Interrupt:
    """The first Ctrl-C or SIGTERM (how Deadline, OpenJD and OpenCue cancel a task) sets the cancel event: a
    clean stop between steps or frames, temporary files removed. A second one stops at once."""

    def __init__(self, prog: str, stopping: str = "stopping after the current step") -> None:
        self.prog = prog
        self.stopping = stopping
        self.event = threading.Event()
        self._old = None

    def __enter__(self) -> threading.Event:
        if threading.current_thread() is threading.main_thread():
            self._old = {sig: signal.signal(sig, self._handle) for sig in STOP_SIGNALS}
        return self.event

    def _handle(self, signum, frame) -> None:
        if self.event.is_set():
            raise KeyboardInterrupt
        self.event.set()
        print(f"\n{self.prog}: {self.stopping} (Ctrl-C again to stop now)", file=sys.stderr)

    def __exit__(self, *exc) -> None:
        for sig, old in (self._old or {}).items():
            signal.signal(sig, old)


def fail(prog: str, message: str, code: int) -> int:
    print(f"{prog}: error: {message}", file=sys.stderr)
    return code


def epilog(codes: tuple[int, ...] | None = None, extra: str = "") -> str:
    """A command's --help epilog: its exit codes, from the contract."""
    return exit_codes_help(codes) + (" " + extra if extra else "")


def run(
    parser: argparse.ArgumentParser,
    body: Body,
    argv: list[str] | None = None,
    *,
    interrupted: str = "interrupted; run the same command again to resume.",
    stopping: str = "stopping after the current step",
    log_format: str = "%(levelname)s %(message)s",
    quiet_level: int = logging.WARNING,
    input_errors: tuple[type[BaseException], ...] = (),
) -> int:
    """Run ``body(args, cancel)`` as the command ``parser.prog`` and return its exit code.

    ``input_errors``: further exception types reported as bad input (exit 3) rather than internal errors.
    """
    prog = parser.prog
    from .. import __version__

    parser.add_argument("--version", action="version", version=f"{prog} {__version__}")
    try:
        args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    except SystemExit as exc:  # --help (0) or a usage error (2, already printed by argparse)
        return int(exc.code) if isinstance(exc.code, int) else ExitCode.USAGE
    verbose = bool(getattr(args, "verbose", False))
    logging.basicConfig(level=logging.INFO if verbose else quiet_level, format=log_format)
    try:
        with Interrupt(prog, stopping) as cancel:
            return body(args, cancel)
    except (Cancelled, KeyboardInterrupt):
        return fail(prog, interrupted, ExitCode.INTERRUPTED)
    except OSVOSError as e:
        return fail(prog, str(e), e.exit_code)
    except input_errors as e:
        return fail(prog, str(e), InputError.exit_code)
    except Exception as e:  # last resort: one line, and the traceback when asked for
        if verbose:
            log.exception("internal error")
        return fail(prog, f"internal error: {e!r} (run with -v and report it)", ExitCode.INTERNAL)


def _param_help(p: Parameter) -> str:
    extra = [f"default: {p.default}" if p.default not in (None, "") else "default: none"]
    if p.min is not None or p.max is not None:
        extra.append(f"range {p.min}..{p.max}")
    # argparse expands %-formats in help ("4% of the frame" would be one): escape the manifest's text
    return f"{p.help} ({'; '.join(extra)})".replace("%", "%%")


def add_manifest_arguments(parser: argparse.ArgumentParser) -> None:
    """One flag per plugin.json parameter. Defaults stay None here: the manifest fills them in later,
    so what the user typed is told apart from what they left alone."""
    groups: dict[str, argparse._ArgumentGroup] = {}
    for p in load_manifest().parameters:
        group = groups.get(p.group) or groups.setdefault(p.group, parser.add_argument_group(p.group or "Node"))
        kwargs: dict = {"dest": p.name, "default": None, "help": _param_help(p)}
        if p.type == "bool":
            group.add_argument(p.flag, action=argparse.BooleanOptionalAction, **kwargs)
        elif p.type == "choice":
            group.add_argument(p.flag, choices=p.choices, **kwargs)
        else:
            group.add_argument(p.flag, type={"int": int, "float": float}.get(p.type, str), metavar=p.type.upper(),
                               **kwargs)
    parser.add_argument("--set", action="append", default=[], metavar="NAME=VALUE", dest="set_params",
                        help="Set a plugin.json parameter by name, e.g. --set soft_matte=true (booleans as "
                        "true/false); for job templates and scripts. Repeatable.")


def manifest_values(args: argparse.Namespace) -> dict[str, Any]:
    """The plugin.json parameters the user set on the command line (name -> value), by flag or ``--set``."""
    m = load_manifest()
    values = {p.name: getattr(args, p.name) for p in m.parameters if getattr(args, p.name) is not None}
    names = {p.name for p in m.parameters}
    for item in getattr(args, "set_params", None) or []:
        name, sep, value = item.partition("=")
        name = name.strip().replace("-", "_")
        if not sep or name not in names:
            raise UsageError(f"--set {item}: expected NAME=VALUE with NAME one of {', '.join(sorted(names))}")
        if name in values:
            raise UsageError(f"--set {item}: {name} is also given as {m.parameter(name).flag}; give it once")
        values[name] = None if value == "" and m.parameter(name).optional else value
    return {k: v for k, v in values.items() if v is not None}


def add_progress_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--progress", choices=["auto", "bar", "json", "openjd", "none"], default="auto",
                        help="auto: openjd inside an Open Job Description session, a bar on a terminal, silent "
                        "otherwise; json: one JSON object per update on stdout, for host adapters; openjd: "
                        "openjd_progress / openjd_status lines, for render farms.")
