"""Monitoring end to end on the in-process tier: real gateway stages, request log, rollups,
monitor and webhook sender, a scripted provider, a loopback webhook receiver, and a clock
the test moves (the rows' times, the windows and the backoffs all read it)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest

from inprocess import InProcess, Scripted
from pilothouse.clock import ManualClock
from pilothouse.notify.webhooks import WebhookSender
from webhook_receiver import Receiver, receiving, verified

pytestmark = pytest.mark.anyio
SECRET = "whsec-monitoring-test"

CONFIG = """
providers:
  sim: {{type: openai, base_url: "http://sim.invalid/v1", owner: llm-platform}}
models:
  fast: {{provider: sim, model: sim-small, pricing: {{input_per_mtok: 1, output_per_mtok: 2}}}}
monitoring:
  evaluate_interval_seconds: 3600
  group_wait_seconds: 0
  drift: {{current_minutes: 10, baseline_days: 0.05, seasonal: false, min_samples: 30}}
  slos:
    - {{name: support-ttft, route: support, sli: ttft, threshold_ms: 1000, objective: 0.95,
       min_events: 20}}
notifications:
  webhooks:
    - {{name: oncall, url: "{hook}", events: ["alert.*"], secret_env: MONITOR_HOOK_SECRET}}
"""

TRIAGE = {
    "variables": {"ticket": {}},
    "messages": [
        {"role": "system", "content": "Sort tickets."},
        {"role": "user", "content": "{{ticket}}"},
    ],
}
OTHER = {"variables": {"q": {}}, "messages": [{"role": "user", "content": "Answer: {{q}}"}]}
NORMAL = "Your ticket is about billing; the billing team will reply within a day."
DRIFTED = (
    "I'm sorry, but I can't help with that. It might be billing, perhaps, but I'm not "
    "entirely sure; it could possibly be something else, and it depends on many things "
    "that I cannot see from here, so please ask again with more details about the ticket."
)


def completion(content: str) -> dict[str, Any]:
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1,
        "model": "sim-small",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content},
                "finish_reason": "stop",
            }
        ],
        "usage": {
            "prompt_tokens": 10,
            "completion_tokens": len(content.split()),
            "total_tokens": 10 + len(content.split()),
        },
    }


async def push(gw: InProcess, name: str, body: dict[str, Any]) -> int:
    response = await gw.client.post(
        f"/api/prompts/{name}/versions", json={**body, "labels": ["production"]}, headers=gw.admin
    )
    return response.status_code


async def call_route(gw: InProcess, route: str, **variables: Any) -> Any:
    body = {"model": f"route:{route}", "messages": [], "pilothouse": {"variables": variables}}
    return await gw.client.post("/v1/chat/completions", json=body, headers=gw.auth)


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    async with receiving() as hook:
        yield hook


@pytest.fixture
async def gw(
    tmp_path: Path, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[tuple[InProcess, ManualClock]]:
    monkeypatch.setenv("MONITOR_HOOK_SECRET", SECRET)
    clock = ManualClock(time.time() - 4 * 86400)  # history to fill before "now"
    async with InProcess.start(tmp_path, CONFIG.format(hook=receiver.url), clock=clock) as gw:
        assert await push(gw, "triage", TRIAGE) == 201
        assert await push(gw, "other", OTHER) == 201
        for route, prompt, owner in (
            ("support", "triage@1", "support-team"),
            ("search", "other@1", "search-team"),
        ):
            body = {"prompt": prompt, "model": "fast", "owner": owner}
            promoted = await gw.client.post(
                f"/api/routes/{route}/promote", json=body, headers=gw.admin
            )
            assert promoted.status_code == 201, promoted.text
        yield gw, clock


def answers(support: str, search: str = NORMAL) -> Any:
    """The provider answers each route's prompt with its own text."""

    def answer(payload: dict[str, Any]) -> Scripted:
        text = support if "Sort tickets" in orjson.dumps(payload).decode() else search
        return Scripted.json(completion(text))

    return answer


