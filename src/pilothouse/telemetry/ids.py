"""Request ids, made by the gateway: UUIDv7 (RFC 9562), time-ordered so the log's primary
key appends, with 74 random bits so nobody can guess or pre-claim another's id."""

from __future__ import annotations

import os
import time

_POOL_IDS = 512  # random bytes are read from the OS for this many ids at a time
_pool = b""
_offset = 0


def _forget_pool() -> None:
    global _pool, _offset
    _pool, _offset = b"", 0


os.register_at_fork(after_in_child=_forget_pool)  # a forked worker must not reuse our bytes


def new_request_id() -> str:
    """A UUIDv7 in its canonical 36-character form."""
    global _pool, _offset
    if _offset >= len(_pool):
        _pool, _offset = os.urandom(10 * _POOL_IDS), 0
    rand = int.from_bytes(_pool[_offset : _offset + 10], "big")  # 80 bits, 74 used
    _offset += 10
    unix_ms = time.time_ns() // 1_000_000
    value = (
        (unix_ms & 0xFFFF_FFFF_FFFF) << 80
        | 0x7 << 76
        | (rand >> 68) << 64  # rand_a: 12 bits
        | 0b10 << 62
        | rand & ((1 << 62) - 1)  # rand_b: 62 bits
    )
    h = f"{value:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"
