"""Ids inside a door's answer, and reading a chat chunk frame. The answer's own id is made
from the request id (so a Responses `resp_...` or Messages `msg_...` id names its
request-log row). A Responses output item's id is made from the answer's (its kind, the
answer's hex digits, its place), so an `item_reference` names the stored response that
holds it. Other item ids (tool uses without one) are labels, never keys, so they come
from a generator seeded once per process rather than from a system call per id (which
costs ~25 µs on some kernels: more than the door's whole translation)."""

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


def output_item_id(kind: str, answer: str, index: int) -> str:
    """The id of the output item at `index` of the answer `answer` (`resp_<hex>`)."""
    return f"{kind}_{answer.partition('_')[2]}{index:04x}"


def input_item_id(kind: str, answer: str, index: int) -> str:
    """The id given to the input item at `index` of a stored answer that came without one."""
    return f"{kind}_{answer.partition('_')[2]}i{index}"


_HEX = frozenset("0123456789abcdef")


def answer_of_item(item: str, prefix: str = "resp") -> str | None:
    """The id of the answer an item id was made from (`output_item_id`,
    `input_item_id`), or None when it was not made that way."""
    digits = item.partition("_")[2][:32]
    if len(digits) != 32 or not _HEX.issuperset(digits):
        return None
    return f"{prefix}_{digits}"


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
