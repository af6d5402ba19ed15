"""Running ``osvos-render`` from a host: finding it, its command line, its JSON progress, stopping it.

Pure Python (3.9 and later, no bpy, no nuke, no engine import). A host polls a :class:`RenderProcess`
from its own loop (Blender's modal timer, Nuke's progress thread); :func:`run` is the same polling
loop for callers that wait (headless Blender, tests), so both paths share every line.

It lives once, in host_adapters/common, for both adapters: Blender's build_zip.py bundles it into the add-on
(a submodule of the add-on package), Nuke's init.py adds this folder to the plugin path.
"""

from __future__ import annotations

import collections
import json
import logging
import math
import os
import queue
import re
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

log = logging.getLogger(__name__)

ENGINE_NAME = "osvos-render"
ENGINE_ENV = "OSVOS_RENDER"  # path of osvos-render, when it is neither configured nor on PATH
EXIT_MEANINGS = {
    0: "done",
    1: "internal error",
    2: "usage error",
    3: "bad input (plates, mask or parameters)",
    4: "model file error",
    5: "the mattes could not be written",
    130: "interrupted (run again to resume; frames already written are kept)",
}
EXIT_INTERRUPTED = 130
STAGE_LABELS = {"check": "Checking plates", "finetune": "Fine-tuning", "selftrain": "Self-training",
                "infer": "Inferring", "train": "Training"}
# The stages of a render in order, with the share of the progress bar each takes. Guesses that only
# shape the bar; a stage that does not run (self-training turned off) is simply skipped over.
STAGE_SHARES = {"check": 0.05, "finetune": 0.4, "selftrain": 0.1, "infer": 0.45}
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


# --------------------------------------------------------------------------------------------- patterns

_DIGITS_RE = re.compile(r"(\d+)(?!.*\d)")


@dataclass(frozen=True)
class SequencePattern:
    """An image sequence as osvos-render takes it: ``pattern`` with a printf token, one frame number."""

    pattern: str
    frame: int
    padding: int


def sequence_pattern(path: str | os.PathLike) -> SequencePattern:
    """``/shot/plate.1001.exr`` -> ``/shot/plate.%04d.exr``, frame 1001. The last number in the file name
    is the frame (the rule Blender and Nuke follow too); ValueError if the name holds none."""
    path = Path(path)
    match = _DIGITS_RE.search(path.name)
    if match is None:
        raise ValueError(f"{path}: the file name holds no frame number, so it is not an image sequence")
    digits = match.group(1)
    token = f"%0{len(digits)}d" if len(digits) > 1 else "%d"
    name = path.name[: match.start()] + token + path.name[match.end():]
    return SequencePattern(str(path.with_name(name)), int(digits), len(digits))


_TOKEN_RE = re.compile(r"%(0?)(\d*)d(?!.*%0?\d*d)")


def printf_pattern(path: str) -> str:
    """A pattern with its last frame token (``####``, ``@@@@``, ``$F4``) as printf: ``matte.%04d.exr``.
    The host writes patterns its own way; the adapter lists and formats files with printf."""
    head, name = os.path.split(str(path))
    tokens = list(re.finditer(r"#+|@+|\$F(\d*)", name))
    if not tokens:
        return str(path)
    token = tokens[-1]
    if token.group(0).startswith("$F"):
        width = int(token.group(1) or 0)
    else:
        width = len(token.group(0))
    printf = f"%0{width}d" if width > 1 else "%d"
    return os.path.join(head, name[: token.start()] + printf + name[token.end():])


def format_frame(pattern: str, frame: int) -> str:
    """The file of ``frame`` in a printf-style pattern (only the last ``%0Nd`` of the file name counts)."""
    path = Path(pattern)
    match = _TOKEN_RE.search(path.name)
    if match is None:
        return pattern
    width = int(match.group(2) or 0)
    number = str(frame).zfill(width) if match.group(1) else str(frame)
    return str(path.with_name(path.name[: match.start()] + number + path.name[match.end():]))


def frames_on_disk(pattern: str) -> list[int]:
    """Frame numbers of the files of a printf-style pattern that exist, sorted."""
    path = Path(pattern)
    match = _TOKEN_RE.search(path.name)
    if match is None:
        return [0] if path.is_file() else []
    head, tail = path.name[: match.start()], path.name[match.end():]
    regex = re.compile(re.escape(head) + r"(-?\d+)" + re.escape(tail) + "$")
    try:
        names = os.listdir(path.parent)
    except OSError:
        return []
    found = []
    for name in names:
        m = regex.match(name)
        if m and Path(format_frame(pattern, int(m.group(1)))).name == name:
            found.append(int(m.group(1)))
    return sorted(found)


def matte_pattern(directory: str | os.PathLike, plate: str | os.PathLike, ext: str = "exr",
                  padding: int = 4) -> str:
    """Where the mattes of ``plate`` go: ``<directory>/<plate stem>_matte.%04d.exr``."""
    name = Path(plate).name
    match = _TOKEN_RE.search(name) or _DIGITS_RE.search(name)
    stem = name[: match.start()] if match else Path(name).stem
    stem = stem.rstrip("._-") or "plate"
    token = f"%0{padding}d" if padding > 1 else "%d"
    return str(Path(directory) / f"{stem}_matte.{token}.{ext}")


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
    parent: str | None = None,
    save_model: str | None = None,
    load_model: str | None = None,
    overwrite: bool = False,
) -> list[str]:
    """The osvos-render command line for one render, with ``--progress json`` for the host to read.

    ``parameters``: the manifest's Parameter objects; ``values``: name -> value as the host's controls hold
    them. Values equal to the manifest default are left out (the engine applies the same defaults), so the
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


# ---------------------------------------------------------------------------------------------- progress


@dataclass(frozen=True)
class Progress:
    """One line of ``osvos-render --progress json``."""

    stage: str
    done: int
    total: int
    fraction: float
    loss: float | None = None
    eta_s: float | None = None

    @property
    def overall(self) -> float:
        """Fraction of the whole render, fine-tuning then inference, in [0, 1]."""
        f = min(1.0, max(0.0, self.fraction))
        if self.stage not in STAGE_SHARES:
            return f
        start = 0.0
        for stage, share in STAGE_SHARES.items():
            if stage == self.stage:
                return start + share * f
            start += share
        return f

    def message(self) -> str:
        text = f"{STAGE_LABELS.get(self.stage, self.stage.capitalize())} {self.done}/{self.total}"
        if self.stage in ("check", "infer"):
            text += " frames"
        if self.loss is not None:
            text += f", loss {self.loss:.4f}"
        if self.eta_s is not None and self.eta_s > 0:
            text += f", {_duration(self.eta_s)} left"
        return text


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"


def parse_progress(line: str) -> Progress | None:
    """A :class:`Progress` from one stdout line, or None for anything else (log lines, partial lines)."""
    line = line.strip()
    if not line.startswith("{"):
        return None
    try:
        rec = json.loads(line)
        if not isinstance(rec, dict) or "stage" not in rec:
            return None
        total = int(rec.get("total") or 0)
        done = int(rec.get("done") or 0)
        fraction = rec.get("fraction")
        fraction = float(fraction) if fraction is not None else (done / total if total else 0.0)
        loss = rec.get("loss")
        eta = rec.get("eta_s")
        return Progress(str(rec["stage"]), done, total, fraction,
                        None if loss is None else float(loss), None if eta is None else float(eta))
    except (ValueError, TypeError):
        return None


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
    if cancelled and code in (EXIT_INTERRUPTED, -signal.SIGINT, -signal.SIGTERM, -9, 1):
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
