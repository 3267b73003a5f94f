"""`pilothouse serve`: the gateway, the admin API and the dashboard in one process."""

from __future__ import annotations

import asyncio
import dataclasses
import errno
import gc
import logging
import signal
import socket
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from types import FrameType
from typing import Any

import click
import uvicorn
from sqlalchemy.exc import SQLAlchemyError

from pilothouse import logs
from pilothouse.cli import demo, demo_seed
from pilothouse.cli.demo_traffic import DemoTraffic
from pilothouse.cli.settings import settings_or_exit, store_options
from pilothouse.policy import admin_token
from pilothouse.server import Server, create_server
from pilothouse.settings import Settings
from pilothouse.store import StoreError, open_store

log = logging.getLogger("pilothouse.server")
BACKLOG = 2048  # uvicorn's


@click.command()
@click.option("--host", default=None, help="Interface to bind. Default: 127.0.0.1")
@click.option(
    "--port", default=None, type=click.IntRange(0, 65535), help="Port (0: any free). Default: 8080"
)
@click.option(
    "--no-demo-traffic",
    is_flag=True,
    help="In demo mode, do not send the demo's own traffic (it never runs otherwise).",
)
@store_options
def serve(
    host: str | None,
    port: int | None,
    no_demo_traffic: bool,
    config_path: Path | None,
    data_dir: Path | None,
) -> None:
    """Serve the gateway (/v1), the admin API (/api), the dashboard (/), /healthz, /readyz
    and /metrics.

    With no provider configured (demo mode), starts the provider simulator, seeds the
    demo's prompts, routes, keys and eval suite, and sends a little traffic of its own.
    """
    # uvicorn drains in-flight requests on SIGTERM/SIGINT, then re-raises the signal to the
    # handler it found: make that (and a signal during start-up) a clean exit, so the
    # `finally`s below stop the demo simulator and close the store and the socket.
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, _exit_cleanly)
    settings = settings_or_exit(host=host, port=port, config_path=config_path, data_dir=data_dir)
    logs.configure(settings.log_level)
    # The port first: a start that cannot listen stops before it prints a token, a key
    # and a URL that another process answers.
    listeners = _listen(settings.host, settings.port)
    try:
        # --port 0: the port the system gave, in the banner and the log as anywhere else.
        settings = dataclasses.replace(settings, port=listeners[0].getsockname()[1])
        _serve(settings, listeners, no_demo_traffic)
    finally:
        for listener in listeners:
            listener.close()


def _serve(settings: Settings, listeners: list[socket.socket], no_demo_traffic: bool) -> None:
    """Everything after the port: the demo's simulator, the store, the banner, uvicorn."""
    simulator: subprocess.Popen[bytes] | None = None
    if not settings.config.providers:
        simulator, settings = demo.start_simulator(settings)
    store = open_store(settings.effective_database_url)
    try:
        try:
            store.upgrade()
        except StoreError as exc:
            raise click.ClickException(str(exc)) from None
        except SQLAlchemyError as exc:
            raise click.ClickException(
                f"cannot use the database ({store.engine.url.render_as_string(hide_password=True)}): "
                f"{exc.__class__.__name__}: {str(exc).splitlines()[0]}. Check "
                "PILOTHOUSE_DATABASE_URL and that the server is running."
            ) from None
        startup = admin_token.prepare(store, settings.data_dir, settings.admin_token)
        host = settings.host or "0.0.0.0"  # "": every interface, as 0.0.0.0 (and ::)
        url = f"http://{f'[{host}]' if ':' in host else host}:{settings.port}"
        if startup.new_token:
            click.echo(
                "\n  Admin token for this deployment (shown once; only its hash is kept, in "
                f"the database):\n    export PILOTHOUSE_ADMIN_TOKEN={startup.new_token}\n"
            )
        for warning in startup.warnings:
            click.echo(f"pilothouse: {warning}", err=True)
        companions = []
        if simulator is not None:
            secret = demo_seed.seed(store, settings.config, settings.data_dir)
            if not no_demo_traffic:
                keys = demo_seed.traffic_keys(store, settings.data_dir)
                companions.append(DemoTraffic(keys))
            click.echo(demo.banner(url, secret, traffic=not no_demo_traffic))
        server = create_server(settings, store, companions=companions)
        config = uvicorn.Config(
            server,
            host=settings.host,
            port=settings.port,
            http="httptools",
            loop="uvloop",
            lifespan="on",
            access_log=False,
            log_config=None,
            server_header=False,
            timeout_graceful_shutdown=30,
        )
        # The request-log writer thread must not hold the GIL for the default 5 ms while
        # the event loop has frames to relay: switch more often (halved c1 p99 in bench).
        sys.setswitchinterval(0.0005)
        _DrainingServer(config, server, url).run(sockets=listeners)
    finally:
        store.close()
        if simulator is not None:
            simulator.terminate()
            simulator.wait(timeout=10)


