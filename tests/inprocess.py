"""The in-process test tier: the whole server (gateway, admin API, request log on a real
SQLite file) driven through `httpx.ASGITransport`, with providers behind a scripted
transport. Everything above the transport (codecs, the stream loop, the gateway's stages,
the writer) is the real code; a request costs milliseconds instead of a process.

    async with InProcess.start(tmp_path) as gw:
        gw.script("sim", Scripted.json({...}))
        response = await gw.client.post("/v1/chat/completions", json=..., headers=gw.auth)
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson

from pilothouse.clock import Clock
from pilothouse.config import ProviderSpec, load_config_file
from pilothouse.policy import admin_token
from pilothouse.policy import keys as key_policy
from pilothouse.providers.transport import UpstreamResponse
from pilothouse.server import Server, create_server
from pilothouse.settings import Settings
from pilothouse.simulator.scenario import Scenario
from pilothouse.simulator.server import create_app as create_simulator_app
from pilothouse.store import open_store

ADMIN_TOKEN = "pha-inprocess-admin"

CONFIG = """
providers:
  sim: {type: openai, base_url: "http://sim.invalid/v1"}
  claude-api: {type: anthropic, base_url: "http://claude.invalid"}
models:
  fast: {provider: sim, model: sim-small, pricing: {input_per_mtok: 1, output_per_mtok: 2}}
  embed: {provider: sim, model: sim-embed}
  claude: {provider: claude-api, model: sim-claude, pricing: {input_per_mtok: 3, output_per_mtok: 15}}
