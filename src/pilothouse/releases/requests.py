"""The request a release (or a prompt version on a model) makes: one builder, shared by
the gateway's route path and the eval runner, so an eval measures what production serves.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any


def release_request(
    payload: Mapping[str, Any],
    rendered_messages: Sequence[Mapping[str, Any]],
    prompt_content: Mapping[str, Any],
    params: Mapping[str, Any],
) -> dict[str, Any]:
    """A new request body: the prompt's rendered messages before the caller's, the prompt's
    `tools` (when it has any) and `response_format` unless the caller set them, and the
    release's parameters over the caller's (the release decides; that is what it is for).
    `payload` is not changed."""
    body = dict(payload)
    messages = payload.get("messages") or []
    body["messages"] = [*rendered_messages, *messages]
    for field in ("tools", "response_format"):
        # An empty `tools` (stored before it was normalised away) means none.
        if prompt_content.get(field) and field not in payload:
            body[field] = prompt_content[field]
    body.update(params)
    return body
