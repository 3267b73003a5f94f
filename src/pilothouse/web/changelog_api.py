"""The behaviour changelog over HTTP: the feed (a key with `routes:read`, or the admin
token) and the subscriptions that deliver it to a team's webhook (the admin token)."""

from __future__ import annotations

from typing import Any

from pydantic import Field, HttpUrl, field_validator

from pilothouse import errors
from pilothouse.changelog import feed, subscriptions
from pilothouse.web.auth import Access
from pilothouse.web.endpoint import PAGE_LIMIT, Api, Body, Call, Page, paged
from pilothouse.web.fields import Ident, Name

api = Api({"subscription_id": (r"^sub_[0-9a-f]{1,32}$", "a subscription id such as sub_1a2b3c")})


class FeedQuery(Page):
    """One prompt's (`prompt`) or route's (`route`) entries, or all; newest first."""

    limit: int = Field(default=100, ge=1, le=PAGE_LIMIT)
    prompt: Ident | None = None
    route: Ident | None = None

    @field_validator("after")
    @classmethod
    def _entry_id(cls, value: str | None) -> str | None:
        if value is not None and not (value.isascii() and value.isdigit() and len(value) <= 18):
            raise ValueError("not a cursor: send the previous page's `next_after` as it came")
        return value


class Subscribe(Body):
    prompt: Ident | None = None
    route: Ident | None = None
    url: HttpUrl
    secret: str = Field(min_length=subscriptions.MIN_SECRET_CHARS, max_length=200)
    owner: Name | None = None


def _subject(prompt: str | None, route: str | None) -> tuple[str | None, str | None]:
    if prompt is not None and route is not None:
        raise errors.InvalidRequest("give `prompt` or `route`, not both")
    if prompt is not None:
        return "prompt", prompt
    return ("route", route) if route is not None else (None, None)


@api.get("/api/changelog", Access.ROUTES)
async def changelog(call: Call, query: FeedQuery) -> dict[str, Any]:
    """Changelog entries newest first, a page at a time (`limit`, `after`: `next_after`)."""
    kind, name = _subject(query.prompt, query.route)
    data = await call.run(
        feed.entries,
        call.services.store,
        kind,
        name,
        after=int(query.after) if query.after else None,
        limit=query.limit,
    )
    return paged(data, len(data), query, str(data[-1]["id"]) if data else None)


@api.post("/api/changelog/subscriptions", Access.ADMIN)
async def subscribe(call: Call, body: Subscribe) -> dict[str, Any]:
    """Deliver every changelog entry of a prompt or route to `url`, signed with `secret`."""
    kind, name = _subject(body.prompt, body.route)
    if kind is None or name is None:
        raise errors.InvalidRequest("give `prompt` or `route`: what to subscribe to")
    return await call.run(
        subscriptions.subscribe,
        call.services.store,
        kind,
        name,
        url=str(body.url),
        secret=body.secret,
        owner=body.owner,
        actor=call.actor,
    )


@api.get("/api/changelog/subscriptions", Access.ADMIN)
async def list_subscriptions(call: Call) -> dict[str, Any]:
    return {"data": await call.run(subscriptions.list_subscriptions, call.services.store)}


@api.delete("/api/changelog/subscriptions/{subscription_id}", Access.ADMIN)
async def unsubscribe(call: Call) -> dict[str, Any]:
    return await call.run(
        subscriptions.unsubscribe,
        call.services.store,
        call.path["subscription_id"],
        actor=call.actor,
    )
