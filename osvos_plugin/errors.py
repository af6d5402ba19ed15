"""The engine's errors: one base class, and each kind carries the exit code a command ends with.

Every message is meant to be shown as is to an artist or a farm wrangler: it names the file or frame
and says what to do. The CLI runner (``cli/runner.py``) turns an ``OSVOSError`` into its ``exit_code``.
"""

from __future__ import annotations

from osvos_contract.protocol import ExitCode


class OSVOSError(Exception):
    """Base class of every error the engine raises on purpose."""

    exit_code: int = ExitCode.INTERNAL


class UsageError(OSVOSError):
    """The command was asked for something it cannot do (a device that is not there, a bad flag value)."""

    exit_code = ExitCode.USAGE


class InputError(OSVOSError):
    """A plate, mask, parameter or data set cannot be used."""

    exit_code = ExitCode.INPUT


class ModelError(OSVOSError):
    """A network file (parent, fine-tuned model, HED weights) is missing, corrupt or of the wrong kind."""

    exit_code = ExitCode.MODEL


class OutputError(OSVOSError):
    """Something could not be written (bad path, format, disk full, permissions...)."""

    exit_code = ExitCode.OUTPUT


class Cancelled(OSVOSError):
    """The host's cancel flag (or Ctrl-C) stopped the job between steps or frames; what was written is whole."""

    exit_code = ExitCode.INTERRUPTED
