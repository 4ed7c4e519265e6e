"""Errors raised by model backends (one-line messages, no tracebacks for users)."""

from __future__ import annotations

from vdr_cli.errors import VdrError


class ModelError(VdrError):
    """A model backend failed: bad request, engine failure, unsupported input.

    A `VdrError`, so the CLI reports it as one line with a documented status.
    """

    def __init__(self, message: str = "", hint: str | None = None) -> None:
        super().__init__(message, hint)


class ModelLoadError(ModelError):
    """A model or projector file could not be loaded."""


class NoVisionError(ModelError):
    """An image was given to a model that has no vision projector."""


class ContextFullError(ModelError):
    """The turn does not fit in the remaining context; nothing was evaluated."""
