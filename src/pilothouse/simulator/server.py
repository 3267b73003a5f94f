"""The simulator's ASGI app and the blocking `run` used by `pilothouse simulate`."""

from __future__ import annotations

import importlib.util
import socket
import sys
import threading
from pathlib import Path

import uvicorn
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from pilothouse.simulator.anthropic_api import AnthropicApi
from pilothouse.simulator.catalog import CatalogApi
from pilothouse.simulator.errors import Api, RequestError, error_response, json_response
from pilothouse.simulator.openai_api import OpenAIApi
from pilothouse.simulator.scenario import Scenario, ScenarioError, load_scenario
from pilothouse.simulator.state import SimulatorState


def create_app(scenario: Scenario | None = None) -> Starlette:
    """Build the simulator app for `scenario` (None: built-in instant, fault-free behaviour).

    Serves the OpenAI and Anthropic endpoints plus GET /healthz, GET /simulator/stats
    and POST /simulator/reset. The `SimulatorState` is exposed as `app.state.simulator`.
    """
    state = SimulatorState(scenario if scenario is not None else Scenario())

    async def healthz(request: Request) -> Response:
        return json_response({"status": "ok"})

    async def stats(request: Request) -> Response:
        return json_response(state.stats())

    async def reset(request: Request) -> Response:
        state.reset()
        return json_response({"status": "reset"})

    routes = [
        *OpenAIApi(state).routes(),
        *AnthropicApi(state).routes(),
        *CatalogApi(state).routes(),
        Route("/healthz", healthz, methods=["GET"]),
        Route("/simulator/stats", stats, methods=["GET"]),
        Route("/simulator/reset", reset, methods=["POST"]),
    ]
    app = Starlette(
        routes=routes,
        exception_handlers={HTTPException: _http_error, Exception: _internal_error},
    )
    app.state.simulator = state
    return app


def _api_for(request: Request) -> Api:
    return "anthropic" if request.url.path.startswith("/v1/messages") else "openai"


async def _http_error(request: Request, exc: Exception) -> Response:
    # 404/405 in the provider's own error shape rather than Starlette's plain text.
    status = exc.status_code if isinstance(exc, HTTPException) else 500
    message = f"Unknown request URL: {request.method} {request.url.path}."
    if status == 405:
        message = f"Method {request.method} is not allowed for {request.url.path}."
    return error_response(_api_for(request), RequestError(message, status=status))


async def _internal_error(request: Request, exc: Exception) -> Response:
    error = RequestError(
        f"simulator bug: {type(exc).__name__}: {exc}", status=500, kind="server_error"
    )
    return error_response(_api_for(request), error)


def run(
    host: str, port: int, scenario_path: Path | None, *, stop_when_stdin_closes: bool = False
) -> None:
    """Serve the simulator until interrupted (blocking).

    Loads `scenario_path` (None: built-in defaults), binds `host:port` (port 0 picks a
    free port), prints one line saying where it listens, and runs uvicorn with uvloop
    when installed, httptools and no access log. A bad scenario file prints its
    `ScenarioError` to stderr and exits with status 2. With `stop_when_stdin_closes`
    it also shuts down when its standard input reaches end of file: a parent that holds
    the other end of a pipe takes the simulator with it when it dies, even by `kill -9`.
    """
    try:
        scenario = load_scenario(scenario_path) if scenario_path is not None else Scenario()
    except ScenarioError as exc:
        print(f"pilothouse simulate: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    server, sock = build_server(create_app(scenario), host, port)
    bound_host, bound_port = sock.getsockname()[:2]
    source = str(scenario_path) if scenario_path is not None else "built-in defaults"
    url = f"http://{_url_host(bound_host)}:{bound_port}"
    print(
        f"pilothouse simulator listening on {url} "
        f"(OpenAI base_url {url}/v1, Anthropic base_url {url}; scenario: {source})",
        flush=True,
    )
    if stop_when_stdin_closes:
        threading.Thread(target=_stop_at_eof, args=(server,), daemon=True).start()
    server.run(sockets=[sock])


def _stop_at_eof(server: uvicorn.Server) -> None:
    """Read standard input to its end (the parent closed it or died), then stop `server`."""
    while sys.stdin.buffer.read(4096):
        pass
    server.should_exit = True


def build_server(app: Starlette, host: str, port: int) -> tuple[uvicorn.Server, socket.socket]:
    """A configured uvicorn server for `app` and its already-bound listening socket.

    Binding first lets callers learn the real port when `port` is 0. Graceful shutdown
    is capped at 2 s because requests held by the `timeout` fault never finish on their own.
    """
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        loop="uvloop" if importlib.util.find_spec("uvloop") else "asyncio",
        http="httptools",
        access_log=False,
        log_level="warning",
        lifespan="off",
        timeout_graceful_shutdown=2,
        timeout_keep_alive=30,
    )
    return uvicorn.Server(config), config.bind_socket()


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host
