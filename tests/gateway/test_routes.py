"""Routes through the gateway: the release's prompt, model and parameters are applied, every
log row says which release produced it, canaries split by user, rollbacks reach every
instance within a second."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import httpx
import openai
import pytest

from harness import Gateway, Simulator, gateway_config, start_gateway
from pilothouse.releases.serving import RouteTarget, load_routes
from pilothouse.store import open_store

TRIAGE = {
    "messages": [
        {"role": "system", "content": "You route support tickets. {{> house-style}}"},
        {"role": "user", "content": "Ticket: {{ticket}}"},
    ],
    "variables": {"ticket": {}},
}


def setup_route(gw: Gateway, route: str = "support-triage") -> dict:
    """Prompt v1 and v2, the fragment, and route promoted to v1 then v2 (idempotent)."""
    admin = gw.admin
    admin.post(
        "/api/prompts/house-style/versions", json={"text": "Be brief.", "labels": ["production"]}
    )
    admin.post("/api/prompts/triage/versions", json=TRIAGE)
    v2 = {
        **TRIAGE,
        "messages": [TRIAGE["messages"][0], {"role": "user", "content": "Ticket #2: {{ticket}}"}],
    }
    admin.post("/api/prompts/triage/versions", json=v2)
    first = admin.post(
        f"/api/routes/{route}/promote",
        json={"prompt": "triage@1", "model": "fast", "owner": "support"},
    )
    assert first.status_code == 201, first.text
    second = admin.post(
        f"/api/routes/{route}/promote",
        json={"prompt": "triage@2", "model": "smart", "params": {"max_tokens": 2}, "reason": "v2"},
    )
    assert second.status_code == 201, second.text
    return {"v1": first.json(), "v2": second.json()}


def served_route(gw: Gateway, name: str) -> RouteTarget:
    """The route as the gateway's store holds it (its canary salt included)."""
    store = open_store(gw.database_url)
    try:
        with store.connect() as conn:
            route = load_routes(conn, [name]).entries[name]
    finally:
        store.close()
    assert route is not None
    return route


def sdk(gw: Gateway) -> openai.OpenAI:
    return openai.OpenAI(
        base_url=gw.url + "/v1", api_key=gw.create_key(name="routes"), max_retries=0
    )


def test_a_route_call_applies_the_release_and_logs_what_produced_it(gateway: Gateway) -> None:
    releases = setup_route(gateway)
    client = sdk(gateway)
    reply = client.chat.completions.with_raw_response.create(
        model="route:support-triage",
        messages=[],
        extra_body={"pilothouse": {"variables": {"ticket": "REFUND please"}}},
        extra_headers={"x-request-id": f"route-{gateway.database_url[:6]}"},
    )
    completion = reply.parse()
    # The rendered prompt reached the provider: the scripted REFUND reply, cut by max_tokens=2.
    assert completion.choices[0].message.content.startswith("queue")
    assert (
        completion.choices[0].finish_reason == "length" and completion.usage.completion_tokens <= 2
    )
    assert completion.model == "sim-large"  # the release's model, not the client's
    rows = [r for r in gateway.log_rows() if r["id"] == reply.headers["x-request-id"]]
    deadline = time.monotonic() + 5
    while not rows and time.monotonic() < deadline:
        time.sleep(0.1)
        rows = [r for r in gateway.log_rows() if r["id"] == reply.headers["x-request-id"]]
    (row,) = rows
    assert row["route"] == "support-triage" and row["release_id"] == releases["v2"]["id"]
    assert row["release_arm"] == "active"
    assert (row["prompt_name"], row["prompt_version"]) == ("triage", 2)
    assert row["prompt_hash"] == releases["v2"]["prompt_hash"]
    assert (row["model_alias"], row["provider_model"]) == ("smart", "sim-large")


