"""The SDK against real registry processes: memory, push, poll, outages, disk, fallback.

Outages are real: the registry process is killed and restarted on the same port and
database, or a fault proxy in front of it cuts the stream, answers 500 or hangs up.
"""

from __future__ import annotations

import json
import logging
import multiprocessing
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sdk_harness import FaultProxy, Registry, wait_for

from pilothouse import Client, Prompt, PromptUnavailable
from pilothouse.registry.templates import RenderError

MakeClient = Callable[..., Client]
ANSWER_VARS = {"ticket": {"required": True}}


def failing_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if "is failing" in r.getMessage()]


def revalidated_on_connect(client: Client) -> bool:
    """The stream is connected and the revalidation it triggers has answered (304). Until
    then that GET may still go out, and install a later change instead of the push or poll.
    Each poll (the backstop, before the stream connects) also revalidates one entry."""
    return client.stream_connected and client.stats["not_modified"] > client.stats["polls"]


def test_sdk_import_is_light() -> None:
    code = (
        "import sys\n"
        "from pilothouse import AsyncClient, Client, Prompt, PromptUnavailable\n"
        "heavy = {'sqlalchemy', 'starlette', 'pydantic', 'uvicorn', 'alembic', 'yaml', 'redis'}\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & heavy))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
    with pytest.raises(ImportError):
        exec("from pilothouse import NoSuchThing")


def test_served_from_memory_and_still_served_when_the_registry_dies(
    own_registry: Registry, make_client: MakeClient, name: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="pilothouse.sdk")
    reg = own_registry
    reg.chat(name, "Answer: {{ticket}}", labels=("production",), variables=ANSWER_VARS)
    client = make_client(reg.url, reg.key, poll_interval_seconds=0.2)

    first = client.get_prompt(name)
    assert (first.source, first.version, first.label) == ("server", 1, "production")
    second = client.get_prompt(name)
    assert second.source == "memory"
    assert client.get_prompt(name) is second
    assert client.get_prompt(name, label="production") is second
    assert second.render(ticket="refund") == [{"role": "user", "content": "Answer: refund"}]
    wait_for(lambda: client.stream_connected, what="the event stream")

    reg.stop(signal.SIGKILL)
    wait_for(lambda: client.stats["refresh_errors"] >= 3, what="failed polls")
    served = [client.get_prompt(name) for _ in range(1000)]
    assert all(p is second for p in served)
    assert client.stats["fetches"] == 1
    assert client.stats["stale_serves"] >= 1000
    assert not client.healthy
    assert len(failing_warnings(caplog)) == 1, "one warning per outage, not one per poll"


def test_cache_hits_make_no_request(
    registry: Registry, proxy: FaultProxy, make_client: MakeClient, name: str
) -> None:
    """Once loaded, a prompt is served from memory: the call path never touches the network.
    (How fast that is, is measured in bench/prompt_sdk.py.)"""
    registry.chat(name, "{{ticket}}", labels=("production",), variables=ANSWER_VARS)
    client = make_client(proxy.url, registry.key, poll_interval_seconds=60)
    loaded = client.get_prompt(name)
    wait_for(lambda: client.stream_connected, what="the event stream")
    time.sleep(0.2)  # the revalidation that follows a new stream connection
    seen = len(proxy.requests)
    served = [client.get_prompt(name) for _ in range(20_000)]
    assert all(prompt is served[0] for prompt in served) and served[0].version == loaded.version
    assert len(proxy.requests) == seen, proxy.requests[seen:]
    assert client.stats["fetches"] == 1


def test_a_client_made_before_fork_keeps_receiving_pushes_in_the_child(
    registry: Registry, make_client: MakeClient, name: str
) -> None:
    """gunicorn --preload and multiprocessing fork after the client is made: the child gets
    fresh connections and its own background thread, and keeps the cache it inherited."""
    v1 = registry.chat(name, "one", labels=("production",))
    v2 = registry.chat(name, "two")
    client = make_client(registry.url, registry.key, poll_interval_seconds=60)
    assert client.get_prompt(name).version == v1
    wait_for(lambda: client.stream_connected, what="the parent's event stream")

    context = multiprocessing.get_context("fork")
    child_ready, label_moved = context.Event(), context.Event()
    results: Any = context.Queue()

    def child() -> None:
        try:
            inherited = client.get_prompt(name)
            wait_for(lambda: client.stream_connected, what="the child's event stream")
            child_ready.set()
            label_moved.wait(10)
            wait_for(lambda: client.get_prompt(name).version == v2, timeout=5, what="the move")
            results.put(("ok", inherited.version, client.get_prompt(name).version))
        except BaseException as exc:  # reported to the parent, which fails the test
            results.put(("error", repr(exc), None))

    process = context.Process(target=child)
    process.start()
    try:
        assert child_ready.wait(10), f"the child never connected: {results.get(timeout=1)}"
        registry.move(name, "production", v2)
        label_moved.set()
        assert results.get(timeout=15) == ("ok", v1, v2)
    finally:
        label_moved.set()
        process.join(10)
    assert process.exitcode == 0
    wait_for(lambda: client.get_prompt(name).version == v2, what="the parent's copy")


def test_label_move_is_pushed_within_a_second(
    registry: Registry, make_client: MakeClient, name: str
) -> None:
    v1 = registry.chat(name, "one {{x}}", labels=("production",), variables={"x": {"default": "a"}})
    v2 = registry.chat(name, "two {{x}}", variables={"x": {"default": "a"}})
    changes: list[tuple[Any, ...]] = []
    client = make_client(
        registry.url, registry.key, on_change=lambda *change: changes.append(change)
    )
    assert client.get_prompt(name).version == v1
    wait_for(lambda: revalidated_on_connect(client), what="the event stream")

    registry.move(name, "production", v2)
    start = time.monotonic()
    wait_for(lambda: client.get_prompt(name).version == v2, timeout=5, what="the move")
    took = time.monotonic() - start
    assert took < 1.0, f"label move seen after {took:.3f} s"
    prompt = client.get_prompt(name)
    assert prompt.source == "memory"
    assert prompt.render() == [{"role": "user", "content": "two a"}]
    wait_for(lambda: changes, what="on_change")  # called right after the swap
    assert changes == [(name, "production", v1, v2)]
    assert client.stats["events"] >= 1
    assert client.stats["polls"] == 0, "the push did it, not the poll"
    # The event carried the prompt: installed without a request, as a fetch would have.
    # A fetch that got an answer other than 304 is one that another event asked for: the
    # stream may replay v2's creation (it starts where the instance's feed is, which can
    # lag the write), and its revalidation, sent with v1's ETag, can reach the server after
    # the move. The move's own event never fetches.
    stats = dict(client.stats)
    assert stats["event_installs"] == 1, json.dumps(stats)
    assert stats["refreshes"] - stats["not_modified"] <= stats["events"] - 1, json.dumps(stats)
    served = registry.admin.get(f"/api/prompts/{name}", params={"label": "production"}).json()
    assert (prompt.version, prompt.hash) == (served["version"], served["hash"])


def test_poll_is_the_backstop_while_the_stream_is_unavailable(
    registry: Registry, proxy: FaultProxy, make_client: MakeClient, name: str
) -> None:
    v1 = registry.chat(name, "one", labels=("production",))
    v2 = registry.chat(name, "two")
    proxy.set_mode("no_stream")
    client = make_client(proxy.url, registry.key, poll_interval_seconds=0.3)
    assert client.get_prompt(name).version == v1
    wait_for(lambda: client.stats["stream_errors"] >= 1, what="a refused stream")

    registry.move(name, "production", v2)
    start = time.monotonic()
    wait_for(lambda: client.get_prompt(name).version == v2, timeout=5, what="the poll")
    assert time.monotonic() - start < 0.3 + 1.0
    assert client.stats["polls"] >= 1
    assert client.stats["events"] == 0
    assert not client.stream_connected
    assert client.healthy, "the registry answers; only the stream is down"


def test_reconnect_resumes_with_last_event_id(
    registry: Registry, proxy: FaultProxy, make_client: MakeClient, name: str
) -> None:
    """A change made while the client is cut off arrives by replay, not by poll."""
    v1 = registry.chat(name, "one", labels=("production",))
    v2, v3 = registry.chat(name, "two"), registry.chat(name, "three")
    client = make_client(proxy.url, registry.key, poll_interval_seconds=60)
    assert client.get_prompt(name).version == v1
    wait_for(lambda: client.stream_connected, what="the event stream")
    registry.move(name, "production", v2)
    wait_for(lambda: client.get_prompt(name).version == v2, what="the first move")
    wait_for(lambda: client.last_event_id is not None, what="the event id")
    seen_id = client.last_event_id

    proxy.set_mode("down")
    wait_for(lambda: not client.stream_connected, what="the stream to drop")
    registry.move(name, "production", v3)  # while the client cannot hear it
    time.sleep(0.3)
    assert client.get_prompt(name).version == v2
    polls = client.stats["polls"]

    proxy.set_mode("pass")
    wait_for(lambda: client.get_prompt(name).version == v3, timeout=10, what="the replay")
    assert client.stats["polls"] == polls, "caught up by the stream, not by a poll"
    resumed = [
        r for r in proxy.requests if r.path.startswith("/api/prompts/stream") and r.mode == "pass"
    ]
    assert resumed[0].last_event_id is None
    assert resumed[-1].last_event_id == seen_id


def test_registry_restart_on_same_port_and_database(
    own_registry: Registry, make_client: MakeClient, name: str
) -> None:
    reg = own_registry
    v1 = reg.chat(name, "one", labels=("production",))
    v2, v3 = reg.chat(name, "two"), reg.chat(name, "three")
    client = make_client(reg.url, reg.key, poll_interval_seconds=60)
    assert client.get_prompt(name).version == v1
    wait_for(lambda: client.stream_connected, what="the event stream")
    reg.move(name, "production", v2)
    wait_for(lambda: client.get_prompt(name).version == v2, what="the first move")

    reg.stop(signal.SIGKILL)
    wait_for(lambda: not client.stream_connected, what="the stream to drop")
    reg.start()
    reg.move(name, "production", v3)
    wait_for(lambda: client.get_prompt(name).version == v3, timeout=15, what="the catch-up")
    assert client.stats["stream_connects"] >= 2
    assert client.healthy


def test_server_errors_keep_the_last_good_copy(
    registry: Registry,
    proxy: FaultProxy,
    make_client: MakeClient,
    name: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="pilothouse.sdk")
    v1 = registry.chat(name, "one", labels=("production",))
    v2 = registry.chat(name, "two")
    client = make_client(proxy.url, registry.key, poll_interval_seconds=0.2)
    good = client.get_prompt(name)
    wait_for(lambda: revalidated_on_connect(client), what="the event stream")

    proxy.set_mode("error")  # every request now gets a 500
    registry.move(name, "production", v2)
    wait_for(lambda: client.stats["refresh_errors"] >= 3, what="failed polls")
    served = client.get_prompt(name)
    assert (served.version, served.hash) == (v1, good.hash)
    assert client.stats["stale_serves"] >= 1
    assert not client.healthy
    assert len(failing_warnings(caplog)) == 1
    assert "HTTP 500" in failing_warnings(caplog)[0]

    proxy.set_mode("pass")
    wait_for(lambda: client.get_prompt(name).version == v2, timeout=10, what="recovery")
    assert client.healthy
    stale = client.stats["stale_serves"]
    client.get_prompt(name)
    assert client.stats["stale_serves"] == stale
    assert any("answering again" in r.getMessage() for r in caplog.records)


def test_cold_start_disk_then_fallback_then_strict(
    own_registry: Registry, make_client: MakeClient, name: str, cache_dir: Path
) -> None:
    reg = own_registry
    reg.chat(name, "Hello {{who}}", labels=("production",), variables={"who": {}})
    with Client(reg.url, reg.key, cache_dir=cache_dir) as warm:
        warm.get_prompt(name)
        warm.get_prompt(name, version=1)
    files = sorted(p.name for p in cache_dir.rglob("*") if p.is_file())
    assert files == [f"{name}@l-production.json", f"{name}@v1.json"], "no temp files left"
    saved = json.loads(next(cache_dir.rglob("*@l-production.json")).read_text())
    assert saved["payload"]["name"] == name and saved["etag"]

    reg.stop(signal.SIGKILL)
    cold = make_client(reg.url, reg.key, poll_interval_seconds=0.2)
    start = time.monotonic()
    prompt = cold.get_prompt(name)
    assert time.monotonic() - start < 1.0
    assert (prompt.source, prompt.version) == ("disk", 1)
    assert prompt.render(who="Ann") == [{"role": "user", "content": "Hello Ann"}]
    assert cold.get_prompt(name, version=1).source == "disk"
    assert cold.stats["disk_serves"] == 2

    fallback = cold.get_prompt(f"{name}-new", fallback="Hi {{who}}")
    assert (fallback.source, fallback.version) == ("fallback", 0)
    # values the fallback does not use are ignored: the same call renders either
    assert fallback.render(who="Bo", tone="kind") == [{"role": "user", "content": "Hi Bo"}]
    listed = cold.get_prompt(
        f"{name}-list",
        fallback=[{"role": "system", "content": "S"}, {"role": "user", "content": "Q"}],
    )
    assert [m["role"] for m in listed.render()] == ["system", "user"]

    with pytest.raises(PromptUnavailable) as unavailable:
        cold.get_prompt(f"{name}-none")
    message = str(unavailable.value)
    for part in (f"{name}-none", "label production", "ConnectError", "no copy", "none given"):
        assert part in message

    strict = make_client(reg.url, reg.key, strict=True)
    with pytest.raises(PromptUnavailable, match="refused"):
        strict.get_prompt(f"{name}-strict", fallback="x")
    assert strict.get_prompt(name).source == "disk", "strict still serves the disk copy"

    # The registry is back: the disk copy is confirmed, and the fallback replaced once the
    # prompt exists.
    reg.start()
    wait_for(lambda: cold.get_prompt(name).source == "memory", timeout=15, what="revalidation")
    reg.chat(
        f"{name}-new", "Registry says hi {{who}}", labels=("production",), variables={"who": {}}
    )
    wait_for(lambda: cold.get_prompt(f"{name}-new").source == "memory", what="the new prompt")
    assert cold.get_prompt(f"{name}-new").render(who="Cy")[0]["content"] == "Registry says hi Cy"


def test_black_holed_registry_costs_one_timeout_not_one_per_prompt(
    registry: Registry, proxy: FaultProxy, make_client: MakeClient, name: str
) -> None:
    registry.chat(name, "from the registry", labels=("production",))
    proxy.set_mode("hang")
    client = make_client(proxy.url, registry.key, timeout_seconds=0.5, poll_interval_seconds=0.3)
    start = time.monotonic()
    first = client.get_prompt(name, fallback="fallback a")
    assert 0.4 < time.monotonic() - start < 2, "one timeout"
    assert first.source == "fallback"
    start = time.monotonic()
    assert client.get_prompt(f"{name}-b", fallback="fallback b").source == "fallback"
    with pytest.raises(PromptUnavailable, match="skipped, it failed"):
        client.get_prompt(f"{name}-c")
    assert time.monotonic() - start < 0.45, "no new timeout right after one"

    proxy.set_mode("pass")  # the poll thread, not held up by the hung stream, recovers it
    wait_for(lambda: client.get_prompt(name).source == "memory", what="the real prompt")
    assert client.get_prompt(name).render() == [{"role": "user", "content": "from the registry"}]
    assert client.get_prompt(f"{name}-b").source == "fallback", "still not in the registry"


def test_pinned_version_never_moves(
    registry: Registry, proxy: FaultProxy, make_client: MakeClient, name: str
) -> None:
    registry.chat(name, "one", labels=("production",))
    v2 = registry.chat(name, "two")
    client = make_client(proxy.url, registry.key, poll_interval_seconds=0.2)
    pinned = client.get_prompt(name, version=1)
    labelled = client.get_prompt(name)
    wait_for(lambda: client.stream_connected, what="the event stream")

    registry.move(name, "production", v2)
    registry.chat(name, "three")
    wait_for(lambda: client.get_prompt(name).version == v2, what="the label")
    wait_for(lambda: client.stats["events"] >= 2, what="the move and the new version")
    proxy.set_mode("no_stream")  # and several polls on top
    wait_for(lambda: client.stats["polls"] >= 2, what="polls")

    again = client.get_prompt(name, version=1)
    assert again.version == 1 and again.label is None
    assert again.render() == [{"role": "user", "content": "one"}]
    assert labelled.version == 1, "a served object never changes; a new one replaces it"
    assert pinned.source == "server" and again.source == "memory"
    fetches = [r for r in proxy.requests if r.path.startswith(f"/api/prompts/{name}?version=")]
    assert len(fetches) == 1, "a version is fetched once and never refreshed"


def test_deleted_label_is_reported_and_last_copy_kept(
    registry: Registry, make_client: MakeClient, name: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="pilothouse.sdk")
    registry.chat(name, "one", labels=("production", "staging"))
    v2 = registry.chat(name, "two")
    client = make_client(registry.url, registry.key)
    staging = client.get_prompt(name, label="staging")
    wait_for(lambda: client.stream_connected, what="the event stream")

    registry.delete_label(name, "staging")
    wait_for(lambda: (name, "staging") in client.missing_labels, what="the deleted label")
    assert client.get_prompt(name, label="staging").version == staging.version == 1
    assert client.stats["labels_missing"] == 1
    assert client.missing_labels == {(name, "staging")}
    assert any("staging" in r.getMessage() for r in caplog.records)
    assert client.healthy, "a missing label is not an outage"

    registry.move(name, "staging", v2)
    wait_for(lambda: client.get_prompt(name, label="staging").version == v2, what="the new label")
    assert client.missing_labels == set()


def test_fragment_label_move_refreshes_the_including_prompt(
    registry: Registry, make_client: MakeClient, name: str
) -> None:
    tone = f"{name}-tone"
    registry.fragment(tone, "Be kind.", labels=("production",))
    registry.chat(
        name, f"{{{{> {tone}}}}} Q: {{{{q}}}}", labels=("production",), variables={"q": {}}
    )
    changes: list[tuple[Any, ...]] = []
    client = make_client(registry.url, registry.key, on_change=lambda *c: changes.append(c))
    prompt = client.get_prompt(name)
    assert prompt.render(q="x") == [{"role": "user", "content": "Be kind. Q: x"}]
    assert prompt.fragments_used == {f"{tone}@production": 1}
    wait_for(lambda: client.stream_connected, what="the event stream")

    f2 = registry.fragment(tone, "Be brief.")
    registry.move(tone, "production", f2)  # the write that is pushed
    start = time.monotonic()
    wait_for(
        lambda: client.get_prompt(name).fragments[f"{tone}@production"].version == f2,
        timeout=5,
        what="the fragment move",
    )
    assert time.monotonic() - start < 1.0
    wait_for(lambda: changes, what="on_change")
    refreshed = client.get_prompt(name)
    assert refreshed.version == 1, "the prompt itself did not move"
    info = refreshed.render_with_info(q="x")
    assert info.messages == [{"role": "user", "content": "Be brief. Q: x"}]
    assert info.fragments == {f"{tone}@production": f2}
    assert changes == [(name, "production", 1, 1)]


def test_render_errors_name_the_variables(
    registry: Registry, make_client: MakeClient, name: str
) -> None:
    registry.chat(
        name,
        "{{greeting}}, {{who}}! {{mood}}",
        labels=("production",),
        variables={"greeting": {"default": "Hello"}, "who": {}, "mood": {"required": True}},
    )
    prompt = make_client(registry.url, registry.key).get_prompt(name)
    with pytest.raises(RenderError) as error:
        prompt.render(colour="red")
    assert error.value.missing == ["mood", "who"]
    assert error.value.unknown == ["colour"]
    assert "mood" in str(error.value) and "colour" in str(error.value)
    assert prompt.render(who="Ann", mood=":)") == [{"role": "user", "content": "Hello, Ann! :)"}]


def test_concurrent_first_calls_fetch_once(
    registry: Registry, make_client: MakeClient, name: str
) -> None:
    registry.chat(name, "one", labels=("production",))
    client = make_client(registry.url, registry.key)
    barrier = threading.Barrier(16)
    results: list[Prompt] = []

    def call() -> None:
        barrier.wait()
        results.append(client.get_prompt(name))

    threads = [threading.Thread(target=call) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 16 and {p.version for p in results} == {1}
    assert client.stats["fetches"] == 1


def test_wrong_key_and_bad_arguments(
    registry: Registry, make_client: MakeClient, name: str
) -> None:
    registry.chat(name, "one", labels=("production",))
    client = make_client(registry.url, "ph-not-a-key")
    with pytest.raises(PromptUnavailable, match="authentication"):
        client.get_prompt(name)
    assert client.get_prompt(name, fallback="fb").source == "fallback"
    with pytest.raises(ValueError, match="label or version"):
        client.get_prompt(name, label="production", version=1)
