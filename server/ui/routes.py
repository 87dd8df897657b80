"""The JSON API behind the page: one route per view or change, each a thin call into ``UiService``."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Route

from memory.errors import Conflict, InvalidInput, MemCubeError, NotFound, Unavailable

from ..wire import MAX_DEPTH
from .jobs import MAX_UPLOAD, Jobs
from .service import Forbidden, UiService

STATUS_ACTIONS = ("archive", "restore", "delete", "purge")
MAX_BODY = 1024 * 1024


def _status_of(exc: Exception) -> int:
    if isinstance(exc, Forbidden):
        return 403
    if isinstance(exc, NotFound):
        return 404
    if isinstance(exc, Conflict):
        return 409
    if isinstance(exc, Unavailable):
        return 503
    return 400


async def _run(work: Callable[[], Any]) -> Response:
    try:
        result = await anyio.to_thread.run_sync(work)
    except (MemCubeError, ValidationError, ValueError) as exc:
        message = _validation_message(exc) if isinstance(exc, ValidationError) else str(exc)
        return JSONResponse({"error": message}, status_code=_status_of(exc))
    return JSONResponse(result)


def _validation_message(exc: ValidationError) -> str:
    parts = []
    for error in exc.errors()[:5]:
        where = ".".join(str(p) for p in error.get("loc", ())) or "input"
        parts.append(f"{where}: {error.get('msg')}")
    return "; ".join(parts)


async def _json_body(request: Request) -> dict[str, Any]:
    body = await request.body()
    if len(body) > MAX_BODY:
        raise InvalidInput("request too large")
    try:
        value = json.loads(body or b"{}")
    except RecursionError:  # a 100,000-deep body: a clear 400, not a 500 (issue 26)
        raise InvalidInput(f"the request body is nested deeper than {MAX_DEPTH} levels") from None
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise InvalidInput("the request body is not valid JSON") from None
    if not isinstance(value, dict):
        raise InvalidInput("the request body must be a JSON object")
    problem = _unfit(value)
    if problem:
        raise InvalidInput(problem)
    return value


def _unfit(value: Any) -> str | None:
    """What the MCP side refuses in a message (``server.wire``), refused here too: deep nesting, lone surrogates."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, str):
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                return "a string in the request body holds a lone surrogate (U+D800 to U+DFFF); send valid Unicode"
        elif isinstance(item, dict | list):
            if depth > MAX_DEPTH:
                return f"the request body is nested deeper than {MAX_DEPTH} levels"
            children = [*item, *item.values()] if isinstance(item, dict) else item
            stack.extend((child, depth + 1) for child in children)
    return None


def _int(request: Request, name: str, default: int, low: int, high: int) -> int:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise InvalidInput(f"{name} must be a whole number") from None
    if not low <= value <= high:
        raise InvalidInput(f"{name} must be between {low} and {high}")
    return value


