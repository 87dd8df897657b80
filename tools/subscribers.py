"""Who subscribed to which resource URI (2025-era ``resources/subscribe``), one entry per client.

The SDK hands each request a fresh session proxy, so the proxy itself cannot say "the same
client" across requests. The connection's ``initialize`` parameters are one object for the
connection's life: they anchor the entry (held here, so their identity cannot be reused),
and the latest proxy sends the notifications on the connection's standalone channel.
"""

from __future__ import annotations

from typing import Any


def _anchor(session: Any) -> object:
    params = getattr(session, "client_params", None)
    return params if params is not None else session


class Subscribers:
    def __init__(self) -> None:
        self._by_uri: dict[str, dict[int, tuple[object, Any]]] = {}

    def add(self, uri: str, session: Any) -> None:
        anchor = _anchor(session)
        self._by_uri.setdefault(uri, {})[id(anchor)] = (anchor, session)

    def remove(self, uri: str, session: Any) -> None:
        self._by_uri.get(uri, {}).pop(id(_anchor(session)), None)

    def of(self, uri: str) -> list[Any]:
        """The sessions to tell that ``uri`` changed."""
        return [session for _, session in self._by_uri.get(uri, {}).values()]
