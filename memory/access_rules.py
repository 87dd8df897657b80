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
changes nothing. ``clientInfo`` is what the client says it is: the rules keep honest
clients in their lanes (the work assistant out of the home cube); they are not a wall
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
        return rules.get(cube, rules.get("*", self.default))

    def allows(self, client: str | None, cube: str, need: Literal["read", "write"]) -> bool:
        return _RANK[self.level(client, cube)] >= _RANK[need]