def build_routes(service: UiService, jobs: Jobs, static: Path) -> list[Route]:
    async def index(request: Request) -> Response:
        return FileResponse(static / "index.html", media_type="text/html")

    async def cubes(request: Request) -> Response:
        return await _run(service.cubes)

    async def memories(request: Request) -> Response:
        p = request.query_params
        filters = {k: p[k] for k in ("status", "type", "role", "tag", "since", "until") if p.get(k)}
        try:
            limit = _int(request, "limit", 50, 1, 200)
        except InvalidInput as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        return await _run(lambda: service.memories(request.path_params["cube"], filters, p.get("cursor") or None, limit))

    async def facets(request: Request) -> Response:
        return await _run(lambda: service.facets(request.path_params["cube"]))

    async def search(request: Request) -> Response:
        p = request.query_params
        try:
            limit = _int(request, "limit", 20, 1, 100)
        except InvalidInput as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        return await _run(
            lambda: service.search(
                request.path_params["cube"],
                p.get("q", ""),
                mode=p.get("mode", "hybrid"),
                limit=limit,
                types=p.getlist("type") or None,
                tags=p.getlist("tag") or None,
                include_archived=p.get("include_archived") == "1",
            )
        )

    async def memory(request: Request) -> Response:
        return await _run(lambda: service.memory(request.path_params["cube"], request.path_params["id"]))

    async def add(request: Request) -> Response:
        try:
            body = await _json_body(request)
        except InvalidInput as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        return await _run(lambda: service.add(request.path_params["cube"], body))

    async def choices(request: Request) -> Response:
        return await _run(lambda: service.choices(request.path_params["cube"]))

    async def update(request: Request) -> Response:
        try:
            body = await _json_body(request)
        except InvalidInput as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        return await _run(lambda: service.update(request.path_params["cube"], request.path_params["id"], body))

    async def status_action(request: Request) -> Response:
        action = request.path_params["action"]
        if action not in STATUS_ACTIONS:
            return JSONResponse({"error": f"unknown action {action!r}; one of {', '.join(STATUS_ACTIONS)}"}, status_code=404)
        return await _run(lambda: service.change_status(request.path_params["cube"], request.path_params["id"], action))

    async def tasks(request: Request) -> Response:
        return await _run(lambda: service.tasks(request.path_params["cube"]))

    async def progress(request: Request) -> Response:
        try:
            body = await _json_body(request)
        except InvalidInput as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        return await _run(lambda: service.progress(request.path_params["cube"], request.path_params["id"], body))

    async def preferences(request: Request) -> Response:
        return await _run(lambda: service.preferences(request.path_params["cube"]))

    async def graph(request: Request) -> Response:
        try:
            depth = _int(request, "depth", 1, 1, 2)
        except InvalidInput as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        return await _run(lambda: service.graph(request.path_params["cube"], request.query_params.get("entity", ""), depth))

    async def profile(request: Request) -> Response:
        return await _run(lambda: service.profile(request.path_params["cube"], request.query_params.get("role")))

    async def activity(request: Request) -> Response:
        return await _run(lambda: service.activity(request.path_params["cube"]))

    async def entities(request: Request) -> Response:
        return await _run(lambda: service.top_entities(request.path_params["cube"]))

    async def export(request: Request) -> Response:
        return await _run(lambda: jobs.export(request.path_params["cube"]).view())

    async def import_(request: Request) -> Response:
        # Streamed to a private file as it arrives, never gathered in memory (issue 26).
        cube = request.path_params["cube"]
        too_large = JSONResponse(
            {"error": f"the archive is larger than {MAX_UPLOAD // 2**20} MiB; import it with `memcube import`"},
            status_code=413,
        )
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > MAX_UPLOAD:
            return too_large
        try:
            upload = await anyio.to_thread.run_sync(lambda: jobs.upload(cube))
        except (MemCubeError, ValueError) as exc:
            return JSONResponse({"error": str(exc)}, status_code=_status_of(exc))
        try:
            async for chunk in request.stream():
                if not await anyio.to_thread.run_sync(upload.write, chunk):
                    return too_large
            if not upload.size:
                return JSONResponse({"error": "send the archive (.zip from an export) as the request body"}, status_code=400)
            return await _run(lambda: jobs.import_archive(cube, upload).view())
        finally:
            await anyio.to_thread.run_sync(upload.discard)

    async def job(request: Request) -> Response:
        return await _run(lambda: jobs.get(request.path_params["job"]).view())

    async def job_file(request: Request) -> Response:
        try:
            found = jobs.get(request.path_params["job"])
        except NotFound as exc:
            return JSONResponse({"error": str(exc)}, status_code=404)
        if not found.file:
            return JSONResponse({"error": "this job has no file (yet)"}, status_code=404)
        return FileResponse(found.file, media_type="application/zip", filename=Path(found.file).name)

    cube = "/api/cubes/{cube}"
    return [
        Route("/", index),
        Route("/api/cubes", cubes),
        Route(f"{cube}/memories", memories),
        Route(f"{cube}/memories", add, methods=["POST"]),
        Route(f"{cube}/choices", choices),
        Route(f"{cube}/facets", facets),
        Route(f"{cube}/search", search),
        Route(f"{cube}/memories/{{id}}", memory),
        Route(f"{cube}/memories/{{id}}", update, methods=["PATCH"]),
        Route(f"{cube}/memories/{{id}}/progress", progress, methods=["POST"]),
        Route(f"{cube}/memories/{{id}}/{{action}}", status_action, methods=["POST"]),
        Route(f"{cube}/tasks", tasks),
        Route(f"{cube}/preferences", preferences),
        Route(f"{cube}/graph", graph),
        Route(f"{cube}/entities", entities),
        Route(f"{cube}/profile", profile),
        Route(f"{cube}/activity", activity),
        Route(f"{cube}/export", export, methods=["POST"]),
        Route(f"{cube}/import", import_, methods=["POST"]),
        Route("/api/jobs/{job}", job),
        Route("/api/jobs/{job}/file", job_file),
    ]
