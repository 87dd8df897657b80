"""Per-token identities for MCP over HTTP (issue 13).

With one shared token, whoever held it chose its rights by the ``clientInfo`` name it
declared. Now each bearer token names a *principal*, and over HTTP the principal is the
caller's identity for the ``[access]`` rules; ``clientInfo`` is not consulted. The token
file (``<home>/http-tokens.toml``, or the path in ``MEMCUBE_HTTP_TOKENS``) maps
principals to tokens:

    [tokens]
    laptop-claude = "a-long-random-secret"      # access rules name "laptop-claude"
    work-ide = "another-long-random-secret"

It must be readable by its owner only (``chmod 600``): the server refuses to start
otherwise. The older single ``MEMCUBE_HTTP_TOKEN`` still works; its principal is
``http-token``. Only digests of the tokens are kept in memory.

HTTP always needs a token (issue 26): when neither the file nor ``MEMCUBE_HTTP_TOKEN``
gives one, ``ensure_token_file`` writes ``<home>/http-tokens.toml`` (0600) with one new
token for the principal ``local``. Every token, from whichever source, obeys one rule
(``check_token``): at least 16 visible ASCII characters, no spaces.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import stat
import tomllib
from pathlib import Path

TOKENS_ENV = "MEMCUBE_HTTP_TOKENS"
TOKENS_FILE = "http-tokens.toml"
SINGLE_TOKEN_PRINCIPAL = "http-token"
GENERATED_PRINCIPAL = "local"
MIN_TOKEN_CHARS = 16


class TokenFileError(ValueError):
    """The token file is missing, unreadable, unsafe or malformed; the message says what to change."""


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8")).digest()


class Principals:
    """Bearer tokens and the principal each one names."""

    def __init__(self, tokens: dict[str, str]) -> None:
        """``tokens``: principal -> token."""
        self._by_digest = [(_digest(token), principal) for principal, token in tokens.items()]

    def __bool__(self) -> bool:
        return bool(self._by_digest)

    def principal(self, authorization: bytes) -> str | None:
        """The principal of ``Authorization: Bearer <token>``, or None. Every entry is compared, in constant time."""
        if not authorization.startswith(b"Bearer "):
            return None
        given = hashlib.sha256(authorization[len(b"Bearer ") :]).digest()
        found = None
        for digest, principal in self._by_digest:
            if hmac.compare_digest(given, digest):
                found = principal
        return found


def token_file_path(home: Path) -> Path | None:
    """The token file to use: ``MEMCUBE_HTTP_TOKENS``, else ``<home>/http-tokens.toml`` when it exists."""
    configured = os.environ.get(TOKENS_ENV, "").strip()
    if configured:
        return Path(configured).expanduser()
    default = home / TOKENS_FILE
    return default if default.exists() else None


def check_token(token: object, where: str) -> str:
    """``token`` when it is a usable secret, else ``TokenFileError`` naming ``where`` it came from.

    One rule for every source (token file, ``MEMCUBE_HTTP_TOKEN``, a caller's argument): at
    least ``MIN_TOKEN_CHARS`` visible ASCII characters, the characters a bearer token is
    sent with in an HTTP header.
    """
    if (
        not isinstance(token, str)
        or len(token) < MIN_TOKEN_CHARS
        or not token.isascii()
        or not token.isprintable()
        or any(c.isspace() for c in token)
    ):
        raise TokenFileError(
            f"{where} must be a string of at least {MIN_TOKEN_CHARS} visible ASCII characters without spaces "
            "(e.g. the output of `openssl rand -hex 32`)"
        )
    return token


def new_token() -> str:
    return secrets.token_hex(32)


def ensure_token_file(home: Path) -> str | None:
    """Make ``<home>/http-tokens.toml`` with one new token when it does not exist; returns that token, else None.

    The file is written 0600 under a temporary name and linked into place whole: of two
    servers starting at once, one makes it and the other reads it complete. A new home is
    made 0700.
    """
    from memory.store.filemodes import FILE_MODE, private_dir

    path = home / TOKENS_FILE
    if path.exists():
        return None
    if path.is_symlink():  # a link to nothing: making the token there would write who knows where
        raise TokenFileError(
            f"the token file {path} is a symbolic link to a missing file ({os.readlink(path)}): "
            "remove the link or put a token file where it points"
        )
    token = new_token()
    text = (
        "# Bearer tokens for `memcube serve --http`, made by MemCube because none was set up.\n"
        "# A client sends 'Authorization: Bearer <token>'; the [access] rules name the principal (left).\n"
        f'[tokens]\n{GENERATED_PRINCIPAL} = "{token}"\n'
    )
    temporary = home / f".{TOKENS_FILE}.{os.getpid()}.{secrets.token_hex(4)}"
    try:
        private_dir(home)
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
        os.chmod(temporary, FILE_MODE)
        os.link(temporary, path)  # fails, leaving the other's file, when it exists by now
    except FileExistsError:
        return None
    except OSError as exc:
        raise TokenFileError(f"cannot create the token file {path}: {exc.strerror or exc}") from None
    finally:
        temporary.unlink(missing_ok=True)
    return token


def load_principals(path: Path | None, single_token: str | None = None) -> Principals:
    tokens: dict[str, str] = {}
    if single_token is not None:
        tokens[SINGLE_TOKEN_PRINCIPAL] = check_token(single_token, "MEMCUBE_HTTP_TOKEN (the bearer token)")
    if path is not None:
        tokens.update(read_token_file(path))
    seen: dict[str, str] = {}
    for principal, token in tokens.items():
        if token in seen:
            raise TokenFileError(f"principals {seen[token]!r} and {principal!r} share one token: give each its own")
        seen[token] = principal
    return Principals(tokens)


def read_token_file(path: Path) -> dict[str, str]:
    try:
        info = os.stat(path)
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise TokenFileError(f"cannot read the token file {path}: {exc.strerror}") from None
    if info.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise TokenFileError(f"the token file {path} can be read by other users: run `chmod 600 {path}`")
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise TokenFileError(f"{path} is not valid TOML: {exc}") from None
    table = data.get("tokens")
    if not isinstance(table, dict) or not table:
        raise TokenFileError(f'{path} has no [tokens] table: write lines such as  laptop-claude = "<long random secret>"')
    tokens: dict[str, str] = {}
    for principal, token in table.items():
        tokens[principal] = check_token(token, f"{path}: the token of {principal!r}")
    return tokens
