"""Quotas in-process (tests/inprocess.py): the real gateway stages and admin API, the
in-process counter backend, providers scripted at the transport, time on a ManualClock."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from inprocess import InProcess, Scripted
from pilothouse.clock import ManualClock
from pilothouse.store.tables import alerts, webhook_deliveries

pytestmark = pytest.mark.anyio

CONFIG = """
providers:
  sim: {type: openai, base_url: "http://sim.invalid/v1"}
models:
  fast: {provider: sim, model: sim-small, pricing: {input_per_mtok: 1, output_per_mtok: 2}}
  cheap: {provider: sim, model: sim-tiny, pricing: {input_per_mtok: 0.1, output_per_mtok: 0.2}}
notifications:
  webhooks:
    - {name: quota-hook, url: "http://127.0.0.1:9/hook", events: ["quota.*", "spend.*"]}
"""
START = 1_799_971_200.0  # midnight UTC (a day and a minute boundary)
USAGE = {"prompt_tokens": 10, "completion_tokens": 500, "total_tokens": 510}


def completion(model: str = "sim-small", usage: dict[str, int] = USAGE) -> dict[str, Any]:
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1,
        "model": model,
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": "Hi"}, "finish_reason": "stop"}
        ],
        "usage": usage,
    }


def echo(payload: dict[str, Any]) -> Scripted:
    """An answer naming the provider model it was sent to."""
    return Scripted.json(completion(payload["model"]))


@pytest.fixture
async def gw(tmp_path: Path) -> AsyncIterator[tuple[InProcess, ManualClock]]:
    clock = ManualClock(START + 5)
    async with InProcess.start(tmp_path, CONFIG, clock=clock) as gateway:
        gateway.transports["sim"].default = Scripted.json(completion())
        yield gateway, clock


async def set_quota(gw: InProcess, name: str, **spec: Any) -> dict[str, Any]:
    body = {"subject_kind": "key", "subject": "inprocess", **spec}
    response = await gw.client.put(f"/api/quotas/{name}", json=body, headers=gw.admin)
    assert response.status_code in (200, 201), response.text
    return dict(response.json())


async def test_request_quota_headers_on_every_answer_then_429_with_retry_after_and_body(
    gw: tuple[InProcess, ManualClock],
) -> None:
    server, clock = gw
    await set_quota(server, "rpm", dimension="requests", window="minute", hard_limit=3)
    for remaining in (2, 1, 0):
        response = await server.chat()
        assert response.status_code == 200
        assert response.headers["ratelimit-policy"] == '"rpm";q=3;w=60'
        assert response.headers["ratelimit"] == f'"rpm";r={remaining};t=55'
    refused = await server.chat()
    assert refused.status_code == 429
    assert refused.headers["retry-after"] == "55"
    assert refused.headers["ratelimit"] == '"rpm";r=0;t=55'
    error = refused.json()["error"]
    assert (error["type"], error["code"], error["quota"]) == ("quota_exceeded",) * 2 + ("rpm",)
    assert (error["limit"], error["used"], error["dimension"]) == (3, 3, "requests")
    assert error["resets_at"] == "2027-01-15T00:01:00Z"
    assert "limit of 3 requests" in error["display_message"]
    assert len(server.transports["sim"].requests) == 3  # the refused one never left
    rows = await server.rows(4)
    assert sorted((r["status_code"], r["error_class"]) for r in rows) == [(200, None)] * 3 + [
        (429, "quota_exceeded")
    ]
    clock.advance(60)  # the next calendar minute
    assert (await server.chat()).status_code == 200


async def test_a_cost_quota_reserves_max_tokens_so_concurrent_bursts_never_overshoot(
    gw: tuple[InProcess, ManualClock],
) -> None:
    server, _ = gw
    await set_quota(server, "usd", dimension="cost", window="day", hard_limit=0.01)
    server.transports["sim"].default = Scripted(
        body=Scripted.json(completion()).body, delay_seconds=0.05
    )
    # Each call may cost ~$0.00205 (max_tokens 1000 at $2/M and the prompt's bound); it
    # really costs $0.00101. At once: only what the reservations allow goes through.
    burst = await asyncio.gather(*(server.chat(max_tokens=1000) for _ in range(12)))
    assert sorted(r.status_code for r in burst) == [200] * 4 + [429] * 8
    # After reconciliation the unused part came back: more fit, one by one, never past $0.01.
    served = 4
    while (await server.chat(max_tokens=1000)).status_code == 200:
        served += 1
    assert served == 8
    usage = (await server.client.get("/api/keys/inprocess/usage", headers=server.admin)).json()
    [quota] = usage["quotas"]
    assert quota["used"] == pytest.approx(8 * 0.00101) and quota["used"] <= 0.01
    rows = await server.rows(12 + 5)
    assert sum(r["cost_usd"] or 0 for r in rows) == pytest.approx(8 * 0.00101)


async def test_a_failed_call_releases_its_reservation(gw: tuple[InProcess, ManualClock]) -> None:
    server, _ = gw
    await set_quota(server, "two", dimension="requests", window="hour", hard_limit=2)
    bad = {"error": {"message": "bad request", "type": "invalid_request_error"}}
    server.script("sim", Scripted.json(bad, status=400), Scripted.json(bad, status=400))
    assert [(await server.chat()).status_code for _ in range(2)] == [400, 400]
    assert [(await server.chat()).status_code for _ in range(3)] == [200, 200, 429]


async def test_past_the_soft_limit_a_request_is_degraded_to_the_cheaper_alias_with_a_warning(
    gw: tuple[InProcess, ManualClock],
) -> None:
    server, _ = gw
    await set_quota(
        server,
        "soft",
        dimension="requests",
        window="day",
        soft_limit=1,
        hard_limit=10,
        degrade_to="cheap",
        degrade_max_tokens=50,
    )
    server.script("sim", echo, echo)
    first = await server.chat(max_tokens=400)
    assert first.json()["model"] == "sim-small"
    assert "x-pilothouse-quota-warning" not in first.headers
    second = await server.chat(max_tokens=400)
    assert second.status_code == 200 and second.json()["model"] == "sim-tiny"
    assert second.headers["x-pilothouse-quota-degraded"] == "cheap"
    assert "past its soft limit" in second.headers["x-pilothouse-quota-warning"]
    _, sent = server.transports["sim"].requests[-1]
    assert (sent["model"], sent["max_tokens"]) == ("sim-tiny", 50)
    rows = await server.rows(2)
    assert sorted(r["model_alias"] for r in rows) == ["cheap", "fast"]


async def test_streams_and_clients_that_leave_are_reconciled_with_what_was_used(
    gw: tuple[InProcess, ManualClock],
) -> None:
    server, _ = gw
    await set_quota(server, "tok", dimension="tokens", window="day", hard_limit=100_000)
    frames = [
        {
            "id": "c",
            "object": "chat.completion.chunk",
            "choices": [{"index": 0, "delta": {"content": "Hi"}, "finish_reason": None}],
        },
        {
            "id": "c",
            "object": "chat.completion.chunk",
            "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}],
        },
        {
            "id": "c",
            "object": "chat.completion.chunk",
            "choices": [],
            "usage": {"prompt_tokens": 7, "completion_tokens": 30, "total_tokens": 37},
        },
        "[DONE]",
    ]
    server.script("sim", Scripted.sse(*frames))
    response = await server.chat(stream=True, max_tokens=2000)
    assert response.status_code == 200 and "[DONE]" in response.text
    assert response.headers["x-pilothouse-quota-tokens-remaining"]  # before the answer: reserved

    async def used() -> float:
        answer = await server.client.get("/api/keys/inprocess/usage", headers=server.admin)
        return float(answer.json()["quotas"][0]["used"])

    assert await used() == 37
    # A client that leaves after the first frame: what was sent and delivered is counted.
    cut = Scripted.sse(*frames[:1], b": slow\n\n" * 3)
    cut.chunk_delay_seconds = 0.2
    server.script("sim", cut)
    await server.drive(
        {
            "model": "fast",
            "stream": True,
            "max_tokens": 2000,
            "messages": [{"role": "user", "content": "hi"}],
        },
        leave_after_frames=1,
    )
    after = await used()
    assert 37 < after < 37 + 100  # the partial estimate, not the 2000-token reservation


async def test_warnings_at_75_and_90_percent_and_exceeded_are_published_and_alerted(
    gw: tuple[InProcess, ManualClock],
) -> None:
    server, _ = gw
    await set_quota(server, "ten", dimension="requests", window="day", hard_limit=10)
    for _ in range(11):
        await server.chat()
    await asyncio.sleep(0.2)  # the notifications are sent off the request path
    with server.server.store.connect() as conn:
        events = [r.event for r in conn.execute(select(webhook_deliveries.c.event))]
        kinds = [r.kind for r in conn.execute(select(alerts.c.kind))]
    assert sorted(events) == ["quota.exceeded", "quota.warning.75", "quota.warning.90"]
    assert kinds == ["quota"]


async def test_policies_are_validated_listed_audited_and_removed(
    gw: tuple[InProcess, ManualClock],
) -> None:
    server, _ = gw
    bad = await server.client.put(
        "/api/quotas/x",
        json={
            "subject_kind": "team",
            "subject": "t",
            "dimension": "cost",
            "window": "day",
            "soft_limit": 5,
            "hard_limit": 2,
        },
        headers=server.admin,
    )
    assert bad.status_code == 400 and "above the hard limit" in bad.json()["error"]["message"]
    unknown = await server.client.put(
        "/api/quotas/x",
        json={
            "subject_kind": "team",
            "subject": "t",
            "dimension": "cost",
            "window": "day",
            "soft_limit": 1,
            "degrade_to": "nope",
        },
        headers=server.admin,
    )
    assert unknown.status_code == 400 and "not a model alias" in unknown.json()["error"]["message"]
    created = await set_quota(server, "rpm", dimension="requests", window="minute", hard_limit=1)
    assert created["subject"].startswith("key_")  # a key named by name is stored by id
    listed = (await server.client.get("/api/quotas", headers=server.admin)).json()["data"]
    assert [q["name"] for q in listed] == ["rpm"]
    assert (await server.chat()).status_code == 200
    assert (await server.chat()).status_code == 429
    gone = await server.client.request("DELETE", "/api/quotas/rpm", headers=server.admin)
    assert gone.status_code == 200
    assert (await server.chat()).status_code == 200  # obeyed at once: the write announced it
    assert "ratelimit" not in (await server.chat()).headers


async def test_a_team_quota_counts_every_key_of_the_team_and_a_user_quota_each_user(
    gw: tuple[InProcess, ManualClock],
) -> None:
    server, _ = gw
    keys = []
    for name in ("a", "b"):
        created = await server.client.post(
            "/api/keys", json={"name": name, "team": "payments"}, headers=server.admin
        )
        keys.append(created.json()["secret"])
    await set_quota(
        server,
        "team",
        subject_kind="team",
        subject="payments",
        dimension="requests",
        window="day",
        hard_limit=3,
    )
    await set_quota(
        server,
        "each-user",
        subject_kind="user",
        subject="*",
        dimension="requests",
        window="day",
        hard_limit=1,
    )

    async def call(secret: str, user: str) -> int:
        response = await server.client.post(
            "/v1/chat/completions",
            json={"model": "fast", "user": user, "messages": [{"role": "user", "content": "x"}]},
            headers={"Authorization": f"Bearer {secret}"},
        )
        return response.status_code

    assert await call(keys[0], "u1") == 200
    assert await call(keys[0], "u1") == 429  # u1 has had its one
    assert await call(keys[1], "u2") == 200
    assert await call(keys[1], "u3") == 200
    assert await call(keys[0], "u4") == 429  # the team's three are used, whichever key


async def test_a_persons_key_is_that_person_whatever_its_requests_name(
    gw: tuple[InProcess, ManualClock],
) -> None:
    # A user quota on alice binds her own key: naming another end user in the request's
    # `user` field does not sidestep it (the field is only an application key's to set).
    server, _ = gw
    created = await server.client.post(
        "/api/keys", json={"name": "alice-laptop", "user": "alice"}, headers=server.admin
    )
    app_key = await server.client.post("/api/keys", json={"name": "app"}, headers=server.admin)
    await set_quota(
        server,
        "alice",
        subject_kind="user",
        subject="alice",
        dimension="requests",
        window="day",
        hard_limit=1,
    )

    async def call(secret: str, user: str | None) -> int:
        body: dict[str, Any] = {"model": "fast", "messages": [{"role": "user", "content": "x"}]}
        if user is not None:
            body["user"] = user
        response = await server.client.post(
            "/v1/chat/completions", json=body, headers={"Authorization": f"Bearer {secret}"}
        )
        return response.status_code

    alice = created.json()["secret"]
    assert await call(alice, None) == 200
    assert await call(alice, "someone-else") == 429  # still alice's request
    # An application key names its end users: alice's quota applies when it names her.
    assert await call(app_key.json()["secret"], "bob") == 200
    assert await call(app_key.json()["secret"], "alice") == 429
    users: dict[str, list[str]] = {}
    for row in await server.rows(4):
        users.setdefault(row["key_id"], []).append(row["user"])
    users = {key: sorted(named) for key, named in users.items()}
    assert users == {created.json()["id"]: ["alice"] * 2, app_key.json()["id"]: ["alice", "bob"]}


async def test_an_end_user_id_past_the_log_s_column_is_one_user_in_the_log_and_quotas(
    gw: tuple[InProcess, ManualClock],
) -> None:
    # The log keeps 200 characters of a user while a quota on each user counted the whole
    # id: two ids cut to one name in the log were two quotas (and a 1 MB id a 1 MB counter
    # key). A longer id is now its first characters, `~` and a hash of the whole, in both.
    server, _ = gw
    await set_quota(
        server,
        "each-user",
        subject_kind="user",
        subject="*",
        dimension="requests",
        window="day",
        hard_limit=1,
    )
    app = (await server.client.post("/api/keys", json={"name": "app"}, headers=server.admin)).json()
    auth = {"Authorization": f"Bearer {app['secret']}"}
    chat = {"model": "fast", "messages": [{"role": "user", "content": "x"}]}
    shared = "u" * 190  # two ids alike in what a 200-character column could show
    first, second, huge = shared + "A" * 60, shared + "B" * 60, "h" * 1_000_000

    async def status(n: int, path: str, body: dict[str, Any]) -> int:
        headers = {**auth, "X-Client-Request-Id": str(n)}
        return (await server.client.post(path, json=body, headers=headers)).status_code

    assert await status(0, "/v1/chat/completions", {**chat, "user": first}) == 200
    assert await status(1, "/v1/responses", {"model": "fast", "input": "x", "user": first}) == 429
    assert await status(2, "/v1/chat/completions", {**chat, "user": second}) == 200  # its own
    messages = {"model": "fast", "max_tokens": 5, "messages": chat["messages"]}
    with_id = {**messages, "metadata": {"user_id": second}}
    assert await status(3, "/v1/messages", with_id) == 429  # the same user through Messages
    assert await status(4, "/v1/chat/completions", {**chat, "user": huge}) == 200
    rows = sorted(await server.rows(5), key=lambda row: int(row["client_request_id"]))
    users = [row["user"] for row in rows]
    assert users[0] == users[1] != users[2] == users[3]
    assert all(len(user) <= 200 and "~" in user for user in users)
    assert users[0].startswith(shared[:150]) and len(users[4]) <= 200
    assert not any("cut to" in (row["error_message"] or "") for row in rows)  # nothing cut
    # A user that is not a string is the request's error, on each door that reads one.
    for path, body in (
        ("/v1/chat/completions", {**chat, "user": ["a"]}),
        ("/v1/responses", {"model": "fast", "input": "x", "user": 7}),
        ("/v1/messages", {**messages, "metadata": {"user_id": {"id": 1}}}),
    ):
        response = await server.client.post(path, json=body, headers=auth)
        assert response.status_code == 400, (path, response.text)
        assert "user" in response.text
