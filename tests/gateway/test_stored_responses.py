"""Stored responses (`store`, `previous_response_id`, GET and DELETE /v1/responses/{id})
driven by the official `openai` SDK, in-process with every provider answered by the
simulator's own app, on SQLite and PostgreSQL: an OpenAI-type alias (`fast`), an
Anthropic-type alias (`claude`) and a route (`route:helper`, on `fast`)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import openai
import pytest
import sqlalchemy as sa

from inprocess import CONFIG, InProcess
from pilothouse.clock import ManualClock
from pilothouse.store import open_store
from pilothouse.store import stored_responses as rows
from tcp_proxy import TcpProxy

pytestmark = pytest.mark.anyio

TARGETS = ["fast", "claude", "route:helper"]
DAY_SECONDS = 86400.0


@asynccontextmanager
async def serving(
    tmp_path: Path, database_url: str, config: str = CONFIG, clock: ManualClock | None = None
) -> AsyncIterator[InProcess]:
    """The server on the in-process simulator, with route `helper` on `fast`."""
    async with InProcess.start(
        tmp_path, config, simulated=True, database_url=database_url, clock=clock
    ) as gw:
        pushed = await gw.client.post(
            "/api/prompts/helper/versions",
            json={"messages": [{"role": "system", "content": "Answer briefly."}]},
            headers=gw.admin,
        )
        assert pushed.status_code == 201, pushed.text
        promoted = await gw.client.post(
            "/api/routes/helper/promote",
            json={"prompt": "helper@1", "model": "fast"},
            headers=gw.admin,
        )
        assert promoted.status_code == 201, promoted.text
        yield gw


_OPEN: list[openai.AsyncOpenAI] = []


@pytest.fixture(autouse=True)
async def _close_sdks() -> AsyncIterator[None]:
    yield
    while _OPEN:
        await _OPEN.pop().close()


def sdk_for(gw: InProcess, key: str | None = None) -> openai.AsyncOpenAI:
    http = httpx.AsyncClient(transport=gw.client._transport, base_url="http://gw")
    sdk = openai.AsyncOpenAI(
        base_url="http://gw/v1", api_key=key or gw.key, http_client=http, max_retries=0
    )
    _OPEN.append(sdk)
    return sdk


async def storing_key(gw: InProcess, name: str = "chat-app") -> str:
    """A key with the `responses:store` scope."""
    made = await gw.client.post(
        "/api/keys", json={"name": name, "scopes": ["responses:store"]}, headers=gw.admin
    )
    assert made.status_code == 201, made.text
    return str(made.json()["secret"])


def upstream_text(gw: InProcess, target: str) -> str:
    """Everything the provider behind `target` was sent in its last request."""
    provider = "claude-api" if target == "claude" else "sim"
    return json.dumps(gw.transports[provider].requests[-1][1])


@pytest.mark.parametrize("target", TARGETS)
async def test_previous_response_id_carries_the_conversation(
    tmp_path: Path, database_url: str, target: str
) -> None:
    async with serving(tmp_path, database_url) as gw:
        sdk = sdk_for(gw, await storing_key(gw))
        first = await sdk.responses.create(
            model=target, instructions="Be brief.", input="My name is Ada Lovelace."
        )
        assert first.store is True and first.output_text
        second = await sdk.responses.create(
            model=target, input="What is my name?", previous_response_id=first.id
        )
        assert second.previous_response_id == first.id and second.store is True
        sent = upstream_text(gw, target)
        # The provider saw the earlier turn (question and answer) before the new question,
        # but not the earlier instructions (as OpenAI: they are not carried over).
        assert "My name is Ada Lovelace." in sent and first.output_text[:40] in sent
        assert sent.index("Ada Lovelace") < sent.index("What is my name?")
        assert "Be brief." not in sent
        assert second.usage is not None and first.usage is not None
        assert second.usage.input_tokens > first.usage.input_tokens

        # Streamed, on top of the second: stored before its closing event reached us.
        async with sdk.responses.stream(
            model=target, input="And my birth year?", previous_response_id=second.id
        ) as stream:
            async for _ in stream:
                pass
            third = await stream.get_final_response()
        assert third.store is True and third.output_text
        sent = upstream_text(gw, target)
        assert "Ada Lovelace" in sent and "What is my name?" in sent
        kept = await sdk.responses.retrieve(third.id)
        assert kept.output_text == third.output_text and kept.previous_response_id == second.id


@pytest.mark.parametrize("target", ["fast", "claude"])
async def test_a_tool_s_output_continues_the_stored_response_that_called_it(
    tmp_path: Path, database_url: str, target: str
) -> None:
    """The agent loop as the SDK runs it: the call's output alone, with the id of the
    response that made the call. An output naming another call is refused where the
    client sent it (`input[0]`), before any upstream call."""
    tools: Any = [
        {
            "type": "function",
            "name": "get_weather",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
        }
    ]
    async with serving(tmp_path, database_url) as gw:
        sdk = sdk_for(gw, await storing_key(gw))
        first = await sdk.responses.create(
            model=target, input="Weather in Lisbon?", tools=tools, tool_choice="required"
        )
        [call] = [item for item in first.output if item.type == "function_call"]
        output: Any = {"type": "function_call_output", "call_id": call.call_id, "output": "21 C"}
        answer = await sdk.responses.create(
            model=target, tools=tools, input=[output], previous_response_id=first.id
        )
        assert answer.output_text and "21 C" in upstream_text(gw, target)
        calls = len(gw.transports["claude-api" if target == "claude" else "sim"].requests)
        stray: Any = {**output, "call_id": "call_elsewhere"}
        with pytest.raises(openai.BadRequestError) as refused:
            await sdk.responses.create(
                model=target, tools=tools, input=[stray], previous_response_id=first.id
            )
        assert refused.value.param == "input[0].call_id"
        assert "'call_elsewhere' answers no function_call" in refused.value.message
        assert len(gw.transports["claude-api" if target == "claude" else "sim"].requests) == calls


async def test_get_delete_and_input_items_of_a_stored_response(
    tmp_path: Path, database_url: str
) -> None:
    async with serving(tmp_path, database_url) as gw:
        sdk = sdk_for(gw, await storing_key(gw))
        first = await sdk.responses.create(model="fast", input="Remember the number 42.")
        second = await sdk.responses.create(
            model="fast", input="Which number?", previous_response_id=first.id
        )
        kept = await sdk.responses.retrieve(second.id)
        assert (kept.id, kept.output_text, kept.model) == (second.id, second.output_text, "fast")
        items = await sdk.responses.input_items.list(second.id, order="asc")
        texts = [json.dumps(item.model_dump()) for item in items.data]
        assert len(texts) == 3  # the first question, its answer, the second question
        assert "Remember the number 42." in texts[0] and "Which number?" in texts[2]
        assert first.output_text[:30] in texts[1]

        await sdk.responses.delete(first.id)
        with pytest.raises(openai.NotFoundError) as caught:
            await sdk.responses.retrieve(first.id)
        assert first.id in caught.value.message
        with pytest.raises(openai.NotFoundError):
            await sdk.responses.delete(first.id)
        with pytest.raises(openai.BadRequestError) as refused:
            await sdk.responses.create(model="fast", input="Hi", previous_response_id=first.id)
        assert refused.value.code == "previous_response_not_found"
        assert first.id in refused.value.message
        assert (await sdk.responses.retrieve(second.id)).id == second.id  # not touched

        rows = await gw.rows(10)
        endpoints = sorted(r["endpoint"] for r in rows)
        assert endpoints.count("responses.get") == 4 and endpoints.count("responses.delete") == 2


async def test_another_keys_response_is_not_found_as_if_it_did_not_exist(
    tmp_path: Path, database_url: str
) -> None:
    async with serving(tmp_path, database_url) as gw:
        owner = sdk_for(gw, await storing_key(gw, "owner"))
        other = sdk_for(gw, await storing_key(gw, "other"))
        mine = await owner.responses.create(model="fast", input="A secret: swordfish.")
        upstream_calls = len(gw.transports["sim"].requests)
        unknown = "resp_" + "0" * 32

        def shown(error: openai.APIStatusError, response_id: str) -> str:
            return error.message.replace(response_id, "ID")

        with pytest.raises(openai.NotFoundError) as foreign:
            await other.responses.retrieve(mine.id)
        with pytest.raises(openai.NotFoundError) as missing:
            await other.responses.retrieve(unknown)
        assert shown(foreign.value, mine.id) == shown(missing.value, unknown)  # no oracle
        with pytest.raises(openai.NotFoundError):
            await other.responses.delete(mine.id)
        with pytest.raises(openai.BadRequestError) as chained:
            await other.responses.create(model="fast", input="?", previous_response_id=mine.id)
        assert chained.value.code == "previous_response_not_found"
        reference = {"type": "item_reference", "id": mine.output[0].id}
        with pytest.raises(openai.BadRequestError) as referenced:
            await other.responses.create(model="fast", input=[reference])  # type: ignore[list-item]
        assert referenced.value.code == "item_not_found"
        assert len(gw.transports["sim"].requests) == upstream_calls  # refused before any
        assert (await owner.responses.retrieve(mine.id)).output_text == mine.output_text


async def test_stored_responses_expire_after_the_retention_period(
    tmp_path: Path, database_url: str
) -> None:
    clock = ManualClock(datetime(2030, 1, 1, tzinfo=UTC).timestamp())
    config = CONFIG + "responses: {retention_days: 1}\n"
    async with serving(tmp_path, database_url, config, clock) as gw:
        sdk = sdk_for(gw, await storing_key(gw))
        old = await sdk.responses.create(model="fast", input="Hello")
        clock.advance(DAY_SECONDS - 60)
        recent = await sdk.responses.create(model="fast", input="Hello again")
        assert (await sdk.responses.retrieve(old.id)).id == old.id  # a minute left
        clock.advance(120)
        with pytest.raises(openai.NotFoundError):  # past retention: gone before any prune
            await sdk.responses.retrieve(old.id)
        with pytest.raises(openai.BadRequestError) as expired:
            await sdk.responses.create(model="fast", input="Hi", previous_response_id=old.id)
        assert expired.value.code == "previous_response_not_found"
        assert gw.server.monitor is not None
        pruned = gw.server.monitor.prune(datetime.fromtimestamp(clock.now(), UTC))
        assert pruned["stored_responses"] == 1  # the old one deleted, the recent one kept
        assert (await sdk.responses.retrieve(recent.id)).id == recent.id


async def test_storing_is_off_unless_the_key_or_the_route_turns_it_on(
    tmp_path: Path, database_url: str
) -> None:
    async with serving(tmp_path, database_url) as gw:
        sdk = sdk_for(gw)  # a key without the responses:store scope
        plain = await sdk.responses.create(model="fast", input="Hi")
        asked = await sdk.responses.create(model="fast", input="Hi", store=True)
        assert plain.store is False and asked.store is False  # served, saying nothing was kept
        with pytest.raises(openai.NotFoundError):
            await sdk.responses.retrieve(asked.id)
        with pytest.raises(openai.BadRequestError) as refused:
            await sdk.responses.create(model="fast", input="Hi", previous_response_id=asked.id)
        assert "responses:store" in refused.value.message
        wrong = await gw.client.post(
            "/v1/responses", json={"model": "fast", "input": "Hi", "store": "yes"}, headers=gw.auth
        )
        assert wrong.status_code == 400 and wrong.json()["error"]["param"] == "store"

        switched = await gw.client.post(
            "/api/routes/helper/settings",
            json={"store_responses": True, "reason": "the chat widget continues conversations"},
            headers=gw.admin,
        )
        assert switched.status_code == 200, switched.text
        shown = await gw.client.get("/api/routes/helper", headers=gw.admin)
        assert shown.json()["store_responses"] is True
        on_route = await sdk.responses.create(model="route:helper", input="My name is Ada.")
        assert on_route.store is True
        follow = await sdk.responses.create(
            model="route:helper", input="My name?", previous_response_id=on_route.id
        )
        assert "My name is Ada." in upstream_text(gw, "route:helper") and follow.store is True
        assert (await sdk.responses.create(model="fast", input="Hi")).store is False
        declined = await sdk.responses.create(model="route:helper", input="Hi", store=False)
        assert declined.store is False
        with pytest.raises(openai.NotFoundError):
            await sdk.responses.retrieve(declined.id)


async def test_item_references_name_stored_items(tmp_path: Path, database_url: str) -> None:
    async with serving(tmp_path, database_url) as gw:
        sdk = sdk_for(gw, await storing_key(gw))
        async with sdk.responses.stream(model="claude", input="Tell me about lighthouses.") as s:
            async for _ in s:
                pass
            first = await s.get_final_response()
        item: Any = {"type": "item_reference", "id": first.output[0].id}
        question: Any = {"role": "user", "content": "Tell me about lighthouses."}
        follow = await sdk.responses.create(
            model="claude", input=[question, item, {"role": "user", "content": "Shorter."}]
        )
        assert follow.output_text
        assert first.output_text[:40] in upstream_text(gw, "claude")
        unknown: Any = {"type": "item_reference", "id": "msg_" + "1" * 36}
        with pytest.raises(openai.BadRequestError) as refused:
            await sdk.responses.create(model="claude", input=[question, unknown])
        assert refused.value.code == "item_not_found" and "input[1]" in refused.value.message


async def test_a_response_the_database_cannot_keep_is_answered_saying_store_false(
    tmp_path: Path,
) -> None:
    async with serving(tmp_path, f"sqlite:///{tmp_path / 'p.db'}") as gw:
        sdk = sdk_for(gw, await storing_key(gw))
        with gw.server.store.begin() as conn:
            conn.execute(sa.text("DROP TABLE stored_responses"))
        answered = await sdk.responses.create(model="fast", input="Hi")
        assert answered.output_text and answered.store is False
        async with sdk.responses.stream(model="fast", input="Hi") as stream:
            async for _ in stream:
                pass
            streamed = await stream.get_final_response()
        assert streamed.output_text and streamed.store is False
        [row, *_] = await gw.rows(2)
        assert row["outcome"] == "ok"


async def test_ids_no_response_could_have_are_not_found_without_a_database_error(
    tmp_path: Path, database_url: str
) -> None:
    """A NUL byte (PostgreSQL refuses it in a text) or any other id not shaped like ours
    is the usual 404 / 400, never a fault of the gateway."""
    async with serving(tmp_path, database_url) as gw:
        sdk = sdk_for(gw, await storing_key(gw))
        kept = await sdk.responses.create(model="fast", input="Hi")
        for odd in ("resp_\x00", kept.id[:-1] + "\x00", kept.id.upper().replace("RESP_", "resp_")):
            with pytest.raises(openai.NotFoundError):
                await sdk.responses.retrieve(odd)
            with pytest.raises(openai.NotFoundError):
                await sdk.responses.delete(odd)
            with pytest.raises(openai.BadRequestError) as refused:
                await sdk.responses.create(model="fast", input="Hi", previous_response_id=odd)
            assert refused.value.code == "previous_response_not_found"
        assert (await sdk.responses.retrieve(kept.id)).id == kept.id


async def test_stored_responses_answer_503_while_the_database_is_away(
    tmp_path: Path, postgres_url: str
) -> None:
    """PostgreSQL cut under a running gateway: reading, deleting and continuing a stored
    response are a 503 to retry (not a 500), and work again once it is back."""
    parts = urlsplit(postgres_url)
    proxy = TcpProxy(parts.hostname or "127.0.0.1", parts.port or 5432)
    proxy.start()
    proxied = postgres_url.replace(f"{parts.hostname}:{parts.port}", f"127.0.0.1:{proxy.port}")
    try:
        async with serving(tmp_path, proxied) as gw:
            sdk = sdk_for(gw, await storing_key(gw))
            kept = await sdk.responses.create(model="fast", input="Hi")
            proxy.cut()
            calls = [
                lambda: sdk.responses.retrieve(kept.id),
                lambda: sdk.responses.delete(kept.id),
                lambda: sdk.responses.input_items.list(kept.id),
                lambda: sdk.responses.create(
                    model="fast", input="Again", previous_response_id=kept.id
                ),
            ]
            for call in calls:
                with pytest.raises(openai.APIStatusError) as away:
                    await call()
                assert away.value.status_code == 503, away.value.message
                assert "database is unavailable" in away.value.message
            proxy.restore()
            assert (await sdk.responses.retrieve(kept.id)).id == kept.id
    finally:
        proxy.cut()


async def test_a_stored_response_is_never_taken_over_by_another_key(database_url: str) -> None:
    """Replacing a response with the same id (a retried attempt) keeps it its key's: a row
    written for another key under that id changes nothing."""
    store = open_store(database_url)
    store.upgrade()
    at = datetime(2026, 1, 1, tzinfo=UTC)
    response_id = "resp_" + "ab" * 16
    base = {"id": response_id, "created_at": at, "input_items": []}
    try:
        with store.write() as conn:
            rows.put(conn, {**base, "key_id": "key_owner", "response": {"text": "first"}})
            rows.put(conn, {**base, "key_id": "key_owner", "response": {"text": "retried"}})
            rows.put(conn, {**base, "key_id": "key_other", "response": {"text": "taken"}})
        with store.connect() as conn:
            kept = rows.get(conn, response_id, "key_owner", at)
            assert kept is not None and kept["response"] == {"text": "retried"}
            assert rows.get(conn, response_id, "key_other", at) is None
    finally:
        store.close()