"""


@dataclass
class Scripted:
    """One scripted upstream answer: a status, headers, and a body given whole or as the
    pieces a stream arrives in. `fail_after` raises that error once the pieces are sent."""

    status: int = 200
    body: bytes = b""
    chunks: list[bytes] | None = None
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str = "application/json"
    fail_after: BaseException | None = None
    delay_seconds: float = 0.0  # before the headers
    chunk_delay_seconds: float = 0.0  # before each piece after the first

    @classmethod
    def json(cls, data: Any, status: int = 200, **headers: str) -> Scripted:
        return cls(status=status, body=orjson.dumps(data), headers=headers)

    @classmethod
    def sse(cls, *frames: bytes | dict[str, Any] | str, event: bool = False) -> Scripted:
        """A stream: dicts become `data: {json}` frames, `"[DONE]"` the end marker; bytes
        go as they are (to script cut or odd frames)."""
        pieces = []
        for frame in frames:
            if isinstance(frame, bytes):
                pieces.append(frame)
            elif isinstance(frame, str):
                pieces.append(f"data: {frame}\n\n".encode())
            else:
                name = f"event: {frame['type']}\n" if event else ""
                pieces.append(f"{name}data: ".encode() + orjson.dumps(frame) + b"\n\n")
        return cls(chunks=pieces, content_type="text/event-stream")


class _Response:
    def __init__(self, scripted: Scripted):
        self._scripted = scripted
        self.status = scripted.status
        self.headers: Mapping[str, str] = scripted.headers
        self.content_type = scripted.content_type
        self.released = False

    async def read(self) -> bytes:
        self.released = True
        if self._scripted.chunks is not None:
            return b"".join(self._scripted.chunks)
        return self._scripted.body

    async def chunks(self) -> AsyncIterator[bytes]:
        scripted = self._scripted
        pieces = scripted.chunks if scripted.chunks is not None else [scripted.body]
        for index, piece in enumerate(pieces):
            await asyncio.sleep(scripted.chunk_delay_seconds if index else 0)
            yield piece
        if self._scripted.fail_after is not None:
            raise self._scripted.fail_after

    def release(self) -> None:
        self.released = True


class ScriptedTransport:
    """A provider that answers from a script; records every request it was sent."""

    def __init__(self, provider: str):
        self.provider = provider
        self.script: deque[Scripted | BaseException | Callable[[dict[str, Any]], Scripted]] = (
            deque()
        )
        self.default: Scripted | None = None
        self.requests: list[tuple[str, dict[str, Any]]] = []

    async def post(self, url: str, payload: dict[str, Any]) -> UpstreamResponse:
        self.requests.append((url, payload))
        step = self.script.popleft() if self.script else self.default
        if step is None:
            raise AssertionError(f"provider {self.provider!r} was called with nothing scripted")
        if isinstance(step, BaseException):
            raise step
        scripted = step(payload) if callable(step) else step
        if scripted.delay_seconds:
            await asyncio.sleep(scripted.delay_seconds)
        return _Response(scripted)

    async def close(self) -> None:
        pass


class _SimulatedResponse:
    def __init__(self, response: httpx.Response):
        self._response = response
        self._closing: asyncio.Future[None] | None = None
        self.status = response.status_code
        self.headers: Mapping[str, str] = response.headers
        self.content_type = response.headers.get("content-type", "")

    async def read(self) -> bytes:
        return await self._response.aread()

    async def chunks(self) -> AsyncIterator[bytes]:
        async for piece in self._response.aiter_bytes():
            yield piece

    def release(self) -> None:
        self._closing = asyncio.ensure_future(self._response.aclose())


class SimulatedTransport:
    """A provider answered by the simulator's own ASGI app, in this process: real
    generation (tools, tool_choice and response formats honoured) without a process."""

    def __init__(self, provider: str, app: Any):
        self.provider = provider
        self.requests: list[tuple[str, dict[str, Any]]] = []
        self._client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://sim.invalid"
        )

    async def post(self, url: str, payload: dict[str, Any]) -> UpstreamResponse:
        self.requests.append((url, payload))
        request = self._client.build_request("POST", httpx.URL(url).path, json=payload)
        return _SimulatedResponse(await self._client.send(request, stream=True))

    async def close(self) -> None:
        await self._client.aclose()


@dataclass
class InProcess:
    server: Server
    client: httpx.AsyncClient
    transports: dict[str, Any]  # ScriptedTransport, or SimulatedTransport when simulated
    key: str

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}

    @property
    def admin(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {ADMIN_TOKEN}"}

    def script(self, provider: str, *answers: Scripted | BaseException) -> None:
        self.transports[provider].script.extend(answers)

    async def chat(self, model: str = "fast", **body: Any) -> httpx.Response:
        payload = {"model": model, "messages": [{"role": "user", "content": "hi"}], **body}
        return await self.client.post("/v1/chat/completions", json=payload, headers=self.auth)

    async def rows(self, expected: int, timeout_seconds: float = 5.0) -> list[dict[str, Any]]:
        """The request log, once the writer has stored `expected` rows."""
        assert self.server.writer is not None
        deadline = time.monotonic() + timeout_seconds
        while True:
            await self.server.writer.flush()
            response = await self.client.get("/api/requests?limit=1000", headers=self.admin)
            rows: list[dict[str, Any]] = response.json()["data"]
            if len(rows) >= expected or time.monotonic() > deadline:
                return rows
            await asyncio.sleep(0.02)

    async def drive(
        self,
        body: dict[str, Any],
        *,
        leave_after_frames: int | None = None,
        path: str = "/v1/chat/completions",
    ) -> list[dict[str, Any]]:
        """Call the ASGI app directly, as a client that disconnects after receiving
        `leave_after_frames` body messages (httpx cannot leave half-way). Returns what was
        sent to the client."""
        sent: list[dict[str, Any]] = []
        left = asyncio.Event()
        delivered = False

        async def receive() -> dict[str, Any]:
            nonlocal delivered
            if not delivered:
                delivered = True
                return {"type": "http.request", "body": orjson.dumps(body), "more_body": False}
            if leave_after_frames != 0:
                await left.wait()
            return {"type": "http.disconnect"}

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)
            frames = sum(m["type"] == "http.response.body" and bool(m.get("body")) for m in sent)
            if leave_after_frames is not None and frames >= leave_after_frames:
                left.set()

        scope = {
            "type": "http",
            "method": "POST",
            "path": path,
            "headers": [(b"authorization", f"Bearer {self.key}".encode())],
        }
        await self.server(scope, receive, send)
        return sent

    @classmethod
    @asynccontextmanager
    async def start(
        cls,
        data_dir: Path,
        config: str = CONFIG,
        *,
        clock: Clock | None = None,
        simulated: bool = False,
        scripted: bool = True,
        redis_url: str | None = None,
        database_url: str | None = None,
        scenario: Scenario | None = None,
    ) -> AsyncIterator[InProcess]:
        """The server on `config`; with `simulated`, every provider is answered by the
        simulator's app in-process (`SimulatedTransport`, on `scenario` when given) instead
        of a script; with `scripted=False`, the config's providers are real HTTP servers
        (a simulator process) reached through the real transport. `database_url`: another
        store than SQLite in `data_dir` (e.g. PostgreSQL)."""
        config_path = data_dir / "config.yaml"
        config_path.write_text(config)
        settings = Settings(
            data_dir=data_dir,
            config_path=config_path,
            config=load_config_file(config_path),
            redis_url=redis_url,
            database_url=database_url,
        )
        store = open_store(settings.effective_database_url)
        store.upgrade()
        transports: dict[str, Any] = {}
        simulator_app = create_simulator_app(scenario) if simulated else None

        def transport_for(name: str, spec: ProviderSpec) -> Any:
            if simulator_app is not None:
                transports[name] = SimulatedTransport(name, simulator_app)
            else:
                transports[name] = ScriptedTransport(name)
            return transports[name]

        admin_token.prepare(store, data_dir, ADMIN_TOKEN)
        server = create_server(
            settings, store, transport_for=transport_for if scripted else None, clock=clock
        )
        _, secret = key_policy.create_key(store, name="inprocess")
        try:
            async with server.running():
                transport = httpx.ASGITransport(app=server)
                async with httpx.AsyncClient(transport=transport, base_url="http://gw") as client:
                    yield cls(server, client, transports, secret)
        finally:
            store.close()
