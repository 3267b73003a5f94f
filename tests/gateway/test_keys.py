"""Key changes reach every gateway instance within a second, with no database read per request."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from harness import Simulator, gateway_config, start_gateway

HELLO = {"model": "fast", "messages": [{"role": "user", "content": "hi"}]}


def call(url: str, secret: str) -> int:
    return httpx.post(
        url + "/v1/chat/completions", json=HELLO, headers={"Authorization": f"Bearer {secret}"}
    ).status_code


def served_version(url: str) -> str:
    """The configuration version an instance serves (its metric), for a failure's message."""
    metrics = httpx.get(url + "/metrics").text
    return next(
        (line for line in metrics.splitlines() if line.startswith("pilothouse_config_version ")),
        "no config version metric",
    )


def test_disable_on_one_instance_is_obeyed_by_both_within_a_second(
    simulator: Simulator, database_url: str, tmp_path: Path
) -> None:
    first = start_gateway(gateway_config(simulator), database_url, tmp_path / "a")
    second = start_gateway(gateway_config(simulator), database_url, tmp_path / "b")
    try:
        secret = first.create_key(name="shared")
        deadline = time.monotonic() + 2
        while call(second.url, secret) != 200 and time.monotonic() < deadline:
            time.sleep(0.02)
        for instance in (first, second):  # the instance that took the write: at once
            answer = httpx.post(
                instance.url + "/v1/chat/completions",
                json=HELLO,
                headers={"Authorization": f"Bearer {secret}"},
            )
            assert answer.status_code == 200, (answer.text, served_version(instance.url))

        assert (
            first.admin.post("/api/keys/shared/disable", json={"reason": "test"}).status_code == 200
        )
        disabled_at = time.monotonic()
        assert call(first.url, secret) == 401  # the instance that took the write: at once
        while call(second.url, secret) != 401:
            assert time.monotonic() - disabled_at < 1.0, "second instance still accepts the key"
            time.sleep(0.01)
        refused = httpx.post(
            second.url + "/v1/chat/completions",
            json=HELLO,
            headers={"Authorization": f"Bearer {secret}"},
        ).json()
        assert "is disabled" in refused["error"]["message"]

        assert second.admin.post("/api/keys/shared/enable").status_code == 200
        enabled_at = time.monotonic()
        while call(first.url, secret) != 200:
            assert time.monotonic() - enabled_at < 1.0
            time.sleep(0.01)
    finally:
        first.stop()
        second.stop()


def test_expired_keys_and_bad_admin_input(simulator: Simulator, tmp_path: Path) -> None:
    gw = start_gateway(gateway_config(simulator), f"sqlite:///{tmp_path / 'k.db'}", tmp_path / "k")
    try:
        expires = datetime.now(UTC) + timedelta(seconds=3)
        secret = gw.create_key(name="brief", expires_at=expires.isoformat())
        assert call(gw.url, secret) == 200
        time.sleep(max(0.0, (expires - datetime.now(UTC)).total_seconds()) + 0.1)
        assert call(gw.url, secret) == 401

        bad = gw.admin.post("/api/keys", json={"name": "x", "models": ["nope"]})
        assert (
            bad.status_code == 400
            and "unknown model aliases nope" in bad.json()["error"]["message"]
        )
        bad_date = gw.admin.post("/api/keys", json={"name": "x", "expires_at": "next week"})
        assert bad_date.status_code == 400 and bad_date.json()["error"]["field"] == "expires_at"
        not_json = gw.admin.post(
            "/api/keys", content=b"{nope", headers={"content-type": "application/json"}
        )
        assert not_json.status_code == 400
        no_token = httpx.get(gw.url + "/api/keys")
        assert (
            no_token.status_code == 401
            and "PILOTHOUSE_ADMIN_TOKEN" in no_token.json()["error"]["hint"]
        )
        assert gw.admin.post("/api/keys/missing/disable").status_code == 404
    finally:
        gw.stop()