async def traffic(gw: InProcess, route: str, n: int) -> None:
    for _ in range(n):
        response = await call_route(
            gw, route, **({"ticket": "refund"} if route == "support" else {"q": "x"})
        )
        assert response.status_code == 200, response.text


async def delivered(
    receiver: Receiver, sender: WebhookSender, event: str
) -> tuple[dict[str, str], bytes]:
    """The first request `receiver` got for `event`, once the sender's loop (woken by the
    publish) or a send of what is due now has delivered it."""
    for _ in range(200):
        for headers, body in receiver.seen:
            if headers["x-pilothouse-event"] == event:
                return headers, body
        await sender.deliver_due()
        await asyncio.sleep(0.02)
    raise AssertionError(f"no {event} reached the receiver: {receiver.seen}")


async def test_drift_on_one_route_alerts_its_owner_signed_and_leaves_the_other_alone(
    gw: tuple[InProcess, ManualClock], receiver: Receiver
) -> None:
    server, clock = gw
    server.transports["sim"].default = answers(NORMAL)  # type: ignore[assignment]
    await traffic(server, "support", 40)
    await traffic(server, "search", 40)
    clock.advance(30 * 60)  # the baseline is now 30 minutes old
    server.transports["sim"].default = answers(DRIFTED)  # type: ignore[assignment]
    await traffic(server, "support", 40)
    await traffic(server, "search", 40)
    clock.advance(60)
    await server.rows(160)  # loaded and rolled up
    monitor, sender = server.server.monitor, server.server.webhooks
    assert monitor is not None and sender is not None
    raised = await monitor.tick()
    drifted = {(a["subject"], a["signal"], a["direction"]) for a in raised}
    assert {("route:support", "refusal", "up"), ("route:support", "hedging", "up")} <= drifted
    assert ("route:support", "length", "up") in drifted
    assert not any(subject == "route:search" for subject, _, _ in drifted)
    assert {a["owner"] for a in raised if a["subject"] == "route:support"} == {"support-team"}
    headers, body = await delivered(receiver, sender, "alert.ticket.support-team")
    assert verified(headers, body, SECRET)
    envelope = orjson.loads(body)
    subjects = {a["subject"] for a in envelope["data"]["alerts"]}
    assert "route:support" in subjects and "route:search" not in subjects
    # The same drift on the next evaluation is the same alert, seen again, not a new one.
    assert await monitor.tick() == []
    listed = await server.client.get("/api/alerts", headers=server.admin)
    assert {a["subject"] for a in listed.json()["data"]} >= {"route:support"}
    deliveries = await server.client.get("/api/notifications/deliveries", headers=server.admin)
    states = {d["event"]: d["state"] for d in deliveries.json()["data"]}
    assert states["alert.ticket.support-team"] == "delivered", states


def stream(text: str, delay: float = 0.0) -> Scripted:
    frames = [
        {
            "id": "s",
            "object": "chat.completion.chunk",
            "choices": [
                {"index": 0, "delta": {"role": "assistant", "content": text}, "finish_reason": None}
            ],
        },
        {
            "id": "s",
            "object": "chat.completion.chunk",
            "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}],
        },
        "[DONE]",
    ]
    scripted = Scripted.sse(*frames)
    scripted.delay_seconds = delay
    return scripted


async def streams(gw: InProcess, n: int, delay: float = 0.0) -> None:
    gw.transports["sim"].default = stream(NORMAL, delay)

    async def one() -> None:
        body = {
            "model": "route:support",
            "messages": [],
            "stream": True,
            "pilothouse": {"variables": {"ticket": "refund"}},
        }
        response = await gw.client.post("/v1/chat/completions", json=body, headers=gw.auth)
        assert response.status_code == 200 and b"[DONE]" in response.content

    for start in range(0, n, 10):  # ten at a time: a busy machine must not make them slow
        await asyncio.gather(*(one() for _ in range(min(10, n - start))))


