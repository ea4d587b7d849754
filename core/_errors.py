"""One exception family for problems a user can cause and fix.

Every message says what is wrong and how to fix it, in one line, so the CLI can print it without a
traceback (``physio-live: error: <message>``).
"""

from __future__ import annotations

__all__ = [
    "INFO",
    "ChannelMismatchError",
    "ConfigError",
    "PhysioLiveError",
    "SourceError",
    "StoppedWaitingError",
    "StreamNotFoundError",
]


INFO = "info: "
"""Prefix of a message for the user's log that reports, not warns (a stream back, a baseline
taken); the CLI prints it without "warning:", the dashboard without its red banner."""


class PhysioLiveError(Exception):
    """Base class: an error the user can fix; its text names the fix."""


class ConfigError(PhysioLiveError):
    """A config file is missing, malformed, or holds an unknown key or a wrong value."""


class SourceError(PhysioLiveError):
    """A source could not be opened or read (device, stream, file)."""


class StreamNotFoundError(SourceError):
    """No LSL stream matched the query within the timeout."""


class StoppedWaitingError(SourceError):
    """The app was stopped (Ctrl-C, a stop event) while a source waited for its stream/device."""


class ChannelMismatchError(SourceError):
    """A stream's channel count or labels differ from what the config expects."""
