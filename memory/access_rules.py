"""Who may read or write which cube.

Each call knows its client: the MCP ``clientInfo`` name (or, over HTTP, the principal of
the bearer token). ``<home>/config.toml`` grants access per client and cube:

    [access]
    default = "write"          # clients not listed below: none | read | write

    [access.clients."Claude Desktop"]
    "*" = "read"               # this client's default
    work = "write"
    private = "none"

With no ``[access]`` section every local client may do everything, so a single user
changes nothing. A rule holds for its cube name in any case (``private`` refuses ``Private``
too), and a cube a client may not read is answered like one that does not exist
(``hidden``). ``clientInfo`` is what the client says it is: the rules keep honest clients
in their lanes (the work assistant out of the home cube); they are not a wall
against other programs of the same user, which can read the files directly.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

Level = Literal["none", "read", "write"]
_RANK = {"none": 0, "read": 1, "write": 2}


class AccessConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    default: Level = "write"
    clients: dict[str, dict[str, Level]] = Field(default_factory=dict)

    def level(self, client: str | None, cube: str) -> Level:
        rules = self.clients.get(client or "", None)
        if rules is None:
            return self.default
        # A cube has one spelling whatever the case (memory.home), so a rule holds for every
        # case variant of its name, the strictest when two spellings are given: refused
        # `home`, a client is refused `HOME` too, whether or not `home` exists (issue 26).
        folded = cube.casefold()
        named = [level for name, level in rules.items() if name != "*" and name.casefold() == folded]
        if named:
            return min(named, key=_RANK.__getitem__)
        return rules.get("*", self.default)

    def allows(self, client: str | None, cube: str, need: Literal["read", "write"]) -> bool:
        return _RANK[self.level(client, cube)] >= _RANK[need]


def hidden(client: str | None, cube: str, rules: str) -> str:
    """The answer for a cube a client may not read or that does not exist: the same for both (issue 26).

    Every boundary (MCP, the UI) says this, so no caller learns which cubes it is refused exist.
    ``rules``: where the rules that grant access are (``MemoryHome.access_rules_place``).
    """
    return (
        f"client {client or '(unnamed)'!r} may not read cube '{cube}', or no cube '{cube}' exists"
        f" (adding a memory makes a cube; {rules} grant access)"
    )