async def test_slow_first_tokens_on_a_route_page_fast_and_the_slow_tiers_stay_quiet(
    gw: tuple[InProcess, ManualClock],
) -> None:
    server, clock = gw
    # Three days of fast first tokens, thinning towards now ...
    for hours_later, n in ((2, 300), (50, 80), (15, 60), (3, 10)):
        clock.advance(hours_later * 3600)
        await streams(server, n)
    clock.advance(2 * 3600)
    # ... then two minutes of first tokens over the threshold.
    await streams(server, 20, delay=1.2)
    clock.advance(120)
    await server.rows(470)
    monitor = server.server.monitor
    assert monitor is not None
    raised = await monitor.tick()
    [alert] = [a for a in raised if a["kind"] == "slo_burn"]
    assert (alert["severity"], alert["subject"]) == ("page", "slo:support-ttft")
    [status] = [s for s in monitor.last_statuses if s.slo.name == "support-ttft"]
    burn = status.burn
    assert burn["5m"] >= 14.4 and burn["1h"] >= 14.4, burn  # the fast-burn page
    assert burn["6h"] < 6.0, burn  # the second page tier stays quiet
    assert burn["1d"] < 3.0 and burn["3d"] < 1.0, burn  # and both ticket tiers
    assert status.firing is not None and status.firing.long == "1h"
    assert "14.4" in alert["summary"] or "burning" in alert["summary"]


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    from prometheus_client.parser import text_string_to_metric_families

    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return out


async def test_n_requests_raise_each_counter_by_exactly_n_and_no_label_names_a_key_or_user(
    gw: tuple[InProcess, ManualClock],
) -> None:
    server, _ = gw
    server.transports["sim"].default = answers(DRIFTED)  # type: ignore[assignment]
    before = samples((await server.client.get("/metrics")).text)
    n = 23
    for i in range(n):
        body = {
            "model": "route:support",
            "messages": [],
            "user": f"end-user-{i}",
            "pilothouse": {"variables": {"ticket": "refund"}},
        }
        response = await server.client.post("/v1/chat/completions", json=body, headers=server.auth)
        assert response.status_code == 200
    after = samples((await server.client.get("/metrics")).text)
    rows = await server.rows(n)

    def delta(name: str, **labels: str) -> float:
        grown = [
            value - before.get(key, 0.0)
            for key, value in after.items()
            if key[0] == name and set(labels.items()) <= key[1]
        ]
        return sum(grown)

    assert delta("pilothouse_requests_total", outcome="ok") == n
    assert delta("pilothouse_answers_total") == n
    assert delta("pilothouse_output_signals_total", signal="refusal") == n
    assert delta("pilothouse_output_signals_total", signal="hedging") == n
    assert delta("gen_ai_client_operation_duration_seconds_count") == n
    assert delta("pilothouse_request_duration_seconds_count") == n
    assert delta("pilothouse_tokens_total", kind="completion") == n * len(DRIFTED.split())
    assert all(r["sig_refusal"] and r["sig_hedging"] for r in rows)
    # No label value anywhere is a key, a key id or a user.
    key_ids = {r["key_id"] for r in rows}
    users = {f"end-user-{i}" for i in range(n)}
    values = {v for _, labels in after for _, v in labels}
    assert not values & (key_ids | users | {server.key})
    names = {k for _, labels in after for k, _ in labels}
    assert not names & {"user", "key", "key_id", "api_key", "conversation_id"}


