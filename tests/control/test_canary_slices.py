"""Canary slices: each new canary draws a fresh slice of users (its own salt); widening a
canary keeps everyone already in it; a canary made before salts keeps its users."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator

import pytest

from pilothouse.config import ModelSpec
from pilothouse.registry import prompts as registry
from pilothouse.registry.prompt_content import parse_content
from pilothouse.releases import promotion
from pilothouse.releases.serving import RouteTarget, load_routes
from pilothouse.store import Store, open_store

USERS = [f"user-{i}" for i in range(4000)]
MODELS = {"fast": ModelSpec(provider="sim", model="sim-small")}


@pytest.fixture
def store(database_url: str) -> Iterator[Store]:
    store = open_store(database_url)
    store.upgrade()
    for text in ("v1 {{q}}", "v2 {{q}}"):
        body = {"variables": {"q": {}}, "messages": [{"role": "user", "content": text}]}
        registry.create_version(store, "qa", parse_content(body), labels=["production"])
    yield store
    store.close()


def in_canary(store: Store) -> set[str]:
    with store.connect() as conn:
        loaded = load_routes(conn)
    assert loaded.problems == {}
    route = loaded.entries["qa"]
    assert route is not None
    return {u for u in USERS if route.choose(u) == "canary"}


def test_a_new_canary_draws_a_fresh_slice_and_widening_keeps_it(store: Store) -> None:
    promoter = promotion.Promoter(store, MODELS)
    promoter.promote("qa", prompt="qa@1", model="fast", params={}, reason=None)
    promoter.canary("qa", prompt="qa@2", model="fast", params={}, weight=10, reason=None)
    first = in_canary(store)
    assert 0.08 <= len(first) / len(USERS) <= 0.12
    promoter.canary("qa", prompt=None, model=None, params=None, weight=30, reason="widen")
    wider = in_canary(store)
    assert first <= wider and 0.27 <= len(wider) / len(USERS) <= 0.33  # nobody left it

    promoter.canary("qa", prompt=None, model=None, params=None, weight=0, reason="stop")
    assert in_canary(store) == set()
    promoter.canary("qa", prompt="qa@2", model="fast", params={"seed": 1}, weight=10, reason=None)
    second = in_canary(store)
    overlap = len(first & second) / len(first)
    assert overlap < 0.3, overlap  # independent slices overlap by about the weight, 10 %


def test_a_canary_without_a_salt_keeps_the_users_it_had() -> None:
    unsalted = RouteTarget("qa", None, None, 10, "", {"canary": "n/a"})
    expected = {
        u
        for u in USERS
        if int.from_bytes(hashlib.blake2b(f"qa\0{u}".encode(), digest_size=8).digest(), "big")
        % 10_000
        < 1000
    }
    assert {u for u in USERS if unsalted.choose(u) == "canary"} == expected


@pytest.mark.parametrize("weight", [1, 10, 50])
@pytest.mark.parametrize("salt", ["", "3f9a", "c0ffee00"])
def test_a_canary_serves_its_weight_of_users(weight: int, salt: str) -> None:
    """Over 100 000 ids the share is the weight within 0.5 points (over 5 sigma at 10 %).
    The salts are fixed, so this is exact: a bucketing that skews fails every run."""
    route = RouteTarget("qa", None, None, weight, salt, {"canary": "n/a"})
    ids = [f"user-{i}" for i in range(100_000)]
    share = sum(route.choose(u) == "canary" for u in ids) / len(ids)
    assert abs(share - weight / 100) <= 0.005, share
