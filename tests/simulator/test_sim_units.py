"""Pure building blocks: tokenizer, prose, schema-driven JSON, embeddings, latency, drift."""

from __future__ import annotations

import asyncio
import statistics
import time
from typing import Any

import pytest

from pilothouse.simulator.drift import active_effects, effective_fault_rates
from pilothouse.simulator.embeddings import embed, encode_base64
from pilothouse.simulator.latency import Pacer, sample_ms
from pilothouse.simulator.scenario import DriftPhase, LognormalLatency, UniformLatency
from pilothouse.simulator.structured import value_for_schema
from pilothouse.simulator.text import (
    HEDGES,
    count_tokens,
    hedge,
    prose,
    rng_for,
    tokenize,
    topic_words,
)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "Hello, world!",
        "  leading and trailing  ",
        "internationalization 12345 foo_bar\n\nx²",
        "naïve café — 東京",
    ],
)
def test_tokenize_round_trips_exactly(text: str) -> None:
    assert "".join(tokenize(text)) == text
    assert count_tokens(text) == len(tokenize(text))


def test_token_estimate_is_plausible_for_english() -> None:
    text = "The quick brown fox jumps over the lazy dog while the farmer watches from the porch."
    words = len(text.split())
    assert words <= count_tokens(text) <= 1.5 * words


def test_prose_is_deterministic_and_about_the_requested_length() -> None:
    topics = topic_words("Tell me about kubernetes autoscaling policies")
    assert topics[:2] == ["kubernetes", "autoscaling"]
    first = prose(rng_for("x"), 60, topics)
    assert first == prose(rng_for("x"), 60, topics)
    assert first != prose(rng_for("y"), 60, topics)
    assert 60 <= count_tokens(first) < 90
    assert first[0].isupper() and first.endswith(".")


def test_hedging_prefixes_sentences() -> None:
    assert hedge("The cache helps.", rng_for(1)).startswith(HEDGES)
    assert hedge("The cache helps.", rng_for(1)).endswith("the cache helps.")
    hedged = prose(rng_for("z"), 40, [], hedge_rate=1.0)
    assert hedged.startswith(HEDGES)


def _valid(value: object, schema: dict[str, Any], root: dict[str, Any]) -> bool:
    """A small validator covering the keywords the generator claims to honour."""
    if "$ref" in schema:
        return _valid(value, root["$defs"][schema["$ref"].split("/")[-1]], root)
    if "enum" in schema:
        return value in schema["enum"]
    if "anyOf" in schema:
        return any(_valid(value, option, root) for option in schema["anyOf"])
    kind = schema.get("type")
    if kind == "object":
        return (
            isinstance(value, dict)
            and set(schema.get("required", [])) <= set(value)
            and all(
                _valid(value[k], sub, root)
                for k, sub in schema.get("properties", {}).items()
                if k in value
            )
        )
    if kind == "array":
        return (
            isinstance(value, list)
            and len(value) >= schema.get("minItems", 0)
            and len(value) <= schema.get("maxItems", 10**9)
            and all(_valid(item, schema.get("items", {}), root) for item in value)
        )
    if kind == "string":
        return isinstance(value, str) and schema.get("minLength", 0) <= len(value) <= schema.get(
            "maxLength", 10**9
        )
    if kind == "integer":
        return (
            isinstance(value, int)
            and not isinstance(value, bool)
            and schema.get("minimum", -(10**9)) <= value <= schema.get("maximum", 10**9)
        )
    if kind == "number":
        return isinstance(value, int | float) and schema.get(
            "minimum", -(10**9)
        ) <= value <= schema.get("maximum", 10**9)
    if kind == "boolean":
        return isinstance(value, bool)
    if kind == "null":
        return value is None
    return True


