"""Errors raised by model backends (one-line messages, no tracebacks for users)."""

from __future__ import annotations


class ModelError(Exception):
    """A model backend failed: bad request, engine failure, unsupported input."""


class ModelLoadError(ModelError):
    """A model or projector file could not be loaded."""


class NoVisionError(ModelError):
    """An image was given to a model that has no vision projector."""


class ContextFullError(ModelError):
    """The turn does not fit in the remaining context; nothing was evaluated."""
