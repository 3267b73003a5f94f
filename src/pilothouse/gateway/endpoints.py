"""Which paths the gateway serves, and the two that only read: `/v1/models` (the aliases a
key may use) and a key's stored responses under `/v1/responses/{id}`.

`endpoint_of` names a request's endpoint (and the one method it takes) from its path; a
path it does not name is answered by `unserved.py`.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl

import orjson

from pilothouse import errors
from pilothouse.fleet.deployments import ModelAlias
from pilothouse.gateway.doors.stored import Keeper
from pilothouse.gateway.http_io import Headers, Scope, Send, send_json
from pilothouse.policy.keys import ApiKey
from pilothouse.snapshot import Snapshot

ENDPOINTS = {
    "/v1/chat/completions": ("chat", "POST"),
    "/v1/responses": ("responses", "POST"),
    "/v1/messages": ("messages", "POST"),
    "/v1/embeddings": ("embeddings", "POST"),
    "/v1/models": ("models", "GET"),
}
SERVED_PATHS = sorted(ENDPOINTS)
MODEL_PATH = "/v1/models/"
RESPONSE_PATH = "/v1/responses/"
STORED_ENDPOINTS = frozenset({"responses.get", "responses.delete"})


def endpoint_of(path: str, method: str) -> tuple[str, str] | None:
    """(endpoint, the method it takes) for a served path; None for any other path."""
    endpoint = ENDPOINTS.get(path)
    if endpoint is None and path.startswith(MODEL_PATH):
        endpoint = ENDPOINTS["/v1/models"]
    if endpoint is None and path.startswith(RESPONSE_PATH):
        endpoint = _stored_endpoint(path[len(RESPONSE_PATH) :], method)
    return endpoint


def _stored_endpoint(rest: str, method: str) -> tuple[str, str] | None:
    """`{id}` (GET, DELETE) and `{id}/input_items` (GET) under /v1/responses/; None for
    anything else there (`{id}/cancel`: background responses are not served)."""
    response_id, slash, tail = rest.partition("/")
    if not response_id or (slash and tail != "input_items"):
        return None
    if method == "DELETE" and not slash:
        return ("responses.delete", "DELETE")
    return ("responses.get", "GET")


async def models(
    scope: Scope, snapshot: Snapshot, key: ApiKey, send: Send, headers: Headers
) -> None:
    """GET /v1/models (the aliases this key may use) or /v1/models/{alias}."""
    path: str = scope["path"]
    if path == "/v1/models":
        await send_json(send, 200, _models_body(snapshot, key), headers)
        return
    alias = path[len(MODEL_PATH) :]  # ASGI paths come decoded already
    target = snapshot.models.get(alias)
    if target is None or not key.allows(alias):
        raise errors.NotFound(
            f"the model {alias[:80]!r} does not exist or this key may not use it",
            param="model",
            code="model_not_found",
        )
    await send_json(send, 200, orjson.dumps(_model_object(alias, target)), headers)


async def stored(
    keeper: Keeper, endpoint: str, scope: Scope, key: ApiKey, send: Send, headers: Headers
) -> None:
    """GET or DELETE /v1/responses/{id}, GET /v1/responses/{id}/input_items: the calling
    key's stored responses only (404 for anything else)."""
    response_id, _, tail = scope["path"][len(RESPONSE_PATH) :].partition("/")
    if endpoint == "responses.delete":
        answer = await keeper.delete(key, response_id)
    elif tail:
        query = dict(parse_qsl(scope.get("query_string", b"").decode("latin-1")))
        answer = await keeper.input_items(key, response_id, query)
    else:
        answer = await keeper.get(key, response_id)
    await send_json(send, 200, orjson.dumps(answer), headers)


def _model_object(alias: str, target: ModelAlias) -> dict[str, Any]:
    return {"id": alias, "object": "model", "created": 0, "owned_by": target.primary.provider_name}


def _models_body(snapshot: Snapshot, key: ApiKey) -> bytes:
    data = [
        _model_object(alias, target)
        for alias, target in sorted(snapshot.models.items())
        if key.allows(alias)
    ]
    return orjson.dumps({"object": "list", "data": data})
