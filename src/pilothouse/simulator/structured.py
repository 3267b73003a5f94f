"""JSON values generated from JSON schemas, for tool arguments and structured outputs.

The generator covers the schema features models are actually asked for: objects
with properties, $ref into $defs, enums and consts, anyOf/oneOf/allOf, strings
(with common formats and length bounds), numbers, integers, booleans, arrays and null.
"""

from __future__ import annotations

import random
import uuid
from typing import Any

from pilothouse.simulator.text import sentence, short_phrase

_MAX_DEPTH = 6
_CITIES = ("Paris", "Berlin", "Tokyo", "Lisbon", "Toronto", "Nairobi", "Seoul", "Lima")
_NAMES = ("Ada Lovelace", "Alan Turing", "Grace Hopper", "Katherine Johnson", "Edsger Dijkstra")


def value_for_schema(
    schema: Any, rng: random.Random, topics: list[str], *, root: Any = None, name: str = ""
) -> Any:
    """A JSON value valid against `schema` (a dict; `True`/`{}` mean anything, which gives a string).

    `topics` are prompt words used in strings; `name` is the property name, which
    picks realistic values for fields such as `city`, `email` or `date`.
    Unknown keywords are ignored rather than refused.
    """
    return _value(schema, rng, topics, root if root is not None else schema, name, 0)


def _value(
    schema: Any, rng: random.Random, topics: list[str], root: Any, name: str, depth: int
) -> Any:
    if not isinstance(schema, dict):
        return short_phrase(rng, topics)
    schema = _resolve(schema, root)
    if "const" in schema:
        return schema["const"]
    if isinstance(schema.get("enum"), list) and schema["enum"]:
        return rng.choice(schema["enum"])
    for key in ("anyOf", "oneOf"):
        options = schema.get(key)
        if isinstance(options, list) and options:
            # Prefer a non-null option so optional fields still carry a value.
            chosen = next((o for o in options if _type_of(_resolve(o, root)) != "null"), options[0])
            return _value(chosen, rng, topics, root, name, depth)
    if isinstance(schema.get("allOf"), list):
        schema = _merge_all_of(schema, root)
    kind = _type_of(schema)
    if kind == "object":
        return _object(schema, rng, topics, root, depth)
    if kind == "array":
        return _array(schema, rng, topics, root, name, depth)
    if kind == "integer":
        low, high = _bounds(schema, 0, 100)
        return rng.randint(int(low), max(int(low), int(high)))
    if kind == "number":
        low, high = _bounds(schema, 0.0, 100.0)
        return round(rng.uniform(low, high), 2)
    if kind == "boolean":
        return rng.random() < 0.5
    if kind == "null":
        return None
    return _string(schema, rng, topics, name)


def _resolve(schema: dict[str, Any], root: Any) -> dict[str, Any]:
    ref = schema.get("$ref")
    seen = 0
    while isinstance(ref, str) and ref.startswith("#/") and seen < 16:
        target: Any = root
        for part in ref[2:].split("/"):
            target = target.get(part) if isinstance(target, dict) else None
        if not isinstance(target, dict):
            return {}
        schema = {**target, **{k: v for k, v in schema.items() if k != "$ref"}}
        ref = target.get("$ref")
        seen += 1
    return schema


def _merge_all_of(schema: dict[str, Any], root: Any) -> dict[str, Any]:
    merged: dict[str, Any] = {k: v for k, v in schema.items() if k != "allOf"}
    for part in schema["allOf"]:
        part = _resolve(part, root) if isinstance(part, dict) else {}
        for key, value in part.items():
            if key == "properties":
                merged["properties"] = {**merged.get("properties", {}), **value}
            elif key == "required":
                merged["required"] = [*merged.get("required", []), *value]
            else:
                merged.setdefault(key, value)
    return merged


def _type_of(schema: dict[str, Any]) -> str:
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), kind[0] if kind else None)
    if isinstance(kind, str):
        return kind
    if "properties" in schema:
        return "object"
    if "items" in schema:
        return "array"
    return "string"


def _object(
    schema: dict[str, Any], rng: random.Random, topics: list[str], root: Any, depth: int
) -> dict[str, Any]:
    properties = schema.get("properties")
    if not isinstance(properties, dict):
        return {}
    required = schema.get("required") or []
    result: dict[str, Any] = {}
    for key, sub in properties.items():
        # Past the depth limit only required fields are filled, so recursive schemas end.
        if depth >= _MAX_DEPTH and key not in required:
            continue
        result[key] = _value(sub, rng, topics, root, key, depth + 1)
    return result


def _array(
    schema: dict[str, Any], rng: random.Random, topics: list[str], root: Any, name: str, depth: int
) -> list[Any]:
    low = int(schema.get("minItems", 0))
    high = int(schema.get("maxItems", max(low, 3)))
    count = low if depth >= _MAX_DEPTH else min(max(low, rng.randint(1, 3)), high)
    items = schema.get("items", {})
    return [_value(items, rng, topics, root, name, depth + 1) for _ in range(count)]


def _bounds(schema: dict[str, Any], low: float, high: float) -> tuple[float, float]:
    if "minimum" in schema:
        low = schema["minimum"]
    if "exclusiveMinimum" in schema and not isinstance(schema["exclusiveMinimum"], bool):
        low = schema["exclusiveMinimum"] + 1
    if "maximum" in schema:
        high = schema["maximum"]
    if "exclusiveMaximum" in schema and not isinstance(schema["exclusiveMaximum"], bool):
        high = schema["exclusiveMaximum"] - 1
    if high < low:
        high = low
    return low, high


def _string(schema: dict[str, Any], rng: random.Random, topics: list[str], name: str) -> str:
    fmt = schema.get("format")
    key = name.lower()
    if fmt == "date-time":
        text = f"2024-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}T{rng.randint(0, 23):02d}:00:00Z"
    elif fmt == "date" or key.endswith("date"):
        text = f"2024-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"
    elif fmt == "email" or "email" in key:
        text = f"user{rng.randint(1, 999)}@example.com"
    elif fmt in ("uri", "url") or key in ("url", "link", "website"):
        text = f"https://example.com/{rng.choice(topics) if topics else 'page'}"
    elif fmt == "uuid" or key in ("id", "uuid"):
        text = str(uuid.UUID(int=rng.getrandbits(128), version=4))
    elif key in ("city", "location", "place"):
        text = rng.choice(_CITIES)
    elif key in ("name", "author", "person", "full_name"):
        text = rng.choice(_NAMES)
    elif key in ("description", "summary", "reason", "explanation", "answer", "text"):
        text = sentence(rng, topics)
    else:
        text = short_phrase(rng, topics)
    minimum = int(schema.get("minLength", 0))
    maximum = schema.get("maxLength")
    while len(text) < minimum:
        text += " " + short_phrase(rng, topics, 1)
    if isinstance(maximum, int) and len(text) > maximum:
        text = text[:maximum]
    return text


def json_object_reply(rng: random.Random, topics: list[str]) -> dict[str, Any]:
    """A plausible JSON object for `response_format: json_object`, where no schema is given."""
    return {
        "answer": sentence(rng, topics),
        "confidence": round(rng.uniform(0.5, 0.99), 2),
        "keywords": topics[:3] or [short_phrase(rng, topics, 1)],
    }
