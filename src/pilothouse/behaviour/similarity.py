"""How close two answers are in meaning, from 0 (unrelated) to 1 (the same), and the
bucket a case falls in: same, rephrased or changed.

Two measures, and the report says which one it used:

- `embeddings`: the cosine of the two answers' embedding vectors (an embedding model
  through the gateway), clipped to [0, 1]. Rephrased at 0.75 or more by default.
- `lexical`, when no embedding model is given: the cosine of the two answers' word
  counts, lower-cased, common English function words left out and the endings -s, -es,
  -ed, -ing and -ly folded (so "refunds" meets "refund"). Rephrased at 0.50 or more by
  default. It sees shared words, not meaning: "Your order ships in 5 days" and "Refunds
  take 5 days" share enough to look rephrased, and a paraphrase in other words looks
  changed; an embedding model is the better judge.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Sequence

SAME, REPHRASED, CHANGED = "same", "rephrased", "changed"
BUCKETS = (SAME, REPHRASED, CHANGED)
DEFAULT_THRESHOLDS = {"embeddings": 0.75, "lexical": 0.50}

_WORD = re.compile(r"\w+")
_FUNCTION_WORDS = frozenset(
    (
        "a", "an", "the", "and", "or", "but", "if", "of", "to", "in", "on", "at", "by", "for",
        "with", "from", "as", "into", "is", "are", "was", "were", "be", "been", "being", "am",
        "it", "its", "this", "that", "these", "those", "i", "you", "we", "they", "he", "she",
        "them", "our", "your", "my", "me", "us", "his", "her", "their", "do", "does", "did",
        "so", "than", "then", "there", "here", "what", "which", "who", "whom", "how", "when",
        "where", "why", "will", "would", "can", "could", "should", "may", "might", "must",
        "shall", "have", "has", "had", "just", "also", "very",
    )
)  # fmt: skip
_ENDINGS = ("ing", "es", "ed", "ly", "s")


def _fold(word: str) -> str:
    for ending in _ENDINGS:
        if len(word) > len(ending) + 2 and word.endswith(ending):
            return word[: -len(ending)]
    return word


def _bag(text: str) -> Counter[str]:
    return Counter(_fold(w) for w in _WORD.findall(text.lower()) if w not in _FUNCTION_WORDS)


def lexical(a: str, b: str) -> float:
    """The lexical similarity of two texts in [0, 1] (see the module docstring); two
    texts with no content words are 1.0 when equal once stripped, else 0.0."""
    bag_a, bag_b = _bag(a), _bag(b)
    if not bag_a or not bag_b:
        return 1.0 if a.strip().lower() == b.strip().lower() else 0.0
    dot = sum(count * bag_b[word] for word, count in bag_a.items())
    norm = math.sqrt(sum(v * v for v in bag_a.values())) * math.sqrt(
        sum(v * v for v in bag_b.values())
    )
    return min(1.0, dot / norm)


def cosine(a: Sequence[float], b: Sequence[float]) -> float | None:
    """The cosine of two vectors clipped to [0, 1]; None when they cannot be compared
    (different lengths, empty, a zero or non-finite vector)."""
    if len(a) != len(b) or not a:
        return None
    norm = math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b))
    if norm == 0.0 or not math.isfinite(norm):
        return None
    return min(1.0, max(0.0, sum(x * y for x, y in zip(a, b, strict=True)) / norm))


def bucket(identical: bool, behaviour_changed: bool, similarity: float, threshold: float) -> str:
    """`same` when the answers are identical; `changed` when a behaviour changed (JSON,
    keys, label, tools, refusal) or the similarity is under `threshold`; else
    `rephrased`."""
    if identical:
        return SAME
    if behaviour_changed or similarity < threshold:
        return CHANGED
    return REPHRASED