def _listen(host: str, port: int) -> list[socket.socket]:
    """The server's sockets, bound and listening, one per address the host names (as
    asyncio's server binds them: `localhost` may be 127.0.0.1 and ::1), all on one port
    (port 0: one the system gives, free on every address); or a clear exit, none left
    open. Of several addresses, one this machine lacks (::1 where IPv6 is off) is skipped."""
    try:
        # "" is every interface, as it was for bind() (and None is, to getaddrinfo).
        found = socket.getaddrinfo(
            host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
    except OSError as exc:
        raise click.ClickException(
            f"cannot listen on {host}:{port}: {exc.strerror or exc}. Check --host "
            "(or PILOTHOUSE_HOST): an address of this machine, or a name that resolves to one."
        ) from None
    addresses = [(family, address) for family, _, _, _, address in dict.fromkeys(found)]
    # Port 0 on several addresses: the port the first one got may be taken on another
    # (nothing the user could change): then again, with another port.
    for _ in range(10 if port == 0 and len(addresses) > 1 else 1):
        try:
            return _bind_all(addresses, port)
        except OSError as exc:
            failed = exc
            if exc.errno != errno.EADDRINUSE:
                break
    at = f" ({failed.filename})" if failed.filename else ""
    raise click.ClickException(
        f"cannot listen on {host}:{port}{at}: {failed.strerror or failed}. "
        + (
            "Another process serves it (a `pilothouse serve` still running?): stop it, or "
            "pick another port: --port, or PILOTHOUSE_PORT (PILOTHOUSE_PORT=8081 make run)."
            if failed.errno == errno.EADDRINUSE
            else "Check --host and --port."
        )
    ) from None


def _bind_all(addresses: Sequence[tuple[int, Any]], port: int) -> list[socket.socket]:
    """A listening socket on each address, all on one port; OSError (its `filename` the
    address that failed) with none left open."""
    listeners: list[socket.socket] = []
    try:
        for family, address in addresses:
            if port == 0 and listeners:
                address = (address[0], listeners[0].getsockname()[1], *address[2:])
            try:
                listener = socket.socket(family, socket.SOCK_STREAM)
            except OSError:
                if len(addresses) == 1:
                    raise
                continue  # a family this machine lacks (IPv6 off): the others serve
            listeners.append(listener)
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6 and len(addresses) > 1:
                # Its own address only: `::` beside 0.0.0.0 would take its port too.
                listener.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            try:
                listener.bind(address)
            except OSError as exc:
                if len(addresses) == 1:
                    raise
                if exc.errno != errno.EADDRNOTAVAIL:
                    exc.filename = _shown(family, address)  # which of them, for the error
                    raise
                listeners.pop().close()  # an address this machine lacks: the others serve
                continue
            # Listening at once: two sockets with SO_REUSEADDR may share a port until one
            # listens, and a listen that fails later (inside uvicorn, on uvloop) is silent.
            listener.listen(BACKLOG)
    except BaseException:
        for listener in listeners:
            listener.close()
        raise
    if not listeners:
        raise OSError(errno.EADDRNOTAVAIL, "none of its addresses is this machine's")
    return listeners  # not inheritable: a scheduled eval run (a child) must not hold them


def _shown(family: int, address: Any) -> str:
    return (
        f"[{address[0]}]:{address[1]}"
        if family == socket.AF_INET6
        else f"{address[0]}:{address[1]}"
    )


def _exit_cleanly(signum: int, frame: object) -> None:
    raise SystemExit(0)


class _DrainingServer(uvicorn.Server):
    """uvicorn, telling the app when it starts draining, so open event streams end and
    the drain does not wait for them until the graceful-shutdown timeout."""

    def __init__(self, config: uvicorn.Config, app: Server, url: str):
        super().__init__(config)
        self._app = app
        self._url = url

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.started:  # its lifespan started; uvicorn says where only for its own socket
            log.info("listening on %s", self._url)
        # Everything alive now (modules, config, the snapshot) lives as long as the
        # process: take it out of the collector's view. Without this each full collection
        # walked ~110k objects, stalling the event loop 70-95 ms (bench: c32 p99 79 -> 17
        # ms, CPU per request -23 %).
        gc.collect()
        gc.freeze()

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        super().handle_exit(sig, frame)
        try:
            loop = asyncio.get_running_loop()  # signal handlers run on the loop's thread
        except RuntimeError:
            return  # the loop is not running yet: nothing is streaming
        loop.call_soon_threadsafe(lambda: loop.create_task(self._app.begin_shutdown()))
