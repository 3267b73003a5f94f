"""Ids inside a door's answer, and reading a chat chunk frame. The answer's own id is made from the request id (so a
Responses `resp_...` or Messages `msg_...` id names its request-log row); the ids of the
items in it (output messages, function calls, tool uses without one) are labels, never
keys, so they come from a generator seeded once per process rather than from a system
call per id (which costs ~25 µs on some kernels: more than the door's whole translation)."""

from __future__ import annotations

import os
import random
from typing import Any

import orjson

_items = random.Random(os.urandom(16))


def _reseed() -> None:
    _items.seed(os.urandom(16))


os.register_at_fork(after_in_child=_reseed)  # a forked worker must not repeat our ids


def item_id(prefix: str) -> str:
    return f"{prefix}_{_items.getrandbits(96):024x}"


def answer_id(prefix: str, request_id: str) -> str:
    """`prefix_` and the request id's 32 hex digits."""
    return f"{prefix}_{request_id.replace('-', '')}"


def chat_chunk(frame: bytes) -> dict[str, Any] | None:
    """The chat chunk of a `data: {...}` frame (None for anything else), for events whose
    decoder did not keep it parsed."""
    if not frame.startswith(b"data: "):
        return None
    try:
        chunk = orjson.loads(frame[6:].strip())
    except orjson.JSONDecodeError:
        return None
    return chunk if isinstance(chunk, dict) else None
