"""What the relay raises when retrying cannot help."""

from __future__ import annotations


class RelayError(Exception):
    """A problem the relay cannot retry its way out of."""


class RelayAlreadyRunning(RelayError):
    """Another relay holds the position of this stream."""
