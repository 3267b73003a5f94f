"""The prompt registry over HTTP: reads for applications (an API key reads the prompts its
routes serve and those granted to it; the admin token reads all), writes for admins, and
a Server-Sent Events stream of changes that SDK clients listen to.

Writes take `If-Match` for optimistic locking: on a label, the version it should point at
now (`"3"`; `"0"`: it must not exist yet); on a new version, the latest version the
caller saw. A mismatch is 409 with the current state. A change that would break what
depends on a label is 409 naming the dependents; `force: true` with a `reason` overrides
it (audited). Moving a protected label (`production` by default) is held to the promotion
gate: 409 with its reasons when it says no, unless forced with a reason (audited)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import orjson
from pydantic import Field
from starlette.responses import Response, StreamingResponse

from pilothouse import errors
from pilothouse.registry import diff, names, prompt_content
from pilothouse.registry import prompts as registry
from pilothouse.web.auth import Access, Principal
from pilothouse.web.endpoint import FIRST_PAGE, Api, Body, Call, Page, Query, paged, parse
from pilothouse.web.fields import INT32_MAX, Ident, Json, Label, Name, Text
from pilothouse.web.rendering import Result

NAMED = (names.NAME_PATTERN, names.NAME_RULE)
api = Api({"name": NAMED, "label": NAMED})
MAX_BATCH = 1000


class VersionMeta(Body):
    description: Text | None = None
    owner: Name | None = None
    tags: list[Name] | None = Field(default=None, max_length=100)
    note: Text | None = None
    labels: list[Label] | None = Field(default=None, max_length=20)
    force: bool = False
    reason: Text | None = None


class VersionContent(Body):
    messages: list[dict[str, Json]] | None = Field(default=None, max_length=1000)
    text: Text | None = None
    variables: dict[str, Json] | None = None
    tools: list[dict[str, Json]] | None = None
    response_format: dict[str, Json] | None = None


class VersionBody(VersionMeta, VersionContent):
    """A new version: its content (see docs/prompts.md) and its metadata."""


class BatchPrompt(VersionContent):
    name: Ident
    description: Text | None = None
    owner: Name | None = None
    tags: list[Name] | None = Field(default=None, max_length=100)


class PushBatch(Body):
    """Several prompts (a directory) pushed in one transaction: all stored, or none."""

    prompts: list[BatchPrompt] = Field(min_length=1, max_length=MAX_BATCH)
    labels: list[Label] | None = Field(default=None, max_length=20)
    note: Text | None = None
    force: bool = False
    reason: Text | None = None


class MoveLabel(Body):
    version: int = Field(ge=1, le=INT32_MAX)
    reason: Text | None = None
    force: bool = False
    diff: dict[str, Any] | None = None  # a semantic diff summary for the changelog entry


class Change(Body):
    reason: Text | None = None
    force: bool = False


class Which(Query):
    label: Label | None = None
    version: int | None = Field(default=None, ge=1, le=INT32_MAX)


class DiffQuery(Query):
    old: int = Field(ge=1, le=INT32_MAX)
    new: int = Field(ge=1, le=INT32_MAX)


class Resume(Query):
    last_event_id: int | None = Field(default=None, ge=0, le=2**62)


def _if_match(call: Call) -> int | None:
    """The version an `If-Match` header expects (None: no header, or `*`)."""
    raw = call.request.headers.get("if-match")
    if raw is None or raw.strip() == "*":
        return None
    value = raw.strip().removeprefix("W/").strip('"')
    if not (value.isascii() and value.isdigit() and len(value) <= 10):
        raise errors.InvalidRequest(
            f'If-Match must be a version number such as "3", got {raw[:40]!r}', param="If-Match"
        )
    return int(value)


def _principal(call: Call) -> Principal:
    assert call.principal is not None
    return call.principal


@api.get("/api/prompts", Access.READER)
async def list_prompts(call: Call, query: Page = FIRST_PAGE) -> dict[str, Any]:
    """Prompts by name with owners, latest version and labels (a key sees the ones it may
    read), a page at a time (`limit`, `after`: `next_after`)."""
    rows = await call.run(
        registry.list_prompts, call.services.store, after=query.after, limit=query.limit
    )
    principal, snapshot = _principal(call), call.services.snapshot
    readable = [r for r in rows if principal.may_read_prompt(r["name"], snapshot)]
    return paged(readable, len(rows), query, rows[-1]["name"] if rows else None)


@api.get("/api/prompts/stream", Access.READER)
async def stream(call: Call, query: Resume) -> Response:
    """SSE: one event per registry change, resumable with Last-Event-ID."""
    feed = call.services.prompt_feed
    principal = _principal(call)
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
            if not principal.may_read_prompt(event["prompt_name"], call.services.snapshot):
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
            if "prompt" in event:  # what GET /api/prompts/{name}?label=... now answers
                data["prompt"], data["etag"] = event["prompt"], f'"{event["etag"]}"'
            yield b"id: %d\nevent: prompt\ndata: %s\n\n" % (event["id"], orjson.dumps(data))

    return StreamingResponse(
        events(),
        media_type="text/event-stream",
        headers={"cache-control": "no-cache", "x-accel-buffering": "no"},
    )


@api.get("/api/prompts/{name}", Access.READER)
async def get_prompt(call: Call, query: Which) -> Response | Result:
    """One version, by label (default production) or number, with its includes resolved."""
    version, label = query.version, query.label
    if version is not None and label is not None:
        raise errors.InvalidRequest("give `label` or `version`, not both")
    name, snapshot = call.path["name"], call.services.snapshot
    _principal(call).require_prompt(name, snapshot)
    # A fragment's move sends every SDK client holding an includer here at once.
    prompt = await call.services.prompt_reads.read(
        (name, label, version),
        lambda: call.run(registry.get, call.services.store, name, label=label, version=version),
    )
    etag = f'"{prompt.etag}"'
    if call.request.headers.get("if-none-match") == etag:
        return Response(status_code=304, headers={"etag": etag})
    return Result(prompt.public(), headers={"etag": etag})


@api.get("/api/prompts/{name}/versions", Access.READER)
async def list_versions(call: Call) -> dict[str, Any]:
    _principal(call).require_prompt(call.path["name"], call.services.snapshot)
    data = await call.run(registry.list_versions, call.services.store, call.path["name"])
    return {"data": data}


@api.get("/api/prompts/{name}/history", Access.HISTORY)
async def prompt_history(call: Call) -> dict[str, Any]:
    """The audit trail of a prompt: the admin token, or a key with `history:read`."""
    data = await call.run(registry.history, call.services.store, call.path["name"])
    return {"data": data}


@api.get("/api/prompts/{name}/diff", Access.READER)
async def prompt_diff(call: Call, query: DiffQuery) -> dict[str, Any]:
    """Two versions side by side, line by line, per message."""
    _principal(call).require_prompt(call.path["name"], call.services.snapshot)
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
        expected_latest=_if_match(call),
        policy=call.services.config.promotion,
        **meta.model_dump(),
    )
    await call.announce()
    call.services.webhooks.wake()  # a protected label it moved wrote a changelog entry
    return Result({"created": created, **prompt.public()}, status=201 if created else 200)


@api.post("/api/prompts:batch", Access.ADMIN)
async def push_batch(call: Call, body: PushBatch) -> Result:
    """Push several prompts at once (`pilothouse prompts push DIR`): one transaction, so a
    refused prompt or label leaves nothing behind."""
    items = []
    for index, entry in enumerate(body.prompts):
        raw = entry.model_dump(exclude_unset=True, exclude={"name", "description", "owner", "tags"})
        try:
            content = prompt_content.parse_content(raw)
        except errors.InvalidRequest as exc:
            raise errors.InvalidRequest(
                f"prompts.{index} ({entry.name}): {exc.message}",
                param=f"prompts.{index}.{exc.param}" if exc.param else f"prompts.{index}",
            ) from None
        items.append(
            registry.PushItem(entry.name, content, entry.description, entry.owner, entry.tags)
        )
    results = await call.run(
        registry.push,
        call.services.store,
        items,
        labels=body.labels or (),
        note=body.note,
        reason=body.reason,
        actor=call.actor,
        force=body.force,
        policy=call.services.config.promotion,
    )
    await call.announce()
    call.services.webhooks.wake()
    created = sum(1 for _, made in results if made)
    return Result(
        {
            "created": created,
            "unchanged": len(results) - created,
            "prompts": [
                {"name": p.name, "version": p.version, "hash": p.hash, "created": made}
                for p, made in results
            ],
        },
        status=201 if created else 200,
    )


async def _move_label(call: Call, body: MoveLabel) -> dict[str, Any]:
    """Point a label at a version (409 if that breaks a dependent, unless forced)."""
    prompt = await call.run(
        registry.move_label,
        call.services.store,
        call.path["name"],
        call.path["label"],
        body.version,
        actor=call.actor,
        reason=body.reason,
        force=body.force,
        expected=_if_match(call),
        policy=call.services.config.promotion,
        diff=body.diff,
    )
    await call.announce()
    call.services.webhooks.wake()
    return prompt.public()


api.post("/api/prompts/{name}/labels/{label}", Access.ADMIN)(_move_label)
api.put("/api/prompts/{name}/labels/{label}", Access.ADMIN)(_move_label)


@api.delete("/api/prompts/{name}/labels/{label}", Access.ADMIN)
async def delete_label(call: Call, body: Change | None) -> dict[str, Any]:
    """Remove a label (409 if a prompt or release includes it and would not render)."""
    result = await call.run(
        registry.delete_label,
        call.services.store,
        call.path["name"],
        call.path["label"],
        actor=call.actor,
        reason=body.reason if body else None,
        force=body.force if body else False,
        expected=_if_match(call),
    )
    await call.announce()
    return dict(result)


@api.post("/api/prompts/{name}/labels/{label}/rollback", Access.ADMIN)
async def rollback_label(call: Call, body: Change | None) -> dict[str, Any]:
    prompt = await call.run(
        registry.rollback_label,
        call.services.store,
        call.path["name"],
        call.path["label"],
        actor=call.actor,
        reason=body.reason if body else None,
        force=body.force if body else False,
        expected=_if_match(call),
        policy=call.services.config.promotion,
    )
    await call.announce()
    call.services.webhooks.wake()
    return prompt.public()
