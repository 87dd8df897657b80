"""Errors the memory layer raises. Each message says what the caller should change.

The MCP layer turns these into tool errors verbatim, so they are written for the
assistant (and the person) reading them, not for a stack trace.
"""


class MemCubeError(Exception):
    """Base of every error MemCube reports to a caller."""


class InvalidInput(MemCubeError, ValueError):
    """The request itself is wrong: a bad name, an empty text, a value out of range."""


class NotFound(MemCubeError, LookupError):
    """An id, cube or entity that does not exist (or no longer does)."""


class Conflict(MemCubeError):
    """The request clashes with the current state (e.g. restoring an active memory)."""


class Unavailable(MemCubeError):
    """A derived store cannot be reached right now (e.g. the graph is locked by another process)."""
