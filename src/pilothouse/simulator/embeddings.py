"""Deterministic embedding vectors.

A vector is the normalised sum of one pseudo-random vector per word plus a smaller
one for the whole text. Identical texts get identical vectors, and texts that share
words point in similar directions, which keeps semantic-cache demos meaningful.
"""

from __future__ import annotations

import base64
import math
import re
import struct
from functools import lru_cache

from pilothouse.simulator.text import rng_for

_WORD_RE = re.compile(r"\w+")
# The whole-text component: small enough that shared words dominate similarity,
# large enough that reordered words still give a different vector.
_TEXT_WEIGHT = 0.35


@lru_cache(maxsize=4096)
def _direction(model: str, key: str, dimensions: int) -> tuple[float, ...]:
    rng = rng_for("embedding", model, key, dimensions)
    return tuple(rng.gauss(0.0, 1.0) for _ in range(dimensions))


def embed(text: str, model: str, dimensions: int) -> list[float]:
    """A unit vector of `dimensions` floats for `text` under `model`; same inputs, same vector."""
    total = [0.0] * dimensions
    words = _WORD_RE.findall(text.lower())
    for word in words:
        for index, component in enumerate(_direction(model, word, dimensions)):
            total[index] += component
    scale = _TEXT_WEIGHT * math.sqrt(max(len(words), 1))
    whole = rng_for("embedding-text", model, text, dimensions)
    for index in range(dimensions):
        total[index] += scale * whole.gauss(0.0, 1.0)
    norm = math.sqrt(sum(value * value for value in total)) or 1.0
    return [value / norm for value in total]


def encode_base64(vector: list[float]) -> str:
    """Little-endian float32 bytes in base64, the format OpenAI uses for `encoding_format=base64`."""
    return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode("ascii")
