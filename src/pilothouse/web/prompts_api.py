"""The prompt registry over HTTP: reads for applications (API key or admin token), writes
for admins, and a Server-Sent Events stream of changes that SDK clients listen to."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import orjson
from pydantic import Field
from starlette.responses import Response, StreamingResponse

from pilothouse import errors
from pilothouse.registry import diff, prompt_content
from pilothouse.registry import prompts as registry
from pilothouse.web.auth import Access
from pilothouse.web.endpoint import Api, Body, Call, Query, parse
from pilothouse.web.fields import INT32_MAX, Json, Name, Text
from pilothouse.web.rendering import Result

api = Api()


class VersionMeta(Body):
    description: Text | None = None
    owner: Name | None = None
    tags: list[Name] | None = None
    note: Text | None = None
    labels: list[Name] | None = None


class VersionBody(VersionMeta):
    """A new version: its content (see docs/prompts.md) and its metadata."""

    messages: list[dict[str, Json]] | None = None
    text: Text | None = None
    variables: dict[str, Json] | None = None
    tools: list[dict[str, Json]] | None = None
    response_format: dict[str, Json] | None = None


class MoveLabel(Body):
    version: int = Field(ge=1, le=INT32_MAX)
    reason: Text | None = None


class Reason(Body):
    reason: Text | None = None


class Which(Query):
    label: Name | None = None
    version: int | None = Field(default=None, ge=1, le=INT32_MAX)


class DiffQuery(Query):
    old: int = Field(ge=1, le=INT32_MAX)
    new: int = Field(ge=1, le=INT32_MAX)


class Resume(Query):
    last_event_id: int | None = Field(default=None, ge=0, le=2**62)


@api.get("/api/prompts", Access.READER)
async def list_prompts(call: Call) -> dict[str, Any]:
    return {"data": await call.run(registry.list_prompts, call.services.store)}


@api.get("/api/prompts/stream", Access.READER)
async def stream(call: Call, query: Resume) -> Response:
    """SSE: one event per registry change, resumable with Last-Event-ID."""
    feed = call.services.prompt_feed
    resume = call.request.headers.get("last-event-id")
    if resume and not (resume.isascii() and resume.isdigit() and len(resume) <= 18):
        raise errors.InvalidRequest(f"Last-Event-ID must be an event id, got {resume[:40]!r}")
    after_id = int(resume) if resume else query.last_event_id
    if after_id is None:
        after_id = feed.last_id

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
                "at": event["at"],
            }
            yield b"id: %d\nevent: prompt\ndata: %s\n\n" % (event["id"], orjson.dumps(data))

    return StreamingResponse(
        events(),
        media_type="text/event-stream",
        headers={"cache-control": "no-cache", "x-accel-buffering": "no"},
    )


@api.get("/api/prompts/{name}", Access.READER)
async def get_prompt(call: Call, query: Which) -> Response | Result:
    version, label = query.version, query.label
    if version is not None and label is not None:
        raise errors.InvalidRequest("give `label` or `version`, not both")
    prompt = await call.run(
        registry.get, call.services.store, call.path["name"], label=label, version=version
    )
    etag = f'"{prompt.etag}"'
    if call.request.headers.get("if-none-match") == etag:
        return Response(status_code=304, headers={"etag": etag})
    return Result(prompt.public(), headers={"etag": etag})


@api.get("/api/prompts/{name}/versions", Access.READER)
async def list_versions(call: Call) -> dict[str, Any]:
    data = await call.run(registry.list_versions, call.services.store, call.path["name"])
    return {"data": data}


@api.get("/api/prompts/{name}/history", Access.READER)
async def prompt_history(call: Call) -> dict[str, Any]:
    data = await call.run(registry.history, call.services.store, call.path["name"])
    return {"data": data}


@api.get("/api/prompts/{name}/diff", Access.READER)
async def prompt_diff(call: Call, query: DiffQuery) -> dict[str, Any]:
    """Two versions side by side, line by line, per message."""
    return await call.run(
        diff.side_by_side, call.services.store, call.path["name"], query.old, query.new
    )


@api.post("/api/prompts/{name}/versions", Access.ADMIN, doc_body=VersionBody)
async def create_version(call: Call) -> Result:
    fields = await call.json_object()
    meta = parse(VersionMeta, {k: fields.pop(k) for k in VersionMeta.model_fields if k in fields})
    content = prompt_content.parse_content(fields)
    prompt, created = await call.run(
        registry.create_version,
        call.services.store,
        call.path["name"],
        content,
        actor=call.actor,
        **meta.model_dump(),
    )
    await call.services.announce()
    return Result({"created": created, **prompt.public()}, status=201 if created else 200)


async def _move_label(call: Call, body: MoveLabel) -> dict[str, Any]:
    prompt = await call.run(
        registry.move_label,
        call.services.store,
        call.path["name"],
        call.path["label"],
        body.version,
        actor=call.actor,
        reason=body.reason,
    )
    await call.services.announce()
    return prompt.public()


api.post("/api/prompts/{name}/labels/{label}", Access.ADMIN)(_move_label)
api.put("/api/prompts/{name}/labels/{label}", Access.ADMIN)(_move_label)


@api.delete("/api/prompts/{name}/labels/{label}", Access.ADMIN)
async def delete_label(call: Call, body: Reason | None) -> dict[str, Any]:
    await call.run(
        registry.delete_label,
        call.services.store,
        call.path["name"],
        call.path["label"],
        actor=call.actor,
        reason=body.reason if body else None,
    )
    await call.services.announce()
    return {"deleted": True}


@api.post("/api/prompts/{name}/labels/{label}/rollback", Access.ADMIN)
async def rollback_label(call: Call, body: Reason | None) -> dict[str, Any]:
    prompt = await call.run(
        registry.rollback_label,
        call.services.store,
        call.path["name"],
        call.path["label"],
        actor=call.actor,
        reason=body.reason if body else None,
    )
    await call.services.announce()
    return prompt.public()
