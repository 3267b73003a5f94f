"""Webhook deliveries against a real receiver on loopback: signed, retried with backoff on
the clock the test moves, refused for good on a 4xx, recorded, sent once by two senders,
and picked up again after a restart."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from pilothouse.clock import ManualClock
from pilothouse.config import WebhookSpec
from pilothouse.notify.webhooks import WebhookSender
from pilothouse.store import Store, open_store
from webhook_receiver import Receiver, receiving, verified

pytestmark = pytest.mark.anyio
SECRET = "whsec-test-0123456789"


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    async with receiving() as hook:
        yield hook


@pytest.fixture
def store(tmp_path: Path) -> Store:
    opened = open_store(f"sqlite:///{tmp_path / 'p.db'}")
    opened.upgrade()
    return opened


def sender(
    store: Store, clock: ManualClock, *hooks: WebhookSpec, secret: str | None = SECRET
) -> WebhookSender:
    environ = {"HOOK_SECRET": secret} if secret else {}
    return WebhookSender(store, hooks, clock=clock, environ=environ)


def hook(url: str, **fields: Any) -> WebhookSpec:
    return WebhookSpec.model_validate({"name": "oncall", "url": url, **fields})


def verify(headers: dict[str, str], body: bytes, secret: str) -> bool:
    return verified(headers, body, secret)


async def test_an_event_reaches_each_subscribed_webhook_signed_and_in_its_format(
    receiver: Receiver, store: Store
) -> None:
    clock = ManualClock()
    hooks = (
        hook(receiver.url, secret_env="HOOK_SECRET", events=["alert.page.*"]),
        hook(receiver.url, name="slack", format="slack", events=["alert.*"]),
        hook(receiver.url, name="tickets-only", events=["alert.ticket.*"]),
    )
    sent = sender(store, clock, *hooks)
    ids = await sent.publish("alert.page.payments", {"message": "SLO checkout burning 15x"})
    assert len(ids) == 2, "the ticket-only webhook is not subscribed to a page"
    assert await sent.deliver_due() == 2
    await sent.close()
    by_kind = {
        ("text" in b): (h, raw, b)
        for (h, raw), b in zip(receiver.seen, receiver.bodies(), strict=True)
    }
    headers, raw, envelope = by_kind[False]
    assert envelope["event"] == "alert.page.payments" and envelope["id"] in ids
    assert envelope["data"] == {"message": "SLO checkout burning 15x"}
    assert verify(headers, raw, SECRET)
    assert not verify(headers, raw + b" ", SECRET), "a changed body fails the check"
    assert headers["x-pilothouse-delivery"] == envelope["id"]
    slack_headers, _, slack = by_kind[True]
    assert slack == {"text": "[alert.page.payments] SLO checkout burning 15x"}
    assert "x-pilothouse-signature" not in slack_headers, "no secret named, nothing signed"
    rows = sent.listing()
    assert {(r["webhook"], r["state"], r["attempts"], r["last_status"]) for r in rows} == {
        ("oncall", "delivered", 1, 200),
        ("slack", "delivered", 1, 200),
    }


async def test_a_failing_receiver_is_retried_with_backoff_until_it_answers(
    receiver: Receiver, store: Store
) -> None:
    clock = ManualClock()
    sent = sender(store, clock, hook(receiver.url, secret_env="HOOK_SECRET"))
    receiver.statuses = [503, 429]
    [delivery] = await sent.publish("alert.ticket.team-a", {"message": "drift"})
    assert await sent.deliver_due() == 1  # 503
    assert await sent.deliver_due() == 0, "not due again until its backoff has passed"
    clock.advance(1.9)
    assert await sent.deliver_due() == 0
    clock.advance(0.2)  # 2 s after the first failure
    assert await sent.deliver_due() == 1  # 429
    [row] = sent.listing()
    assert (row["state"], row["attempts"], row["last_status"]) == ("pending", 2, 429)
    assert row["last_error"] == "the receiver answered HTTP 429"
    clock.advance(4.0)  # doubled
    assert await sent.deliver_due() == 1
    await sent.close()
    [row] = sent.listing()
    assert (row["id"], row["state"], row["attempts"], row["last_status"]) == (
        delivery,
        "delivered",
        3,
        200,
    )
    assert len(receiver.seen) == 3
    assert {h["x-pilothouse-delivery"] for h, _ in receiver.seen} == {delivery}


async def test_a_receiver_that_refuses_is_failed_at_once_and_one_that_stays_down_gives_up(
    receiver: Receiver, store: Store
) -> None:
    clock = ManualClock()
    sent = sender(store, clock, hook(receiver.url, max_attempts=3))
    receiver.statuses = [400]
    await sent.publish("alert.page.x", {"message": "a"})
    await sent.deliver_due()
    [row] = sent.listing()
    assert (row["state"], row["attempts"], row["last_status"]) == ("failed", 1, 400)
    receiver.statuses = [500, 502, 503, 200]
    await sent.publish("alert.page.x", {"message": "b"})
    for _ in range(5):
        await sent.deliver_due()
        clock.advance(60)
    await sent.close()
    failed = {r["payload"]["message"]: r for r in sent.listing(state="failed")}
    assert set(failed) == {"a", "b"}
    row = failed["b"]
    assert (row["attempts"], row["last_status"]) == (3, 503), "max_attempts 3, never a 4th"
    assert len(receiver.seen) == 4


async def test_two_senders_on_one_store_send_each_delivery_once_and_a_restart_resumes(
    receiver: Receiver, store: Store
) -> None:
    clock = ManualClock()
    first = sender(store, clock, hook(receiver.url))
    for n in range(5):
        await first.publish("alert.page.x", {"message": f"m{n}"})
    await first.close()  # stopped before sending anything: the deliveries wait in the store
    a = sender(store, clock, hook(receiver.url))
    b = sender(store, clock, hook(receiver.url))
    counts = await asyncio.gather(a.deliver_due(), b.deliver_due())
    await a.close()
    await b.close()
    assert sum(counts) == 5
    assert sorted(body["data"]["message"] for body in receiver.bodies()) == [
        f"m{n}" for n in range(5)
    ]


async def test_a_missing_secret_sends_nothing_unsigned(receiver: Receiver, store: Store) -> None:
    clock = ManualClock()
    sent = sender(store, clock, hook(receiver.url, secret_env="HOOK_SECRET"), secret=None)
    await sent.publish("alert.page.x", {"message": "a"})
    await sent.deliver_due()
    await sent.close()
    assert receiver.seen == []
    [row] = sent.listing()
    assert row["state"] == "pending"
    assert row["last_error"] == "the secret variable HOOK_SECRET is not set"


def test_a_webhook_secret_is_named_never_written_in_the_config() -> None:
    with pytest.raises(ValueError, match="NAME of an environment variable"):
        WebhookSpec.model_validate(
            {"name": "a", "url": "http://x/hook", "secret_env": "whsec-abc 123"}
        )