def test_route_errors_name_what_is_missing(gateway: Gateway) -> None:
    setup_route(gateway)
    client = sdk(gateway)
    with pytest.raises(openai.BadRequestError, match="missing required variables: ticket") as e:
        client.chat.completions.create(model="route:support-triage", messages=[])
    # ... and how to send them, as the client would write it.
    assert '{"pilothouse": {"variables": {"ticket": "..."}}}' in e.value.message
    with pytest.raises(openai.BadRequestError, match="unknown variables: tone"):
        client.chat.completions.create(
            model="route:support-triage",
            messages=[],
            extra_body={"pilothouse": {"variables": {"ticket": "x", "tone": "warm"}}},
        )
    with pytest.raises(openai.NotFoundError, match="route 'nope' does not exist"):
        client.chat.completions.create(
            model="route:nope", messages=[{"role": "user", "content": "x"}]
        )
    # A name the client made up is quoted, not echoed whole (an error is not a mirror).
    for name in ("x" * 20_000, "route:" + "y" * 20_000):
        with pytest.raises(openai.NotFoundError, match="does not exist") as caught:
            client.chat.completions.create(model=name, messages=[{"role": "user", "content": "x"}])
        assert len(caught.value.message) < 600, len(caught.value.message)
    with pytest.raises(openai.NotFoundError, match="'zzz") as caught:
        client.models.retrieve("z" * 5_000)
    assert len(caught.value.message) < 300, len(caught.value.message)
    narrow = openai.OpenAI(
        base_url=gateway.url + "/v1",
        api_key=gateway.create_key(name="n", models=["fast"]),
        max_retries=0,
    )
    with pytest.raises(openai.NotFoundError, match="routes available to this key: \\(none\\)"):
        narrow.chat.completions.create(
            model="route:support-triage",
            messages=[],
            extra_body={"pilothouse": {"variables": {"ticket": "x"}}},
        )


def test_canary_at_10_percent_sends_about_10_percent_of_users_and_keeps_each_on_one_side(
    gateway: Gateway,
) -> None:
    releases = setup_route(gateway, "canary-route")
    canary = gateway.admin.post(
        "/api/routes/canary-route/canary",
        json={"prompt": "triage@1", "model": "fast", "weight": 10},
    ).json()["canary"]
    key = gateway.create_key(name="canary-test")
    body = {
        "model": "route:canary-route",
        "messages": [],
        "pilothouse": {"variables": {"ticket": "hi"}},
    }
    with httpx.Client(base_url=gateway.url, headers={"Authorization": f"Bearer {key}"}) as http:

        def side(user: str) -> str:
            response = http.post("/v1/chat/completions", json={**body, "user": user})
            assert response.status_code == 200
            return "canary" if response.json()["model"] == "sim-small" else "active"

        sides = {f"user-{i}": side(f"user-{i}") for i in range(1000)}
        # Each user is served the side the route's bucketing gives them (its share of
        # users is checked over 100 000 ids in tests/control/test_canary_slices.py); the
        # share here is only a sanity bound, 5 sigma wide for a fresh random salt.
        route = served_route(gateway, "canary-route")
        assert {u for u, s in sides.items() if s == "canary"} == {
            u for u in sides if route.choose(u) == "canary"
        }
        share = sum(s == "canary" for s in sides.values()) / len(sides)
        assert 0.05 <= share <= 0.15, share
        for user in list(sides)[:60]:
            assert side(user) == sides[user] == side(user)
        # A session header pins the assignment as well as `user` does.
        session = [
            http.post(
                "/v1/chat/completions", json=body, headers={"x-pilothouse-session": "s-42"}
            ).json()["model"]
            for _ in range(5)
        ]
        assert len(set(session)) == 1
    # A person's key is that person: the users its requests name do not spread it over
    # both sides (it is bucketed as the user it is logged and charged as).
    alice = gateway.create_key(name="alice-canary", user="alice")
    with httpx.Client(base_url=gateway.url, headers={"Authorization": f"Bearer {alice}"}) as http:
        alice_sides = {
            http.post("/v1/chat/completions", json={**body, "user": f"user-{i}"}).json()["model"]
            for i in range(60)
        }
    assert len(alice_sides) == 1, alice_sides
    assert canary["id"] != releases["v2"]["id"]


def test_retired_models_are_refused_naming_the_successor(gateway: Gateway) -> None:
    client = sdk(gateway)
    with pytest.raises(openai.APIStatusError) as caught:
        client.chat.completions.create(model="legacy", messages=[{"role": "user", "content": "hi"}])
    assert caught.value.status_code == 410
    assert "'legacy' (sim-legacy) is retired; use its successor 'fast'" in caught.value.message
    refused = gateway.admin.post(
        "/api/routes/old-route/promote", json={"prompt": "triage@1", "model": "legacy"}
    )
    assert refused.status_code == 400 and "successor 'fast'" in refused.json()["error"]["message"]
    setup_route(gateway)
    gateway.admin.post(
        "/api/routes/aging/promote", json={"prompt": "triage@1", "model": "retiring"}
    )
    doctor = gateway.admin.get("/api/doctor").json()["warnings"]
    assert {(w["route"], w["problem"]) for w in doctor} >= {("aging", "retiring")}
    assert not any(
        w["route"] == "aging"
        for w in gateway.admin.get("/api/doctor?within_days=7").json()["warnings"]
    )
    catalog = {m["alias"]: m for m in gateway.admin.get("/api/models").json()["data"]}
    assert (
        catalog["legacy"]["lifecycle"] == "retired" and catalog["retiring"]["successor"] == "fast"
    )


