"""Deterministic text: a tiny tokenizer, stable hashing and plausible generated prose.

Everything here is a pure function of its inputs so that the same request always
produces the same reply, token counts and usage, streamed or not.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
from typing import Any

import orjson

# One token is a short run of letters (long words split every 8 letters, roughly
# like BPE), up to 3 digits, one punctuation mark, or a run of whitespace. A single
# leading space attaches to the token after it. The alternatives cover every
# character, so joining the tokens gives back the text exactly.
_TOKEN_RE = re.compile(r"\s?[^\W\d_]{1,8}|\s?\d{1,3}|\s?[^\w\s]|\s+|_")
_WORD_RE = re.compile(r"[^\W\d_]{4,}")

REFUSAL_TEXTS: tuple[str, ...] = (
    "I'm sorry, but I can't help with that.",
    "I'm sorry, but I can't assist with that request.",
    "I can't help with that request.",
)


def _words(text: str, separator: str = " ") -> tuple[str, ...]:
    return tuple(text.split(separator))


HEDGES: tuple[str, ...] = (
    "I think",
    "It might be that",
    "Perhaps",
    "As far as I can tell,",
    "It's possible that",
    "I'm not entirely sure, but",
)

_NOUNS = _words(
    "system request model answer service team process result network budget report "
    "feature customer project signal cache pipeline policy record question metric "
    "release server schedule document account message option method context workflow "
    "value"
)
_ADJECTIVES = _words(
    "simple careful reliable recent useful complex clear quick stable common "
    "practical small large important direct flexible"
)
_VERBS = _words(
    "improves affects supports requires changes explains reduces includes follows "
    "handles checks describes shapes uses limits"
)
_VERB_BASES = _words(
    "improve support review measure update explain reduce handle check compare track "
    "adjust simplify test document"
)
_ADVERBS = _words(
    "quickly|carefully|reliably|often|usually|clearly|gradually|directly|consistently|"
    "rarely|well|in practice",
    "|",
)
_OPENERS = _words(
    "In practice|Overall|For example|In most cases|As a result|Typically|In short|"
    "On balance|At the same time|In general",
    "|",
)
_PREPOSITIONS = ("with", "across", "within", "for", "through", "around", "without", "after")
_MODALS = ("can", "should", "will", "may", "could")

# Each template is filled slot by slot; {topic} prefers words from the user's prompt.
_TEMPLATES = (
    "The {adj} {noun} {verb} the {noun}.",
    "{opener}, the {noun} {verb} {adv}.",
    "Every {adj} {noun} usually {verb} the {noun} {prep} the {noun}.",
    "When it comes to {topic}, the {noun} {verb} {adv}.",
    "Most {noun}s {verb_base} {prep} {adj} {noun}s.",
    "This {verb} why the {noun} {modal} {verb_base} {adv}.",
    "It is {adj} to {verb_base} the {noun} before the {noun} {verb}.",
    "{opener}, {topic} {verb} the {adj} {noun}.",
    "The {noun} {modal} {verb_base} {topic} {prep} the {adj} {noun}.",
)
_SLOT_RE = re.compile(r"\{(\w+)\}")
_STOPWORDS = frozenset(
    _words(
        "that this with from have what which when where your about would could should "
        "there their them they then than these those into some will been were also please "
        "tell give make just more most very much many such only over like does want need "
        "write explain"
    )
)


def tokenize(text: str) -> list[str]:
    """Split `text` into simulator tokens; `"".join(tokenize(t)) == t` always holds."""
    return _TOKEN_RE.findall(text)


def count_tokens(text: str) -> int:
    """Number of simulator tokens in `text` (0 for the empty string)."""
    return len(_TOKEN_RE.findall(text))


def canonical_bytes(value: Any) -> bytes:
    """A stable byte encoding of a JSON-like value (sorted keys) for hashing."""
    try:
        return orjson.dumps(value, option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS)
    except TypeError:
        # orjson refuses integers beyond 64 bits; the stdlib encoder does not.
        return json.dumps(value, sort_keys=True, default=str).encode()


def stable_hash(*parts: Any) -> int:
    """A 64-bit hash of JSON-like parts that is the same in every process (unlike hash())."""
    digest = hashlib.blake2b(canonical_bytes(list(parts)), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def rng_for(*parts: Any) -> random.Random:
    """A random generator seeded from `parts`: the same parts always give the same sequence."""
    return random.Random(stable_hash(*parts))


def topic_words(text: str, limit: int = 6) -> list[str]:
    """Distinct content words (4+ letters, not stopwords) from `text`, in order of appearance."""
    seen: list[str] = []
    for match in _WORD_RE.finditer(text):
        word = match.group(0).lower()
        if word not in _STOPWORDS and word not in seen:
            seen.append(word)
            if len(seen) >= limit:
                break
    return seen


def sentence(rng: random.Random, topics: list[str]) -> str:
    """One plausible English sentence drawn from the built-in grammar."""
    template = rng.choice(_TEMPLATES)

    def fill(match: re.Match[str]) -> str:
        slot = match.group(1)
        if slot == "topic":
            return rng.choice(topics) if topics else f"the {rng.choice(_NOUNS)}"
        table = {
            "noun": _NOUNS,
            "adj": _ADJECTIVES,
            "verb": _VERBS,
            "verb_base": _VERB_BASES,
            "adv": _ADVERBS,
            "opener": _OPENERS,
            "prep": _PREPOSITIONS,
            "modal": _MODALS,
        }[slot]
        return rng.choice(table)

    text = _SLOT_RE.sub(fill, template)
    return text[0].upper() + text[1:]


def hedge(text: str, rng: random.Random) -> str:
    """Prefix `text` with a hedging phrase, lowercasing its first letter unless it is "I"."""
    phrase = rng.choice(HEDGES)
    first = text[:1]
    rest = text[1:]
    if first and not (first == "I" and (not rest or not rest[0].isalpha())):
        first = first.lower()
    return f"{phrase} {first}{rest}"


def prose(
    rng: random.Random, target_tokens: int, topics: list[str], hedge_rate: float = 0.0
) -> str:
    """Sentences until about `target_tokens` tokens; each is hedged with probability `hedge_rate`."""
    parts: list[str] = []
    total = 0
    while total < target_tokens:
        text = sentence(rng, topics)
        if hedge_rate > 0 and rng.random() < hedge_rate:
            text = hedge(text, rng)
        # A paragraph break every four sentences makes long answers look like answers.
        separator = "" if not parts else ("\n\n" if len(parts) % 4 == 0 else " ")
        parts.append(separator + text)
        total += count_tokens(separator + text)
    return "".join(parts)


def short_phrase(rng: random.Random, topics: list[str], words: int = 2) -> str:
    """A few words for string fields: prompt topics first, then nouns and adjectives."""
    pool = list(topics) + list(_ADJECTIVES[:6]) + list(_NOUNS[:12])
    return " ".join(rng.choice(pool) for _ in range(max(1, words)))
