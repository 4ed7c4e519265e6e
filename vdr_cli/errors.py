"""The one exit-status enum and the error types every layer raises.

Layers raise `VdrError` subclasses carrying a one-line message and, where
there is a fix, a hint; only `vdr_cli.cli.failures` turns them into text and
exit statuses, so every command reports the same way.
"""

from __future__ import annotations

import enum


class ExitStatus(enum.IntEnum):
    """Documented exit statuses of every `vdr` command."""

    OK = 0
    ERROR = 1  # the command failed: bad input, unreachable host, model failure
    USAGE = 2  # bad options or arguments
    PARTIAL = 3  # some inputs failed, the others were processed
    INTERRUPTED = 130  # Ctrl-C (128 + SIGINT)

    @classmethod
    def for_outcome(cls, ok: int, failed: int) -> "ExitStatus":
        """The status of a command that processed several inputs: 0 none failed,
        3 some failed and some did not, 1 all failed."""
        if not failed:
            return cls.OK
        return cls.PARTIAL if ok else cls.ERROR


EXIT_STATUS_DOC = {
    ExitStatus.OK: "success",
    ExitStatus.ERROR: "error: the command could not do its work (bad input file, unreachable host, model failure)",
    ExitStatus.USAGE: "usage error: unknown option, malformed argument",
    ExitStatus.PARTIAL: "partial: some inputs failed (each has an error event), the rest were processed",
    ExitStatus.INTERRUPTED: "interrupted by Ctrl-C (SIGINT)",
}


class VdrError(Exception):
    """An expected failure: reported as one line, never as a traceback."""

    # Not `status`: HTTP errors carry the server's status under that name, and an
    # exit status of 500 % 256 is nobody's documented status.
    exit_status: ExitStatus = ExitStatus.ERROR

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message


class UsageError(VdrError):
    """Options or arguments that cannot be acted on."""

    exit_status = ExitStatus.USAGE


class InputError(VdrError):
    """An input (file, record, image, box) that cannot be processed."""


class ConfigError(VdrError):
    """A config file or setting that cannot be read or applied."""
