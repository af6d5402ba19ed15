"""Running ``osvos-render`` from a host: finding it, its command line, its progress, stopping it.

The host half of the contract: Blender and Nuke run Python builds of their own that cannot import the
engine (numpy and torch versions clash, and an engine crash must not take the host down), so they start
``osvos-render`` as a process, read its progress records (:mod:`.protocol`) and its exit code. A host
polls a :class:`RenderProcess` from its own loop (Blender's modal timer, Nuke's progress thread);
:func:`run` is the same polling loop for callers that wait (headless Blender, tests).
"""

from __future__ import annotations

import collections
import logging
import math
import os
import queue
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .protocol import EXIT_MEANINGS, ExitCode, Progress, parse_progress

log = logging.getLogger(__name__)

ENGINE_NAME = "osvos-render"
ENGINE_ENV = "OSVOS_RENDER"  # path of osvos-render, when it is neither configured nor on PATH
CANCEL_GRACE_S = 20.0  # after a clean-stop request, how long before the process is terminated


class EngineNotFound(Exception):
    """osvos-render could not be found; the message says where it was looked for and what to do."""


def find_engine(configured: str = "") -> list[str]:
    """The command that starts osvos-render: the configured path, else $OSVOS_RENDER, else PATH."""
    tried = []
    settings = (("the add-on/plugin setting", configured), (ENGINE_ENV, os.environ.get(ENGINE_ENV, "")))
    for source, value in settings:
        if not value:
            continue
        path = Path(os.path.expandvars(os.path.expanduser(value)))
        if path.is_dir():
            path = path / (ENGINE_NAME + (".exe" if os.name == "nt" else ""))
        if path.is_file() and os.access(path, os.X_OK):
            return [str(path)]
        tried.append(f"{path} (from {source})")
    found = shutil.which(ENGINE_NAME)
    if found:
        return [found]
    tried.append(f"{ENGINE_NAME} on PATH")
    raise EngineNotFound(
        f"{ENGINE_NAME} not found (tried {', '.join(tried)}). Install osvos-plugin "
        f"(pip install osvos-plugin, or make setup in a checkout) and set the path of its {ENGINE_NAME} "
        f"in the add-on/plugin settings or in ${ENGINE_ENV}."
    )


# ------------------------------------------------------------------------------------------ command line


def build_command(
    engine: str | Sequence[str],
    source: str,
    output: str,
    *,
    parameters: Iterable[Any] = (),
    values: Mapping[str, Any] | None = None,
    mask: str | None = None,
    mask_frame: int | None = None,
    keyframes: Iterable[tuple[int, str]] = (),
    objects: Iterable[tuple[str, str]] = (),
    parent: str | None = None,
    save_model: str | None = None,
    load_model: str | None = None,
    overwrite: bool = False,
) -> list[str]:
    """The osvos-render command line for one render, with ``--progress json`` for the host to read.

    ``parameters``: the manifest's Parameter objects; ``values``: name -> value as the host's controls hold
    them. ``objects``: (name, mask file) of several objects painted on the mask frame, instead of ``mask``.
    Values equal to the manifest default are left out (the engine applies the same defaults), so the
    command line shows what the artist changed. Unknown names are an error: a host and a manifest that
    disagree must not fail silently.
    """
    params = {p.name: p for p in parameters}
    values = dict(values or {})
    unknown = sorted(set(values) - set(params))
    if unknown:
        raise ValueError(f"unknown parameters: {', '.join(unknown)}")
    if mask_frame is not None:
        values["mask_frame"] = mask_frame
    cmd = [engine] if isinstance(engine, str) else list(engine)
    cmd.append(str(source))
    if mask is not None:
        cmd += ["--mask", str(mask)]
    for frame, path in keyframes:
        cmd += ["--keyframe", str(int(frame)), str(path)]
    for name, path in objects:
        cmd += ["--object", str(name), str(path)]
    cmd += ["--output", str(output)]
    if parent:
        cmd += ["--parent", str(parent)]
    if save_model and load_model:
        raise ValueError("save_model and load_model exclude each other")
    if save_model:
        cmd += ["--save-model", str(save_model)]
    if load_model:
        cmd += ["--load-model", str(load_model)]
    if overwrite:
        cmd.append("--overwrite")
    for name, value in values.items():
        p = params.get(name)
        if p is None:  # mask_frame given by keyword to a caller without it in its parameter list
            cmd += ["--" + name.replace("_", "-"), str(value)]
        elif not _is_default(p, value):
            cmd += p.cli_args(value)
    cmd += ["--progress", "json"]
    return cmd


