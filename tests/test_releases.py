"""Releases on SQLite and PostgreSQL: promote, canary, stacked rollback, checks, history."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from pilothouse import errors
from pilothouse.config import ModelSpec
from pilothouse.registry import prompts as prompt_registry
from pilothouse.registry.prompt_content import parse_content
from pilothouse.releases import deprecation, promotion
from pilothouse.store import open_store

MODELS = {
    "fast": ModelSpec(provider="sim", model="sim-small"),
    "smart": ModelSpec(provider="sim", model="sim-large", lifecycle="preview"),
    "old": ModelSpec(
        provider="sim",
        model="sim-old",
        retirement_date=date.today() + timedelta(days=20),
        successor="fast",
    ),
    "gone": ModelSpec(provider="sim", model="sim-gone", lifecycle="retired", successor="fast"),
}


@pytest.fixture
def promoter(database_url: str) -> promotion.Promoter:
    store = open_store(database_url)
    store.upgrade()
    for text in ("Sort tickets.", "Sort support tickets."):
        body = {"messages": [{"role": "system", "content": text}], "variables": {}}
        prompt_registry.create_version(store, "triage", parse_content(body), labels=["production"])
    yield promotion.Promoter(store, MODELS)
    store.close()


def test_promote_canary_and_stacked_rollback(promoter: promotion.Promoter) -> None:
    first = promoter.promote(
        "support",
        prompt="triage@1",
        model="fast",
        params={"temperature": 0.2},
        reason="launch",
        owner="support-team",
    )
    assert (first.prompt_name, first.prompt_version, first.model_alias) == ("triage", 1, "fast")
    second = promoter.promote(
        "support", prompt="triage:production", model="fast", params={}, reason="v2"
    )
    assert second.prompt_version == 2  # the label is resolved now; the release never moves
    third = promoter.promote(
        "support", prompt="triage@2", model="smart", params={"max_tokens": 50}, reason="bigger"
    )
    canary = promoter.canary(
        "support", prompt="triage@1", model="fast", params={}, weight=10, reason="try"
    )
    assert canary is not None
    routes = promotion.list_routes(promoter.store)
    assert routes[0]["active"]["id"] == third.id and routes[0]["canary"]["id"] == canary.id
    assert routes[0]["canary_weight"] == 10 and routes[0]["owner"] == "support-team"

    assert promoter.rollback("support", reason="bad").id == second.id
    after = promotion.list_routes(promoter.store)[0]
    assert after["canary"] is None and after["canary_weight"] == 0  # one call back to known-good
    assert promoter.rollback("support", reason="worse").id == first.id
    with pytest.raises(errors.Conflict, match="no earlier release"):
        promoter.rollback("support", reason=None)
    kinds = [e["kind"] for e in promotion.history(promoter.store, "support")]
    assert kinds == ["rollback", "rollback", "canary", "promote", "promote", "promote"]


def test_canary_weight_changes_and_promotion_of_the_canary(promoter: promotion.Promoter) -> None:
    promoter.promote("support", prompt="triage@1", model="fast", params={}, reason=None)
    canary = promoter.canary(
        "support", prompt="triage@2", model="fast", params={}, weight=5, reason=None
    )
    same = promoter.canary(
        "support", prompt=None, model=None, params=None, weight=50, reason="widen"
    )
    assert same is not None and same.id == canary.id
    assert promotion.list_routes(promoter.store)[0]["canary_weight"] == 50
    promoted = promoter.promote(
        "support", prompt=None, model=None, params=None, reason="ship", from_canary=True
    )
    assert promoted.id == canary.id
    assert promotion.list_routes(promoter.store)[0]["canary"] is None
    with pytest.raises(errors.Conflict, match="no canary"):
        promoter.promote(
            "support", prompt=None, model=None, params=None, reason=None, from_canary=True
        )
    assert (
        promoter.canary(
            "support", prompt="triage@1", model="fast", params={}, weight=0, reason=None
        )
        is None
    )


def test_bad_releases_are_refused_with_what_to_do(promoter: promotion.Promoter) -> None:
    with pytest.raises(
        errors.InvalidRequest, match="unknown model alias 'fats'; known: fast, gone, old, smart"
    ):
        promoter.promote("support", prompt="triage@1", model="fats", params={}, reason=None)
    with pytest.raises(errors.InvalidRequest, match="'gone' is retired; use its successor 'fast'"):
        promoter.promote("support", prompt="triage@1", model="gone", params={}, reason=None)
    # No model chosen (the dashboard's select left at "-"): which ones serve ('gone' no longer).
    with pytest.raises(
        errors.InvalidRequest, match=r"a release needs a model alias: one of fast, old, smart$"
    ):
        promoter.promote("support", prompt="triage@1", model=None, params={}, reason=None)
    with pytest.raises(errors.InvalidRequest, match="unknown release parameter 'temprature'"):
        promoter.promote(
            "support", prompt="triage@1", model="fast", params={"temprature": 1}, reason=None
        )
    with pytest.raises(errors.InvalidRequest, match="temperature must be a number from 0 to 2"):
        promoter.promote(
            "support", prompt="triage@1", model="fast", params={"temperature": 7}, reason=None
        )
    with pytest.raises(errors.NotFound, match="versions are 1 to 2"):
        promoter.promote("support", prompt="triage@9", model="fast", params={}, reason=None)
    with pytest.raises(errors.NotFound, match="no route 'empty'"):
        promoter.canary("empty", prompt="triage@1", model="fast", params={}, weight=5, reason=None)
    with pytest.raises(errors.InvalidRequest, match="weight must be 0 to 100"):
        promoter.canary(
            "empty", prompt="triage@1", model="fast", params={}, weight=150, reason=None
        )
    assert promotion.list_routes(promoter.store) == []  # no failed promotion left a route behind


def test_doctor_lists_routes_pinned_to_retiring_or_preview_models(
    promoter: promotion.Promoter,
) -> None:
    promoter.promote("billing", prompt="triage@1", model="old", params={}, reason=None)
    promoter.promote("search", prompt="triage@1", model="fast", params={}, reason=None)
    promoter.canary("search", prompt="triage@2", model="smart", params={}, weight=5, reason=None)
    warnings = deprecation.route_warnings(
        promotion.list_routes(promoter.store), MODELS, today=date.today(), within_days=90
    )
    assert [(w["route"], w["side"], w["problem"]) for w in warnings] == [
        ("billing", "active", "retiring"),
        ("search", "canary", "preview"),
    ]
    assert "in 20 days; its successor is 'fast'" in warnings[0]["message"]
    quiet = deprecation.route_warnings(
        promotion.list_routes(promoter.store), MODELS, today=date.today(), within_days=10
    )
    assert [w["problem"] for w in quiet] == ["preview"]
