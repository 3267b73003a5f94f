"""Stored responses at the Responses door (docs/gateway.md, "Stored responses").

- Before translation (`Keeper.prepare`): `previous_response_id` is replaced by the
  conversation that response carried (its input items, then its output items) before the
  request's own input, and each `item_reference` by the item it names. Only responses
  the calling key stored are found; an unknown, expired or another key's id is the same
  400 naming it, so ids cannot be probed.
- After resolution (`Keeper.turn`): the answer is stored when the request does not say
  `store: false` and storing is on for its key (the `responses:store` scope) or its route
  (`store_responses`). Otherwise the answer says `store: false`, whatever was asked: a
  client that sent `store: true` is served, and can read from the answer that nothing
  was kept.
- With the answer (`Turn.keep`): stored before the client receives it (before a stream's
  closing events), so the next request can build on it at once, on any instance. If the
  database fails, the answer still goes out, saying `store: false`.
- `GET` and `DELETE /v1/responses/{id}`, `GET /v1/responses/{id}/input_items`: the calling
  key's stored responses only; anything else is a 404.

A request that neither continues nor stores a response touches no database.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from pilothouse import errors
from pilothouse.conversations.stored import StoredResponse, StoredResponses
from pilothouse.gateway.doors.ids_and_chunks import answer_of_item, input_item_id
from pilothouse.gateway.doors.responses import ContinuedRequest
from pilothouse.gateway.resolve import Resolution
from pilothouse.policy.keys import ApiKey
from pilothouse.snapshot import Snapshot

log = logging.getLogger("pilothouse.gateway")
STORE_SCOPE = "responses:store"
MAX_LISTED_ITEMS = 100


def _input_items(value: Any) -> list[Any]:
    """The request's input as a list of items (text is one user message)."""
    if isinstance(value, str):
        return [{"type": "message", "role": "user", "content": value}]
    return list(value) if isinstance(value, list) else []


def _referenced(value: Any) -> list[Any]:
    """The ids the input's `item_reference` items name (as sent: checked when used)."""
    if not isinstance(value, list):
        return []
    return [
        item.get("id")
        for item in value
        if isinstance(item, dict) and item.get("type") == "item_reference"
    ]


@dataclass(slots=True)
class Turn:
    """A Responses request whose answer is to be kept for `key_id`."""

    stored: StoredResponses
    key_id: str
    response_id: str
    input_items: list[Any]  # the whole conversation it answers

    async def keep(self, response: dict[str, Any]) -> bool:
        """Store the answer; False (logged, and `response["store"]` made False) when the
        database failed: the client still gets its answer."""
        try:
            await self.stored.save(self.response_id, self.key_id, self.input_items, response)
            return True
        except Exception:
            log.exception(
                "could not store response %s; answered with store: false", self.response_id
            )
            response["store"] = False
            return False