def test_schema_values_are_valid_for_many_seeds() -> None:
    schema = {
        "type": "object",
        "properties": {
            "id": {"type": "string", "format": "uuid"},
            "when": {"type": "string", "format": "date-time"},
            "code": {"type": "string", "minLength": 12, "maxLength": 20},
            "kind": {"enum": ["a", "b", 3]},
            "count": {"type": "integer", "minimum": 5, "maximum": 9},
            "ratio": {"type": "number", "minimum": 0, "maximum": 1},
            "flags": {"type": "array", "items": {"type": "boolean"}, "minItems": 2, "maxItems": 4},
            "maybe": {"anyOf": [{"type": "null"}, {"type": "integer", "minimum": 1, "maximum": 2}]},
            "tree": {"$ref": "#/$defs/Node"},
            "nothing": {"type": "null"},
        },
        "required": ["id", "kind", "count", "tree"],
        "$defs": {
            "Node": {
                "type": "object",
                "properties": {
                    "label": {"type": "string"},
                    "children": {"type": "array", "items": {"$ref": "#/$defs/Node"}},
                },
                "required": ["label"],
            }
        },
    }
    for seed in range(25):
        value = value_for_schema(schema, rng_for(seed), ["topic"])
        assert _valid(value, schema, schema), value
        assert isinstance(value["maybe"], int)


def test_embedding_properties() -> None:
    a = embed("refund policy for orders", "e", 32)
    assert len(a) == 32
    assert abs(sum(v * v for v in a) - 1) < 1e-9
    assert a == embed("refund policy for orders", "e", 32)
    assert a != embed("refund policy for orders", "other-model", 32)
    assert len(encode_base64(a)) == 4 * ((32 * 4 + 2) // 3)


def test_latency_distributions_match_their_parameters() -> None:
    rng = rng_for("latency")
    lognormal = [
        sample_ms(LognormalLatency(dist="lognormal", median_ms=100, p99_ms=400), rng)
        for _ in range(4000)
    ]
    assert 85 < statistics.median(lognormal) < 115
    assert 300 < sorted(lognormal)[int(0.99 * len(lognormal))] < 520
    uniform = [
        sample_ms(UniformLatency(dist="uniform", min_ms=10, max_ms=20), rng) for _ in range(500)
    ]
    assert min(uniform) >= 10 and max(uniform) <= 20


def test_instant_pacer_never_sleeps() -> None:
    pacer = Pacer(0.0, 0.0)
    assert pacer.instant

    async def run() -> float:
        started = time.monotonic()
        await pacer.first_chunk()
        for _ in range(1000):
            await pacer.next_chunk(3)
        await pacer.whole_response(3000, 1000)
        return time.monotonic() - started

    assert asyncio.run(run()) < 0.05


def test_drift_phases_merge_in_order() -> None:
    phases = [
        DriftPhase(name="a", after_requests=2, hedging=0.2, length_multiplier=2),
        DriftPhase(name="b", after_requests=4, hedging=0.9, model="gpt-*"),
        DriftPhase(name="c", after_seconds=10, faults={"503": 0.5}, refusal_rate=0.1),
    ]
    assert active_effects(phases, "gpt-4o", 1, 1, 0).phases == ()
    early = active_effects(phases, "gpt-4o", 2, 0, 0)
    assert (early.phases, early.hedging, early.length_multiplier) == (("a",), 0.2, 2)
    # Phase b counts only gpt-* requests: 9 in total but 3 for this model is not enough.
    assert active_effects(phases, "gpt-4o", 9, 3, 0).phases == ("a",)
    late = active_effects(phases, "gpt-4o", 9, 4, 11)
    assert late.phases == ("a", "b", "c") and late.hedging == 0.9
    assert effective_fault_rates({"500": 0.1, "503": 0.1}, late) == {
        "500": 0.1,
        "503": 0.5,
        "refusal": 0.1,
    }
    assert active_effects(phases, "claude", 9, 9, 0).phases == ("a",)


def test_a_drift_phase_with_an_end_is_an_episode() -> None:
    burst = DriftPhase(name="burst", model="m", after_requests=3, until_requests=5)
    spell = DriftPhase(name="spell", after_seconds=10, until_seconds=20, hedging=0.5)
    active = [
        n
        for n in range(8)
        if active_effects([burst], "m", total_before=n, model_before=n, elapsed_s=0).phases
    ]
    assert active == [3, 4]  # requests 4 and 5 of the model, then it is over
    assert [active_effects([spell], "m", 0, 0, t).phases for t in (9.9, 10, 19.9, 20)] == [
        (),
        ("spell",),
        ("spell",),
        (),
    ]
    # The first end reached ends it: a phase that started by count stops at its time.
    both = DriftPhase(after_requests=0, until_requests=100, until_seconds=5)
    assert active_effects([both], "m", 1, 1, 6).phases == ()
