"""What the fake upstream answers and what the load generators send.

One definition serves the nginx config (harness.py), the correctness checks and the
stream client, so a check that passes means the client got exactly the upstream's reply.
"""

from __future__ import annotations

import json

MODEL_JSON = "bench-json"  # routed to the upstream's JSON completion
MODEL_STREAM = "bench-stream"  # routed to the upstream's SSE stream (sent in one burst)

WORDS = [
    "The",
    "quick",
    "brown",
    "fox",
    "jumps",
    "over",
    "the",
    "lazy",
    "dog",
    "while",
    "the",
    "gateway",
    "relays",
    "every",
    "token",
    "it",
    "receives.",
]
REPLY = " ".join(WORDS)
PROMPT_TOKENS = 21
COMPLETION_TOKENS = len(WORDS)
USAGE = {
    "prompt_tokens": PROMPT_TOKENS,
    "completion_tokens": COMPLETION_TOKENS,
    "total_tokens": PROMPT_TOKENS + COMPLETION_TOKENS,
}
CREATED = 1767225600


def _dumps(obj: object) -> str:
    return json.dumps(obj, separators=(",", ":"))


def request_body(model: str, *, stream: bool = False) -> bytes:
    """A small, typical chat request (about 190 bytes)."""
    body: dict[str, object] = {
        "model": model,
        "messages": [
            {"role": "system", "content": "You are terse."},
            {"role": "user", "content": "Describe a fox and a dog in one sentence."},
        ],
        "max_tokens": 32,
        "temperature": 0,
    }
    if stream:
        body["stream"] = True
    return _dumps(body).encode()


DOOR_PATHS = {
    "chat": "/v1/chat/completions",
    "responses": "/v1/responses",
    "messages": "/v1/messages",
}


def door_body(door: str, model: str, *, stream: bool = False) -> bytes:
    """The same small request as `request_body`, in each front door's own shape."""
    system, user = "You are terse.", "Describe a fox and a dog in one sentence."
    if door == "chat":
        return request_body(model, stream=stream)
    body: dict[str, object]
    if door == "responses":
        body = {"model": model, "instructions": system, "input": user, "max_output_tokens": 32}
    elif door == "messages":
        body = {
            "model": model,
            "system": system,
            "messages": [{"role": "user", "content": user}],
            "max_tokens": 32,
        }
    else:
        raise ValueError(f"unknown door {door!r}")
    body["temperature"] = 0
    if stream:
        body["stream"] = True
    return _dumps(body).encode()


def completion() -> str:
    return _dumps(
        {
            "id": "chatcmpl-pilothouse-bench-1",
            "object": "chat.completion",
            "created": CREATED,
            "model": MODEL_JSON,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": REPLY},
                    "finish_reason": "stop",
                }
            ],
            "usage": USAGE,
        }
    )


def _chunk(delta: dict[str, str], finish: str | None = None) -> dict[str, object]:
    return {
        "id": "chatcmpl-pilothouse-bench-2",
        "object": "chat.completion.chunk",
        "created": CREATED,
        "model": MODEL_STREAM,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }


def _said(words: int | None) -> list[str]:
    return WORDS if words is None else (WORDS * (words // len(WORDS) + 1))[:words]


def reply(words: int | None = None) -> str:
    """The text `sse_events(words)` streams (REPLY by default)."""
    return " ".join(_said(words))


def sse_events(words: int | None = None) -> list[str]:
    """The `data:` payloads: role, one chunk per word, finish, usage, [DONE]. `words`
    makes a longer (or shorter) answer of the same words over and over."""
    said = _said(words)
    events = [_chunk({"role": "assistant", "content": ""})]
    events += [_chunk({"content": w if i == 0 else " " + w}) for i, w in enumerate(said)]
    events.append(_chunk({}, finish="stop"))
    usage_only = _chunk({})
    usage_only["choices"] = []
    usage_only["usage"] = USAGE
    events.append(usage_only)
    return [_dumps(e) for e in events] + ["[DONE]"]


def sse_body() -> str:
    return "".join(f"data: {e}\n\n" for e in sse_events())