async def test_closing_an_alert_needs_a_disposition_and_a_reason_and_noise_thrice_is_chronic(
    gw: tuple[InProcess, ManualClock],
) -> None:
    from datetime import UTC, datetime

    from pilothouse.monitor.alerts import Condition, raise_alert

    server, _ = gw
    store = server.server.store
    condition = Condition(
        kind="drift",
        subject="route:support",
        signal="hedging",
        direction="up",
        severity="ticket",
        summary="route:support: hedging drifted up",
        owner="support-team",
    )

    async def close(alert_id: str, action: str, **body: Any) -> Any:
        return await server.client.post(
            f"/api/alerts/{alert_id}/{action}", json=body, headers=server.admin
        )

    first, new = raise_alert(store, condition, datetime.now(UTC))
    assert new
    again, new = raise_alert(store, condition, datetime.now(UTC))
    assert not new and (again["id"], again["occurrences"]) == (first["id"], 2)
    missing = await close(first["id"], "acknowledge", disposition="noise")
    assert missing.status_code == 400 and "reason" in missing.text
    wrong = await close(first["id"], "resolve", disposition="meh", reason="x")
    assert wrong.status_code == 400 and "disposition" in wrong.text
    unknown = await close("alt_nope", "resolve", disposition="noise", reason="x")
    assert unknown.status_code == 404
    # Acknowledged then resolved as noise: one dismissal, not two.
    assert (await close(first["id"], "acknowledge", disposition="noise", reason="a")).is_success
    assert (await close(first["id"], "resolve", disposition="noise", reason="b")).is_success
    for n in (2, 3):
        listed = (await server.client.get("/api/alerts", headers=server.admin)).json()
        assert listed["chronic"] == [], f"after {n - 1} dismissals"
        alert, new = raise_alert(store, condition, datetime.now(UTC))
        assert new, "a resolved signature that fires again is a new alert"
        resolved = await close(alert["id"], "resolve", disposition="noise", reason=f"again {n}")
        assert resolved.is_success
    listed = (await server.client.get("/api/alerts?state=all", headers=server.admin)).json()
    [chronic] = listed["chronic"]
    assert (chronic["signature"], chronic["dismissed_as_noise"]) == (
        "drift|route:support|hedging|up",
        3,
    )
    history = await server.client.get(f"/api/alerts/{first['id']}", headers=server.admin)
    assert [e["kind"] for e in history.json()["events"]] == ["fired", "acknowledged", "resolved"]


async def test_retention_prunes_raw_rows_and_rollups_each_on_its_own(
    gw: tuple[InProcess, ManualClock],
) -> None:
    from datetime import UTC, datetime

    server, clock = gw
    server.transports["sim"].default = answers(NORMAL)  # type: ignore[assignment]
    await traffic(server, "support", 7)
    clock.advance(31 * 86400)  # the first seven are now past the 30 days of raw rows
    await traffic(server, "support", 5)
    rows = await server.rows(12)
    assert len(rows) == 12
    monitor = server.server.monitor
    assert monitor is not None
    now = datetime.fromtimestamp(clock.now(), UTC)
    # The per-key spend of the first seven (one minute) is past the spend watch's 8 days.
    pruned = {"request_log": 7, "request_rollups": 0, "key_spend": 1, "stored_responses": 0}
    assert monitor.prune(now) == pruned
    assert len(await server.rows(5)) == 5
    # The rollups keep all twelve (400 days), so charts and SLOs still see the older traffic.
    from pilothouse.store import rollups as rollup_rows

    with server.server.store.connect() as conn:
        kept = rollup_rows.sums(conn, now - timedelta(days=40), now, route="support")
    assert kept["requests"] == 12
    # Two minutes and their two ten-minute slots.
    assert monitor.prune(now + timedelta(days=400)) == {
        "request_log": 5,
        "request_rollups": 4,
        "key_spend": 1,
        "stored_responses": 0,
    }


DRIFT_SCENARIO = """
seed: 3
models:
  sim-drifty: {reply_tokens: 40}
  sim-steady: {reply_tokens: 40}
drift:
  - {name: drifty-degrades, model: sim-drifty, after_requests: 60, length_multiplier: 2.5,
     hedging: 0.7, refusal_rate: 0.3}
"""


