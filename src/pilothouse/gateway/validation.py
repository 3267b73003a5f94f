"""Checks on OpenAI-shaped request bodies that name the field at fault.

Only what the gateway relies on is checked; every other field passes through to the
provider untouched, so new OpenAI parameters work without a gateway release.
"""

from __future__ import annotations

from typing import Any, TypeVar

from pilothouse.errors import InvalidRequest
from pilothouse.fleet.deployments import ModelAlias
from pilothouse.telemetry.storable import column_chars, stable_id

T = TypeVar("T")
_ROLES = frozenset({"system", "developer", "user", "assistant", "tool", "function"})
# The request log's user column (200): what a row and a user quota's counter both keep.
USER_MAX_CHARS = column_chars("user")


def type_error(field: str, expected: str, value: Any) -> InvalidRequest:
    return InvalidRequest(
        f"`{field}` must be {expected}, got {type(value).__name__} {value!r:.60}", param=field
    )


def positive_int(field: str, value: Any) -> int:
    """`value` if it is an integer of at least 1; else a 400 naming `field`."""
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise type_error(field, "a positive integer", value)
    return value


def model_of(payload: dict[str, Any]) -> str:
    model = payload.get("model")
    if model is None:
        raise InvalidRequest(
            "`model` is required: a model alias such as the ones GET /v1/models lists",
            param="model",
        )
    if not isinstance(model, str) or not model:
        raise type_error("model", "a non-empty string", model)
    return model


def user_of(payload: dict[str, Any]) -> str | None:
    """The end user a request names (`user`; the Messages door's `metadata.user_id`) as the
    request log and user quotas both keep it, or None: the id itself, or, past what the
    log's column holds (or not storable as it is), its first characters, `~` and a hash of
    the whole (`storable.stable_id`). Never cut to a name another id shares."""
    user = payload.get("user")
    if user is None:
        return None
    if not isinstance(user, str):
        raise type_error("user", "a string (an end user's id)", user)
    return stable_id(user, USER_MAX_CHARS)


def check_chat(payload: dict[str, Any]) -> None:
    """Refuse a chat request the gateway cannot serve, naming the field."""
    messages = payload.get("messages")
    if messages is None:
        raise InvalidRequest("`messages` is required: a non-empty list", param="messages")
    if not isinstance(messages, list) or not messages:
        raise type_error("messages", "a non-empty list", messages)
    for index, message in enumerate(messages):
        field = f"messages[{index}]"
        if not isinstance(message, dict):
            raise type_error(field, "an object with `role` and `content`", message)
        role = message.get("role")
        if not isinstance(role, str) or role not in _ROLES:
            raise InvalidRequest(
                f"`{field}.role` must be one of {', '.join(sorted(_ROLES))}, got {role!r:.60}",
                param=f"{field}.role",
            )
        content = message.get("content")
        if content is not None and not isinstance(content, str | list):
            raise type_error(f"{field}.content", "a string or a list of content parts", content)
    _optional(payload, "stream", bool, "true or false")
    _optional(payload, "stream_options", dict, "an object")
    _optional(payload, "tools", list, "a list of tool objects")
    for name in ("n", "max_tokens", "max_completion_tokens"):
        value = payload.get(name)
        if value is not None:
            positive_int(name, value)
    for name in ("temperature", "top_p"):
        value = payload.get(name)
        if value is not None and (not isinstance(value, int | float) or isinstance(value, bool)):
            raise type_error(name, "a number", value)


def check_embeddings(payload: dict[str, Any]) -> None:
    value = payload.get("input")
    if value is None:
        raise InvalidRequest("`input` is required: a string or a list of strings", param="input")
    if isinstance(value, str):
        return
    if not isinstance(value, list) or not value:
        raise type_error("input", "a string or a non-empty list", value)


def _optional(payload: dict[str, Any], name: str, kind: type, expected: str) -> None:
    optional(name, payload.get(name), kind, expected)


def optional(field: str, value: Any, kind: type[T], expected: str) -> T | None:
    """`value` when it is left out (None) or a `kind`; else a 400 naming `field`."""
    if value is not None and not isinstance(value, kind):
        raise type_error(field, expected, value)
    return value


def check_can_embed(alias: ModelAlias) -> None:
    """Refuse embeddings from an alias no deployment of which can embed, before any call
    (so it is the caller's error, not an upstream failure)."""
    if not any(d.provider.can_embed for d in alias.deployments):
        providers = ", ".join(sorted({d.provider_name for d in alias.deployments}))
        raise InvalidRequest(
            f"model {alias.alias!r} cannot embed: its provider ({providers}) has no "
            "embeddings endpoint",
            hint="use an alias served by an OpenAI-type provider for /v1/embeddings; "
            "GET /v1/models lists the aliases",
            param="model",
            code="model_cannot_embed",
        )