def _is_default(p: Any, value: Any) -> bool:
    """True when ``value`` leaves the engine's default: None, an empty string, the default itself (floats
    compared to single precision: Blender and Nuke store float controls as 32-bit floats)."""
    if value is None or (p.type == "string" and value == ""):
        return True
    if p.default is None:
        return False
    if p.type == "float":
        return math.isclose(float(value), float(p.default), rel_tol=1e-6, abs_tol=1e-12)
    return value == p.default


# ----------------------------------------------------------------------------------------------- process


@dataclass
class RenderResult:
    returncode: int
    cancelled: bool
    message: str  # one line for the artist: the engine's own error line, or what the exit code means
    stderr: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.returncode == 0


class RenderProcess:
    """osvos-render running in the background; :meth:`poll` from the host's loop, :meth:`cancel` to stop.

    Cancel asks for a clean stop first (SIGINT: the engine finishes the frames in flight, every matte on
    disk is whole, a rerun resumes), then terminates the process if it has not stopped within
    ``grace_s``. On Windows there is no SIGINT for a child process: it is terminated at once (mattes are
    written atomically, so none is left half-written).
    """

    def __init__(self, command: Sequence[str], env: Mapping[str, str] | None = None, cwd: str | None = None,
                 grace_s: float = CANCEL_GRACE_S) -> None:
        self.command = [str(c) for c in command]
        self.env = dict(env) if env is not None else None
        self.cwd = cwd
        self.grace_s = grace_s
        self.latest: Progress | None = None
        self.stderr: collections.deque[str] = collections.deque(maxlen=200)
        self.stdout_other: collections.deque[str] = collections.deque(maxlen=50)
        self._events: queue.Queue[Progress] = queue.Queue()
        self._proc: subprocess.Popen | None = None
        self._threads: list[threading.Thread] = []
        self._cancel_at: float | None = None
        self._terminated = False

    # -- lifecycle
    def start(self) -> RenderProcess:
        kwargs: dict[str, Any] = {}
        if os.name == "nt":
            kwargs["creationflags"] = getattr(subprocess, "CREATE_NO_WINDOW", 0)
        else:
            kwargs["start_new_session"] = True  # the host's own Ctrl-C must not reach the render
        log.info("starting: %s", subprocess.list2cmdline(self.command))
        try:
            self._proc = subprocess.Popen(
                self.command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                text=True, encoding="utf-8", errors="replace", bufsize=1, env=self.env, cwd=self.cwd,
                **kwargs,
            )
        except OSError as e:
            raise EngineNotFound(f"cannot start {self.command[0]}: {e.strerror or e}") from e
        for stream, sink in ((self._proc.stdout, self._read_stdout), (self._proc.stderr, self._read_stderr)):
            t = threading.Thread(target=sink, args=(stream,), daemon=True)
            t.start()
            self._threads.append(t)
        return self

    def _read_stdout(self, stream) -> None:
        for line in stream:
            progress = parse_progress(line)
            if progress is not None:
                self._events.put(progress)
            elif line.strip():
                self.stdout_other.append(line.rstrip())

    def _read_stderr(self, stream) -> None:
        for line in stream:
            if line.strip():
                self.stderr.append(line.rstrip())

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    @property
    def cancelling(self) -> bool:
        return self._cancel_at is not None

    def poll(self) -> list[Progress]:
        """New progress since the last call (the newest last); escalates a pending cancel."""
        if self._proc is None:
            raise RuntimeError("poll() before start()")
        events = []
        while True:
            try:
                events.append(self._events.get_nowait())
            except queue.Empty:
                break
        if events:
            self.latest = events[-1]
        if self._cancel_at is not None and self._proc.poll() is None:
            waited = time.monotonic() - self._cancel_at
            if waited > 2 * self.grace_s:
                self._proc.kill()
            elif waited > self.grace_s and not self._terminated:
                self._terminated = True
                self._proc.terminate()
        return events

    @property
    def returncode(self) -> int | None:
        """The exit status once the process has ended and its output has been read, else None."""
        if self._proc is None or self._proc.poll() is None:
            return None
        for t in self._threads:
            t.join(timeout=2.0)
        return self._proc.returncode

    def cancel(self) -> None:
        """Ask for a clean stop; poll() terminates the process if it does not stop in time."""
        if self._proc is None or self._proc.poll() is not None or self._cancel_at is not None:
            return
        self._cancel_at = time.monotonic()
        if os.name == "nt":
            self._terminated = True
            self._proc.terminate()
        else:
            try:
                os.kill(self._proc.pid, signal.SIGINT)
            except ProcessLookupError:
                pass

    def kill(self) -> None:
        """Stop at once (host shutting down)."""
        if self._proc is not None and self._proc.poll() is None:
            self._proc.kill()

    def result(self) -> RenderResult:
        code = self.returncode
        if code is None:
            raise RuntimeError("result() while the process is still running")
        cancelled = self._cancel_at is not None
        stderr = list(self.stderr)
        return RenderResult(code, cancelled, exit_message(code, stderr, cancelled), stderr)