@pytest.mark.parametrize("signal_name", ["SIGTERM", "SIGINT"])
def test_graceful_shutdown_finishes_in_flight_streams_and_flushes_the_log(
    simulator: Simulator, tmp_path: Path, signal_name: str
) -> None:
    import signal
    import threading

    gw = start_gateway(gateway_config(simulator), f"sqlite:///{tmp_path / 's.db'}", tmp_path / "s")
    secret = gw.create_key(name="drain")
    body: dict[str, str] = {}
    started = threading.Event()

    def slow_request() -> None:
        with httpx.stream(
            "POST",
            gw.url + "/v1/chat/completions",
            json={**HELLO, "model": "slow-first-token", "stream": True},
            headers={"Authorization": f"Bearer {secret}", "x-request-id": "in-flight"},
            timeout=20,
        ) as r:
            started.set()  # headers are sent once the upstream stream is open
            body["text"] = r.read().decode()

    worker = threading.Thread(target=slow_request)
    worker.start()
    # The request is in flight, waiting for its first token.
    assert started.wait(10), "the streaming request never reached the upstream"
    assert gw.stop(getattr(signal, signal_name)) == 0
    worker.join(timeout=20)
    assert body["text"].rstrip().endswith("data: [DONE]")
    import sqlalchemy as sa

    engine = sa.create_engine(f"sqlite:///{tmp_path / 's.db'}")
    with engine.connect() as conn:
        status = conn.execute(
            sa.text("SELECT status_code FROM request_log WHERE client_request_id='in-flight'")
        ).scalar()
    assert status == 200


@pytest.mark.parametrize("bus", ["redis", "postgres"])
def test_the_change_bus_propagates_without_waiting_for_the_poll(
    simulator: Simulator, postgres_url: str, redis_url: str, tmp_path: Path, bus: str
) -> None:
    """With the poll slowed to 30 s, only the bus can carry a change in under a second."""
    config = gateway_config(simulator).replace(
        "gateway:\n", "gateway:\n  config_poll_interval_seconds: 30\n"
    )
    env = {"PILOTHOUSE_REDIS_URL": redis_url} if bus == "redis" else {}
    # The Redis case uses SQLite, so PostgreSQL NOTIFY cannot be what delivers it.
    database_url = f"sqlite:///{tmp_path / 'bus.db'}" if bus == "redis" else postgres_url
    first = start_gateway(config, database_url, tmp_path / "a", env)
    second = start_gateway(config, database_url, tmp_path / "b", env)
    try:
        # Warm-up: a change on the first must reach the second before the timed checks,
        # which proves both are subscribed. A message sent before the second subscribed is
        # lost, so each try makes a fresh change.
        seen = False
        for attempt in range(20):
            warm = first.create_key(name=f"warm-up-{attempt}")
            tried_at = time.monotonic()
            while not (seen := call(second.url, warm) == 200) and time.monotonic() - tried_at < 0.5:
                time.sleep(0.01)
            if seen:
                break
        assert seen, f"{bus}: the second gateway never saw a change made on the first"
        secret = first.create_key(name="bus")
        created_at = time.monotonic()
        while call(second.url, secret) != 200:
            assert time.monotonic() - created_at < 1.0, f"{bus} did not deliver the new key"
            time.sleep(0.01)
        first.admin.post("/api/keys/bus/disable")
        disabled_at = time.monotonic()
        while call(second.url, secret) != 401:
            assert time.monotonic() - disabled_at < 1.0, f"{bus} did not deliver the disable"
            time.sleep(0.01)
    finally:
        first.stop()
        second.stop()


def test_shutdown_ends_open_prompt_streams_instead_of_waiting_for_them(
    simulator: Simulator, tmp_path: Path
) -> None:
    import signal
    import threading

    gw = start_gateway(
        gateway_config(simulator), f"sqlite:///{tmp_path / 'sse.db'}", tmp_path / "sse"
    )
    key = gw.create_key(name="listener")
    ended: list[float] = []
    connected = threading.Semaphore(0)

    def listen() -> None:
        try:
            with httpx.stream(
                "GET",
                gw.url + "/api/prompts/stream",
                headers={"Authorization": f"Bearer {key}"},
                timeout=60,
            ) as response:
                assert response.status_code == 200
                connected.release()
                for _ in response.iter_lines():
                    pass
        except httpx.HTTPError:
            pass
        ended.append(time.monotonic())

    listeners = [threading.Thread(target=listen) for _ in range(5)]
    for thread in listeners:
        thread.start()
    for _ in listeners:
        assert connected.acquire(timeout=10), "a listener never connected"
    stopping = time.monotonic()
    assert gw.stop(signal.SIGTERM) == 0
    took = time.monotonic() - stopping
    for thread in listeners:
        thread.join(timeout=5)
    assert len(ended) == 5
    assert took < 5, f"shutdown waited {took:.1f} s for open streams"