@pytest.mark.parametrize("shared", ["sqlite", "postgresql+redis"])
def test_rollback_issued_to_one_instance_is_obeyed_by_both_within_a_second(
    simulator: Simulator, tmp_path: Path, shared: str, request: pytest.FixtureRequest
) -> None:
    env: dict[str, str] = {}
    if shared == "sqlite":
        database_url = f"sqlite:///{tmp_path / 'shared.db'}"
    else:
        database_url = request.getfixturevalue("postgres_url")
        env["PILOTHOUSE_REDIS_URL"] = request.getfixturevalue("redis_url")
    first = start_gateway(gateway_config(simulator), database_url, tmp_path / "a", env)
    second = start_gateway(gateway_config(simulator), database_url, tmp_path / "b", env)
    try:
        releases = setup_route(first)
        key = first.create_key(name="rollback")
        body = {
            "model": "route:support-triage",
            "messages": [],
            "pilothouse": {"variables": {"ticket": "x"}},
        }

        def model_on(gw: Gateway, timeout: float = 10.0) -> str:
            try:
                response = httpx.post(
                    gw.url + "/v1/chat/completions",
                    json=body,
                    timeout=timeout,
                    headers={"Authorization": f"Bearer {key}"},
                )
            except httpx.TimeoutException:
                return "slow-first-token"  # only the slow release takes this long to answer
            return (
                str(response.json()["model"])
                if response.status_code == 200
                else f"HTTP {response.status_code}"
            )

        # v3: a release whose first token takes 1.5 s, so a request can be in flight.
        v3 = first.admin.post(
            "/api/routes/support-triage/promote",
            json={"prompt": "triage@2", "model": "slow-first-token"},
        ).json()
        deadline = time.monotonic() + 5
        while model_on(second) != "slow-first-token" and time.monotonic() < deadline:
            time.sleep(0.05)
        assert model_on(first) == "slow-first-token"

        in_flight: dict[str, str] = {}
        started = threading.Event()

        def stream_in_flight() -> None:
            with httpx.stream(
                "POST",
                first.url + "/v1/chat/completions",
                json={**body, "stream": True},
                timeout=20,
                headers={
                    "Authorization": f"Bearer {key}",
                    "x-request-id": f"in-flight-{shared[:6]}",
                },
            ) as r:
                started.set()  # headers are sent once the upstream stream is open
                in_flight["text"] = "".join(r.iter_text())

        thread = threading.Thread(target=stream_in_flight)
        thread.start()
        # The stream is waiting for its first token on v3.
        assert started.wait(10), "the in-flight stream never reached the upstream"

        response = second.admin.post("/api/routes/support-triage/rollback", json={"reason": "slow"})
        rolled_at = time.monotonic()
        assert response.status_code == 200 and response.json()["id"] == releases["v2"]["id"]
        for gw in (second, first):
            while model_on(gw, timeout=0.3) != "sim-large":
                assert time.monotonic() - rolled_at < 1.0, (
                    f"{gw.url} still serves the rolled-back release"
                )
                time.sleep(0.01)
        elapsed = time.monotonic() - rolled_at
        thread.join(timeout=20)
        assert in_flight["text"].rstrip().endswith("data: [DONE]")
        rows = [
            r
            for r in first.log_rows(expected=None)
            if r["client_request_id"] == f"in-flight-{shared[:6]}"
        ]
        deadline = time.monotonic() + 5
        while not rows and time.monotonic() < deadline:
            time.sleep(0.1)
            rows = [
                r for r in first.log_rows() if r["client_request_id"] == f"in-flight-{shared[:6]}"
            ]
        assert rows[0]["release_id"] == v3["id"], (
            "an in-flight request finishes on the release it started with"
        )
        print(f"rollback obeyed by both instances in {elapsed * 1000:.0f} ms ({shared})")
    finally:
        first.stop()
        second.stop()