def exit_message(code: int, stderr: Sequence[str] = (), cancelled: bool = False) -> str:
    """One line for the artist: the engine's ``osvos-render: error: ...`` line when there is one."""
    if code == 0:
        return "done"
    if cancelled and code in (ExitCode.INTERRUPTED, -signal.SIGINT, -signal.SIGTERM, -9, 1):
        return "cancelled; the mattes written so far are kept (render again to resume)"
    for line in reversed(stderr):
        if "error:" in line:
            return line.split("error:", 1)[1].strip()
    meaning = EXIT_MEANINGS.get(code, f"exit status {code}")
    tail = f": {stderr[-1]}" if stderr else ""
    return f"osvos-render failed ({meaning}){tail}"


def run(
    command: Sequence[str],
    on_progress: Callable[[Progress], None] | None = None,
    should_cancel: Callable[[], bool] | None = None,
    interval_s: float = 0.1,
    env: Mapping[str, str] | None = None,
    cwd: str | None = None,
    grace_s: float = CANCEL_GRACE_S,
) -> RenderResult:
    """Run osvos-render to the end: the polling loop a modal host runs from its timer, in one call."""
    proc = RenderProcess(command, env=env, cwd=cwd, grace_s=grace_s).start()
    try:
        while True:
            code = proc.returncode
            for event in proc.poll():
                if on_progress is not None:
                    on_progress(event)
            if code is not None:
                return proc.result()
            if should_cancel is not None and not proc.cancelling and should_cancel():
                proc.cancel()
            time.sleep(interval_s)
    except BaseException:
        proc.kill()
        raise


def engine_environment(base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment for osvos-render: the host's, minus what would make the engine's Python import the
    host's packages (Blender and Nuke set PYTHONPATH/PYTHONHOME for their own bundled Python)."""
    env = dict(os.environ if base is None else base)
    for key in ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "PYTHONNOUSERSITE"):
        env.pop(key, None)
    env["PYTHONUNBUFFERED"] = "1"
    env.setdefault("PYTHONIOENCODING", "utf-8")
    if sys.platform == "darwin":
        env.pop("DYLD_LIBRARY_PATH", None)
    return env
