"""The prompt registry over HTTP: reads for applications (API key or admin token), writes
for admins, and a Server-Sent Events stream of changes that SDK clients listen to."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

import orjson
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from pilothouse import errors
from pilothouse.registry import prompt_content
from pilothouse.registry import prompts as registry
from pilothouse.web.api import admin, int_param, json_body, jsonable, reader

if TYPE_CHECKING:
    from pilothouse.server import Server


def actor(request: Request) -> str:
    return request.headers.get("x-pilothouse-actor", "admin")[:200]


@reader
async def list_prompts(request: Request) -> Response:
    server: Server = request.app.state.server
    return JSONResponse({"data": await asyncio.to_thread(registry.list_prompts, server.store)})


@reader
async def get_prompt(request: Request) -> Response:
    server: Server = request.app.state.server
    name = request.path_params["name"]
    version = int_param(request.query_params.get("version"), "version", default=None)
    label = request.query_params.get("label")
    if version is not None and label is not None:
        raise errors.InvalidRequest("give `label` or `version`, not both")
    prompt = await asyncio.to_thread(registry.get, server.store, name, label=label, version=version)
    etag = f'"{prompt.etag}"'
    if request.headers.get("if-none-match") == etag:
        return Response(status_code=304, headers={"etag": etag})
    return JSONResponse(prompt.public(), headers={"etag": etag})


@reader
async def list_versions(request: Request) -> Response:
    server: Server = request.app.state.server
    data = await asyncio.to_thread(
        registry.list_versions, server.store, request.path_params["name"]
    )
    return JSONResponse({"data": data})


@reader
async def prompt_history(request: Request) -> Response:
    server: Server = request.app.state.server
    data = await asyncio.to_thread(registry.history, server.store, request.path_params["name"])
    return JSONResponse({"data": [{k: jsonable(v) for k, v in entry.items()} for entry in data]})


@admin
async def create_version(request: Request) -> Response:
    server: Server = request.app.state.server
    name = request.path_params["name"]
    body = await json_body(request)
    meta = {key: body.pop(key, None) for key in ("description", "owner", "tags", "note", "labels")}
    _check_meta(meta)
    content = prompt_content.parse_content(body)
    prompt, created = await asyncio.to_thread(
        registry.create_version, server.store, name, content, actor=actor(request), **meta
    )
    await server.changed()
    return JSONResponse(
        {"created": created, **prompt.public()}, status_code=201 if created else 200
    )


def _check_meta(meta: dict[str, Any]) -> None:
    for key in ("description", "owner", "note"):
        if meta[key] is not None and not isinstance(meta[key], str):
            raise errors.InvalidRequest(f"`{key}` must be a string", param=key)
    for key in ("tags", "labels"):
        value = meta[key]
        if value is not None and (
            not isinstance(value, list) or not all(isinstance(v, str) for v in value)
        ):
            raise errors.InvalidRequest(f"`{key}` must be a list of strings", param=key)


@admin
async def move_label(request: Request) -> Response:
    server: Server = request.app.state.server
    body = await json_body(request)
    version = body.get("version")
    if not isinstance(version, int) or isinstance(version, bool):
        raise errors.InvalidRequest("`version` is required and must be an integer", param="version")
    prompt = await asyncio.to_thread(
        registry.move_label,
        server.store,
        request.path_params["name"],
        request.path_params["label"],
        version,
        actor=actor(request),
        reason=_reason(body),
    )
    await server.changed()
    return JSONResponse(prompt.public())


@admin
async def rollback_label(request: Request) -> Response:
    server: Server = request.app.state.server
    body = await json_body(request) if await request.body() else {}
    prompt = await asyncio.to_thread(
        registry.rollback_label,
        server.store,
        request.path_params["name"],
        request.path_params["label"],
        actor=actor(request),
        reason=_reason(body),
    )
    await server.changed()
    return JSONResponse(prompt.public())


@admin
async def delete_label(request: Request) -> Response:
    server: Server = request.app.state.server
    body = await json_body(request) if await request.body() else {}
    await asyncio.to_thread(
        registry.delete_label,
        server.store,
        request.path_params["name"],
        request.path_params["label"],
        actor=actor(request),
        reason=_reason(body),
    )
    await server.changed()
    return JSONResponse({"deleted": True})


def _reason(body: dict[str, Any]) -> str | None:
    reason = body.get("reason")
    if reason is not None and not isinstance(reason, str):
        raise errors.InvalidRequest("`reason` must be a string", param="reason")
    return reason


@reader
async def stream(request: Request) -> Response:
    """SSE: one event per registry change, resumable with Last-Event-ID."""
    server: Server = request.app.state.server
    assert server.prompt_feed is not None
    feed = server.prompt_feed
    resume = request.headers.get("last-event-id") or request.query_params.get("last_event_id")
    try:
        after_id = int(resume) if resume else feed.last_id
    except ValueError:
        raise errors.InvalidRequest(f"Last-Event-ID must be an event id, got {resume!r}") from None

    async def events() -> AsyncIterator[bytes]:
        yield b": connected\n\n"
        async for event in feed.subscribe(after_id):
            if event is None:
                yield b": ping\n\n"
                continue
            data = {
                "id": event["id"],
                "name": event["prompt_name"],
                "label": event["label"],
                "version": event["version"],
                "previous_version": event["previous_version"],
                "hash": event["hash"],
                "kind": event["kind"],
                "rollback": bool(event["rollback"]),
                "at": jsonable(event["at"]),
            }
            yield b"id: %d\nevent: prompt\ndata: %s\n\n" % (event["id"], orjson.dumps(data))

    return StreamingResponse(
        events(),
        media_type="text/event-stream",
        headers={"cache-control": "no-cache", "x-accel-buffering": "no"},
    )


routes = [
    Route("/api/prompts", list_prompts, methods=["GET"]),
    Route("/api/prompts/stream", stream, methods=["GET"]),
    Route("/api/prompts/{name}", get_prompt, methods=["GET"]),
    Route("/api/prompts/{name}/versions", list_versions, methods=["GET"]),
    Route("/api/prompts/{name}/versions", create_version, methods=["POST"]),
    Route("/api/prompts/{name}/history", prompt_history, methods=["GET"]),
    Route("/api/prompts/{name}/labels/{label}", move_label, methods=["POST", "PUT"]),
    Route("/api/prompts/{name}/labels/{label}", delete_label, methods=["DELETE"]),
    Route("/api/prompts/{name}/labels/{label}/rollback", rollback_label, methods=["POST"]),
]