async def test_the_simulators_drift_mode_on_one_route_alerts_that_route_only(
    tmp_path: Path, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    from harness import start_simulator, stop_process

    monkeypatch.setenv("MONITOR_HOOK_SECRET", SECRET)
    scenario = tmp_path / "scenario.yaml"
    scenario.write_text(DRIFT_SCENARIO)
    sim = start_simulator(scenario)
    config = (
        CONFIG.format(hook=receiver.url)
        .replace('base_url: "http://sim.invalid/v1"', f'base_url: "{sim.url}/v1"')
        .replace(
            "  fast: {provider: sim, model: sim-small, pricing: {input_per_mtok: 1, output_per_mtok: 2}}",
            "  drifty: {provider: sim, model: sim-drifty}\n  steady: {provider: sim, model: sim-steady}",
        )
    )
    clock = ManualClock(time.time() - 3600)
    try:
        async with InProcess.start(tmp_path, config, clock=clock, scripted=False) as gw:
            assert await push(gw, "triage", TRIAGE) == 201
            assert await push(gw, "other", OTHER) == 201
            for route, prompt, model, owner in (
                ("support", "triage@1", "drifty", "support-team"),
                ("search", "other@1", "steady", "search-team"),
            ):
                body = {"prompt": prompt, "model": model, "owner": owner}
                made = await gw.client.post(
                    f"/api/routes/{route}/promote", json=body, headers=gw.admin
                )
                assert made.status_code == 201, made.text
            await traffic(gw, "support", 60)  # the simulator's first 60: as usual
            await traffic(gw, "search", 60)
            clock.advance(30 * 60)
            await traffic(gw, "support", 60)  # from the 61st: longer, hedging, refusing
            await traffic(gw, "search", 60)
            clock.advance(60)
            await gw.rows(240)
            assert gw.server.monitor is not None
            raised = await gw.server.monitor.tick()
            assert gw.server.webhooks is not None
            headers, body = await delivered(
                receiver, gw.server.webhooks, "alert.ticket.support-team"
            )
    finally:
        stop_process(sim.process)
    drifted = {(a["subject"], a["signal"]) for a in raised}
    assert {("route:support", "refusal"), ("route:support", "length")} <= drifted, drifted
    assert not any(subject == "route:search" for subject, _ in drifted)
    assert verified(headers, body, SECRET)
    assert orjson.loads(body)["data"]["owner"] == "support-team"


async def test_an_alert_any_part_raised_is_notified_once_grouped_by_owner(
    gw: tuple[InProcess, ManualClock], receiver: Receiver
) -> None:
    """The spend watch, quotas and the scheduler raise alerts outside the evaluation: the
    monitor's notifications read every open alert not yet sent, whoever raised it."""
    from datetime import UTC, datetime

    from pilothouse.monitor.alerts import Condition, raise_alert

    server, clock = gw
    now = datetime.fromtimestamp(clock.now(), UTC)
    for subject in ("key:k1", "key:k2"):
        raise_alert(
            server.server.store,
            Condition(
                "spend_anomaly",
                subject,
                "usd_per_minute",
                "up",
                "page",
                f"{subject} spends 20x",
                "payments",
            ),
            now,
        )
    monitor, sender = server.server.monitor, server.server.webhooks
    assert monitor is not None and sender is not None
    await monitor.tick()
    headers, body = await delivered(receiver, sender, "alert.page.payments")
    assert verified(headers, body, SECRET)
    assert sorted(a["subject"] for a in orjson.loads(body)["data"]["alerts"]) == [
        "key:k1",
        "key:k2",
    ]
    await monitor.tick()  # already sent: nothing new until the repeat interval
    await sender.deliver_due()
    assert sum(h["x-pilothouse-event"] == "alert.page.payments" for h, _ in receiver.seen) == 1
