"""One canonical reading of ``memory://`` resource URIs, before any check (issue 13).

Access control and the resource handlers must agree on which cube a URI names. The SDK
matches ``memory://{cube}/...`` and percent-decodes each variable once, so a check that
looked at the raw text (``memory://%68ome/recent``) and a handler that saw the decoded
name (``home``) disagreed. Here a URI is read once, strictly: a cube name never needs
percent-encoding (it is ASCII letters, digits, ``-`` and ``_``), so the cube part must
already be in its one canonical spelling; anything else (percent-encoding, other case in
the scheme, Unicode look-alikes, userinfo, ports, trailing characters, a query or a
fragment) is refused with a message that says how to write the URI.
"""

from __future__ import annotations

from dataclasses import dataclass

from memory.config import CUBE_NAME_PATTERN

SCHEME_PREFIX = "memory://"
CUBE_LIST_URI = "memory://cubes"
MAX_URI_CHARS = 2048


class NonCanonicalUri(ValueError):
    """A ``memory://`` URI that is not in the one spelling this server serves."""


@dataclass(frozen=True)
class MemoryUri:
    cube: str | None  # None for the cube list (memory://cubes)
    path: str  # what follows the cube, without the leading '/'; '' for the cube list


def is_memory_uri(uri: str) -> bool:
    """Anything that a reader could take for a memory:// URI (any case, surrounding spaces)."""
    return uri.strip().lower().startswith(SCHEME_PREFIX)


def parse_memory_uri(uri: object) -> MemoryUri:
    """The cube and path of a ``memory://`` URI, or ``NonCanonicalUri`` saying what is wrong.

    Only the cube matters for access control: the rest is the resource handler's business
    and is passed through as given (the SDK decodes it once, which is harmless there).
    """
    if not isinstance(uri, str):
        raise NonCanonicalUri("a resource URI must be a string")
    if len(uri) > MAX_URI_CHARS:
        raise NonCanonicalUri(f"a resource URI may have at most {MAX_URI_CHARS} characters")
    if not uri.startswith(SCHEME_PREFIX):
        raise NonCanonicalUri(f"not a memory URI: write it as {SCHEME_PREFIX}<cube>/<resource>, in lower case")
    rest = uri[len(SCHEME_PREFIX) :]
    if rest in ("cubes", "cubes/"):
        return MemoryUri(None, "")
    cube, slash, path = rest.partition("/")
    if not slash or not path:
        raise NonCanonicalUri(f"{_shown(uri)} names no resource: write {SCHEME_PREFIX}<cube>/recent, /stats, /items/<id>, ...")
    if CUBE_NAME_PATTERN.fullmatch(cube) is None:
        raise NonCanonicalUri(
            f"{_shown(uri)} does not name a cube in its canonical form: the part after {SCHEME_PREFIX} must be the cube's "
            "name exactly (letters, digits, '-' or '_'; no percent-encoding, no other characters)"
        )
    if "?" in path or "#" in path:
        raise NonCanonicalUri(f"{_shown(uri)}: memory URIs take no query or fragment")
    return MemoryUri(cube, path)


def _shown(uri: str) -> str:
    return repr(uri[:120])
