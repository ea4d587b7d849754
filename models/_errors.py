"""Errors a user can cause with a model: a bad checkpoint, or input of the wrong shape.

Both subclass :class:`physio_live.core.PhysioLiveError`, so the CLI prints them in one line; every
message names what is wrong and how to fix it.
"""

from __future__ import annotations

from physio_live.core import PhysioLiveError

__all__ = ["CheckpointError", "ModelInputError"]


class CheckpointError(PhysioLiveError):
    """A checkpoint is missing, corrupt, unsafe (pickle payload) or made for another model."""


class ModelInputError(PhysioLiveError, ValueError):
    """A model got input of the wrong shape (e.g. another channel count than it was built for)."""
