"""The MCP App (the ``io.modelcontextprotocol/ui`` extension, SEP-1865): the memory views inside the chat.

Three ``ui://`` resources (``text/html;profile=mcp-app``, self-contained, their CSP declared in
``_meta.ui``) are linked from ``memory_search``, ``memory_profile`` and ``memory_graph`` through
``_meta.ui.resourceUri``. They are offered only to a client that negotiated the extension (it
lists the app MIME type in its ``io.modelcontextprotocol/ui`` capability): every other client
sees the tool and resource lists exactly as before, and ``resources/read`` of a ``ui://`` URI
is unknown to it. Inside the host the app talks through the host's bridge (``tools/call`` on
this server), so the access rules that guard every tool guard the app too.

The SDK's ``mcp.server.apps.Apps`` stamps ``_meta.ui`` on every listing; offering the app only
to clients that ask for it needs a middleware that sees the caller's capabilities.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

from mcp.server.apps import APP_MIME_TYPE, EXTENSION_ID, client_supports_apps
from mcp.server.extension import Extension
from mcp.types import ReadResourceResult, Resource, TextResourceContents

APP_HTML = Path(__file__).parent / "apps" / "memory_app.html"
# view -> (resource URI, title, the tool it renders)
VIEWS: dict[str, tuple[str, str, str]] = {
    "search": ("ui://memcube/search", "Memory search", "memory_search"),
    "profile": ("ui://memcube/profile", "Profile", "memory_profile"),
    "graph": ("ui://memcube/graph", "Entity graph", "memory_graph"),
}
TOOL_APPS = {tool: uri for uri, _, tool in VIEWS.values()}
VIEW_OF_URI = {uri: view for view, (uri, _, _) in VIEWS.items()}
# Nothing to load or reach outside the app itself: the host's default (most restrictive) CSP fits.
UI_META: dict[str, Any] = {"csp": {"connectDomains": [], "resourceDomains": []}, "prefersBorder": True}


class MemoryAppsExtension(Extension):
    """Advertises the extension in the server's capabilities; what it offers depends on the client (``AppsOffer``)."""

    identifier = EXTENSION_ID


@cache
def app_html(view: str) -> str:
    """The self-contained HTML of one view (the shared template with its view name filled in)."""
    if view not in VIEWS:
        raise KeyError(view)
    return APP_HTML.read_text(encoding="utf-8").replace("__MEMCUBE_VIEW__", view)


def app_resources() -> list[Resource]:
    return [
        Resource(
            uri=uri,
            name=f"memcube-{view}",
            title=title,
            description=f"Interactive view of {tool} (MCP App)",
            mime_type=APP_MIME_TYPE,
            _meta={"ui": UI_META},
        )
        for view, (uri, title, tool) in VIEWS.items()
    ]


def read_app(uri: str) -> ReadResourceResult:
    view = VIEW_OF_URI[uri]
    return ReadResourceResult(
        contents=[TextResourceContents(uri=uri, mime_type=APP_MIME_TYPE, text=app_html(view), _meta={"ui": UI_META})]
    )


def _negotiated(ctx: Any) -> bool:
    try:
        return client_supports_apps(ctx)
    except Exception:  # a context without a session (or capabilities): no app
        return False


class AppsOffer:
    """Server middleware: links the three tools to their apps and serves the apps, for clients that negotiated them."""

    async def __call__(self, ctx: Any, call_next: Any) -> Any:
        method = getattr(ctx, "method", None)
        if method not in ("tools/list", "resources/list", "resources/read") or not _negotiated(ctx):
            return await call_next(ctx)
        params = getattr(ctx, "params", None) or {}
        if method == "resources/read":
            uri = str(params.get("uri", "")) if isinstance(params, dict) else ""
            if uri in VIEW_OF_URI:
                return read_app(uri)
            return await call_next(ctx)
        result = await call_next(ctx)
        # The handler's result arrives as a model or as its wire dict, depending on the path it took.
        if method == "tools/list":
            if isinstance(result, dict) and isinstance(result.get("tools"), list):
                result = {**result, "tools": [_linked_wire(tool) for tool in result["tools"]]}
            elif hasattr(result, "tools"):
                result.tools = [_linked(tool) for tool in result.tools]
        elif method == "resources/list" and not (isinstance(params, dict) and params.get("cursor")):
            if isinstance(result, dict) and isinstance(result.get("resources"), list):
                wire = [r.model_dump(mode="json", by_alias=True, exclude_none=True) for r in app_resources()]
                result = {**result, "resources": [*result["resources"], *wire]}
            elif hasattr(result, "resources"):
                result.resources = [*result.resources, *app_resources()]
        return result


def _linked_wire(tool: Any) -> Any:
    uri = TOOL_APPS.get(tool.get("name", "")) if isinstance(tool, dict) else None
    if uri is None:
        return tool
    return {**tool, "_meta": {**(tool.get("_meta") or {}), "ui": {"resourceUri": uri}}}


def _linked(tool: Any) -> Any:
    uri = TOOL_APPS.get(getattr(tool, "name", ""))
    if uri is None:
        return tool
    # A new dict: the listed tool shares its meta with the tool manager (and with other clients' listings).
    meta = {**(tool.meta or {}), "ui": {"resourceUri": uri}}
    return tool.model_copy(update={"meta": meta})