class Keeper:
    """The Responses door's stored state, over the deployment's `StoredResponses`
    (None: storing is not available in this process, and nothing is ever found)."""

    def __init__(self, stored: StoredResponses | None):
        self.stored = stored

    @staticmethod
    def names_stored_state(payload: dict[str, Any]) -> bool:
        """Whether the payload names stored state (`prepare` must run): checked without
        awaiting, since nearly no request does."""
        store = payload.get("store")
        if store is not None and not isinstance(store, bool):
            raise errors.InvalidRequest("`store` must be true or false", param="store")
        if payload.get("previous_response_id") is not None:
            return True
        value = payload.get("input")
        return isinstance(value, list) and any(
            isinstance(item, dict) and item.get("type") == "item_reference" for item in value
        )

    async def prepare(self, key: ApiKey, payload: dict[str, Any]) -> dict[str, Any]:
        """The payload with `previous_response_id` and item references replaced by what
        they name (the same payload when it has neither); InvalidRequest naming what is
        not found."""
        previous = payload.get("previous_response_id")
        value = payload.get("input")
        references = _referenced(value)
        if (previous is None and not references) or not isinstance(value, str | list):
            return payload  # nothing to look up, or an `input` the translation refuses
        if not isinstance(previous, str | None):
            raise errors.InvalidRequest(
                "`previous_response_id` must be the id of a stored response (resp_...)",
                param="previous_response_id",
            )
        wanted = [previous] if previous is not None else []
        wanted += [answer_of_item(i) or "" for i in references if isinstance(i, str)]
        found = await self.stored.get_many(wanted, key.id) if self.stored is not None else {}
        conversation: list[Any] = []
        if previous is not None:
            prior = found.get(previous)
            if prior is None:
                raise errors.InvalidRequest(
                    f"Previous response with id {previous[:60]!r} not found: it was not "
                    "stored for this API key, or it expired, or it was deleted",
                    hint="responses are stored only for keys with the `responses:store` "
                    "scope and routes with `store_responses` on; or send the whole "
                    "conversation in `input`",
                    param="previous_response_id",
                    code="previous_response_not_found",
                )
            conversation = prior.conversation()
        items = _input_items(value)
        if references:
            items = [_dereference(item, index, found) for index, item in enumerate(items)]
        return ContinuedRequest({**payload, "input": [*conversation, *items]}, len(conversation))

    def turn(
        self,
        snapshot: Snapshot,
        key: ApiKey,
        resolution: Resolution,
        payload: dict[str, Any],
        response_id: str,
    ) -> Turn | None:
        """Whether this request's answer is kept: a `Turn` if so. Sets the payload's
        `store` to what the answer will say."""
        wanted = payload.get("store") is not False
        route = resolution.route
        allowed = self.stored is not None and (
            key.grants(STORE_SCOPE) or (route is not None and _route_stores(snapshot, route.route))
        )
        payload["store"] = wanted and allowed
        if not payload["store"]:
            return None
        assert self.stored is not None
        return Turn(self.stored, key.id, response_id, _input_items(payload.get("input")))

    # ------------------------------------------------------------------ /v1/responses/{id}

    async def get(self, key: ApiKey, response_id: str) -> dict[str, Any]:
        """The stored response (GET /v1/responses/{id}); NotFound otherwise."""
        return (await self._find(key, response_id)).response

    async def input_items(
        self, key: ApiKey, response_id: str, query: dict[str, str]
    ) -> dict[str, Any]:
        """The conversation a stored response answered, a page of items (`limit` 1-100,
        default 20; `order` desc (default) or asc; `after` an item id)."""
        found = await self._find(key, response_id)
        items = [
            _listed(item, index, found.id)
            for index, item in enumerate(found.input_items)
            if isinstance(item, dict)
        ]
        order = query.get("order", "desc")
        if order not in ("asc", "desc"):
            raise errors.InvalidRequest("`order` must be asc or desc", param="order")
        try:
            limit = int(query.get("limit", "20"))
        except ValueError:
            limit = 0
        if not 1 <= limit <= MAX_LISTED_ITEMS:
            raise errors.InvalidRequest(
                f"`limit` must be an integer from 1 to {MAX_LISTED_ITEMS}", param="limit"
            )
        if order == "desc":
            items.reverse()
        after = query.get("after")
        if after is not None:
            ids = [item["id"] for item in items]
            items = items[ids.index(after) + 1 :] if after in ids else []
        page = items[:limit]
        return {
            "object": "list",
            "data": page,
            "first_id": page[0]["id"] if page else None,
            "last_id": page[-1]["id"] if page else None,
            "has_more": len(items) > limit,
        }

    async def delete(self, key: ApiKey, response_id: str) -> dict[str, Any]:
        """Delete a stored response (DELETE /v1/responses/{id}); NotFound otherwise."""
        if self.stored is None or not await self.stored.delete(response_id, key.id):
            raise _not_found(response_id)
        return {"id": response_id, "object": "response.deleted", "deleted": True}

    async def _find(self, key: ApiKey, response_id: str) -> StoredResponse:
        found = await self.stored.get(response_id, key.id) if self.stored is not None else None
        if found is None:
            raise _not_found(response_id)
        return found


def _route_stores(snapshot: Snapshot, name: str) -> bool:
    target = snapshot.routes.get(name)
    return target is not None and target.store_responses


def _listed(item: dict[str, Any], index: int, response_id: str) -> dict[str, Any]:
    """An input item as the API lists it: with an id, and a message's text as a part."""
    listed = {"id": input_item_id(_kind(item), response_id, index), **item}
    if listed.get("type", "message") == "message":
        listed["type"] = "message"
        if isinstance(listed.get("content"), str):
            part = "output_text" if listed.get("role") == "assistant" else "input_text"
            listed["content"] = [{"type": part, "text": listed["content"]}]
    return listed


def _kind(item: dict[str, Any]) -> str:
    kind = item.get("type", "message")
    return {"message": "msg", "function_call": "fc", "function_call_output": "fco"}.get(
        kind, "item"
    )


def _dereference(item: Any, index: int, found: dict[str, StoredResponse]) -> Any:
    """The item an `item_reference` names (an output or input item of a stored response of
    this key); any other item as it is."""
    if not isinstance(item, dict) or item.get("type") != "item_reference":
        return item
    item_id = item.get("id")
    response = found.get(answer_of_item(item_id) or "") if isinstance(item_id, str) else None
    if response is not None:
        for candidate in response.output:
            if isinstance(candidate, dict) and candidate.get("id") == item_id:
                return candidate
        for place, candidate in enumerate(response.input_items):
            if (
                isinstance(candidate, dict)
                and (candidate.get("id") or input_item_id(_kind(candidate), response.id, place))
                == item_id
            ):
                return candidate
    shown = str(item_id)[:60]
    raise errors.InvalidRequest(
        f"`input[{index}]` is an item_reference to {shown!r}, which is not an item of a "
        "response stored for this API key (or it expired, or was deleted)",
        hint="send the item itself instead; with the Vercel AI SDK, set "
        "providerOptions.openai.store = false, or store responses for this key or route",
        param=f"input[{index}]",
        code="item_not_found",
    )


def _not_found(response_id: str) -> errors.NotFound:
    return errors.NotFound(
        f"No response found with id {response_id[:60]!r} for this API key",
        hint="responses are stored only when storing is on for the key or route, and "
        "are deleted after the deployment's retention period",
        param="response_id",
        code="response_not_found",
    )
