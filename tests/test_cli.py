"""The command line as a user meets it: the demo, keys, logs, db, and its error messages."""

from __future__ import annotations

import contextlib
import errno
import hashlib
import io
import json
import os
import re
import signal
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click
import httpx
import openai
import pytest
import sqlalchemy as sa

from harness import ADMIN_TOKEN, Gateway, Simulator, free_port, gateway_config, start_gateway
from pilothouse.cli import serve as serve_command


def pilothouse(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pilothouse", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **(env or {})},
    )


def start_demo(data_dir: Path, port: int, *options: str) -> tuple[subprocess.Popen[str], list[str]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PILOTHOUSE_")}
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "pilothouse",
            "serve",
            "--port",
            str(port),
            "--data-dir",
            str(data_dir),
            *options,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=env,
    )
    lines: list[str] = []
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            line = process.stdout.readline() if process.stdout else ""
            if not line and process.poll() is not None:
                break
            lines.append(line)
            if "pilothouse logs" in line:
                break
    except BaseException:  # a timeout or failure here must not leave a server running
        process.kill()
        process.wait()
        raise
    return process, lines


def test_demo_serves_a_completion_on_a_fresh_data_dir(tmp_path: Path) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    process, lines = start_demo(tmp_path / "data", port)
    try:
        text = "".join(lines)
        admin_token = re.search(r"export PILOTHOUSE_ADMIN_TOKEN=(\S+)", text).group(1)
        demo_key = re.search(r"Bearer (ph-\S+?)\"", text).group(1)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(url + "/readyz").status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        assert httpx.get(url + "/readyz").json()["status"] == "ready"
        # The banner's examples run as written: the curl, then its Python lines (the
        # client, a model, the route with its variables) in one session.
        curl = text.split("Try it:\n", 1)[1].split("\n\n", 1)[0]
        answer = subprocess.run(["bash", "-c", curl], capture_output=True, text=True, timeout=30)
        assert json.loads(answer.stdout)["choices"][0]["message"]["content"], answer
        session: dict[str, object] = {}
        for start in ("Or with the openai SDK:\n", "beside the messages:\n"):
            block = textwrap.dedent(text.split(start, 1)[1].split("\n\n", 1)[0])
            printed = io.StringIO()
            with contextlib.redirect_stdout(printed):
                exec(block, session)
            assert printed.getvalue().strip(), block  # each prints an answer
        sdk = openai.OpenAI(base_url=url + "/v1", api_key=demo_key, max_retries=0)
        for model in ("fast", "claude"):
            reply = sdk.chat.completions.create(
                model=model, messages=[{"role": "user", "content": "Hello!"}]
            )
            assert reply.choices[0].message.content
        env = {"PILOTHOUSE_URL": url, "PILOTHOUSE_ADMIN_TOKEN": admin_token}
        admin = {"Authorization": f"Bearer {admin_token}"}
        key_ids = {
            k["name"]: k["id"] for k in httpx.get(url + "/api/keys", headers=admin).json()["data"]
        }
        deadline = time.monotonic() + 20  # the request log is written in batches
        while True:
            logs = pilothouse("logs", "--json", "--limit", "1000", env=env)
            assert logs.returncode == 0, logs.stderr
            rows = json.loads(logs.stdout)
            models = {row["model_alias"] for row in rows if row["key_id"] == key_ids["demo"]}
            # Beside ours, the demo's own traffic, from its two applications' keys.
            traffic = {row["key_id"] for row in rows} - {key_ids["demo"]}
            if (models, len(traffic)) == ({"fast", "claude"}, 2) or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert models == {"fast", "claude"}
        assert traffic == {key_ids["support-app"], key_ids["insights-job"]}
        # Only the token's hash is kept, in the store every instance shares.
        engine = sa.create_engine(f"sqlite:///{tmp_path / 'data' / 'pilothouse.db'}")
        with engine.connect() as conn:
            stored = conn.execute(sa.text("SELECT value FROM settings")).scalars().all()
        engine.dispose()
        assert stored == [hashlib.sha256(admin_token.encode()).hexdigest()]
        assert not (tmp_path / "data" / "admin-token.sha256").exists()
        simulator_port = int(
            re.search(
                r"127\.0\.0\.1:(\d+)", (tmp_path / "data" / "demo-config.yaml").read_text()
            ).group(1)
        )
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://127.0.0.1:{simulator_port}/healthz", timeout=2)  # the demo cleans up

    again, lines = start_demo(tmp_path / "data", free_port(), "--no-demo-traffic")
    try:
        text = "".join(lines)
        assert "PILOTHOUSE_ADMIN_TOKEN=" not in text, "the admin token is printed once only"
        assert demo_key in text, "a restarted demo shows the same demo key"
        assert "No demo traffic (--no-demo-traffic)" in text
        simulator_url = "http://127.0.0.1:{}/healthz".format(
            re.search(
                r"127\.0\.0\.1:(\d+)", (tmp_path / "data" / "demo-config.yaml").read_text()
            ).group(1)
        )
        assert httpx.get(simulator_url, timeout=2).status_code == 200
    finally:
        again.kill()  # kill -9: no clean-up code runs in the server
        again.wait(timeout=30)
    deadline = time.monotonic() + 30  # the orphaned simulator sees its pipe close and stops
    while time.monotonic() < deadline:
        try:
            httpx.get(simulator_url, timeout=1)
        except httpx.ConnectError:
            break
        time.sleep(0.1)
    with pytest.raises(httpx.ConnectError):
        httpx.get(simulator_url, timeout=2)  # no simulator left behind, holding its port

    third, lines = start_demo(tmp_path / "data", free_port(), "--no-demo-traffic")
    try:
        assert demo_key in "".join(lines), "after kill -9 the demo starts again on its data"
    finally:
        third.send_signal(signal.SIGINT)
        assert third.wait(timeout=30) == 0


@pytest.fixture(scope="module")
def cli_gateway(
    simulator: Simulator, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Gateway]:
    data_dir = tmp_path_factory.mktemp("cli")
    gw = start_gateway(gateway_config(simulator), f"sqlite:///{data_dir / 'p.db'}", data_dir)
    yield gw
    gw.stop()


def test_keys_and_logs_commands(cli_gateway: Gateway) -> None:
    env = {"PILOTHOUSE_URL": cli_gateway.url, "PILOTHOUSE_ADMIN_TOKEN": ADMIN_TOKEN}
    created = pilothouse(
        "keys",
        "create",
        "--name",
        "checkout",
        "--team",
        "payments",
        "--models",
        "fast,smart",
        "--expires",
        "2099-01-31",
        "--json",
        env=env,
    )
    assert created.returncode == 0, created.stderr
    key = json.loads(created.stdout)
    assert key["secret"].startswith("ph-") and key["models"] == ["fast", "smart"]
    assert key["expires_at"].startswith("2099-01-31")

    human = pilothouse("keys", "create", "--name", "other", env=env)
    assert "store it now: it is not shown again." in human.stdout

    listing = pilothouse("keys", "list", env=env)
    assert "checkout" in listing.stdout and "payments" in listing.stdout
    assert key["secret"] not in listing.stdout
    assert pilothouse("keys", "ls", env=env).stdout == listing.stdout, "ls, as in every group"

    sdk = openai.OpenAI(base_url=cli_gateway.url + "/v1", api_key=key["secret"], max_retries=0)
    sdk.chat.completions.create(model="fast", messages=[{"role": "user", "content": "hi"}])
    with pytest.raises(openai.NotFoundError):
        sdk.chat.completions.create(model="claude", messages=[{"role": "user", "content": "hi"}])

    cli_gateway.log_rows(expected=2, key=key["id"])  # the writer batches every 250 ms
    rows = json.loads(pilothouse("logs", "--key", key["id"], "--json", env=env).stdout)
    assert [r["status_code"] for r in rows] == [404, 200]
    failed = json.loads(
        pilothouse("logs", "--key", key["id"], "--errors", "--json", env=env).stdout
    )
    assert [r["status_code"] for r in failed] == [404]
    table = pilothouse("logs", "--model", "fast", "--since", "10m", env=env).stdout
    assert table.splitlines()[0].startswith("STARTED_AT") and "fast" in table

    disabled = pilothouse("keys", "disable", "checkout", "--reason", "rotated", env=env)
    assert "disabled" in disabled.stdout
    # The write waited until the instance served its change, and said so.
    assert f"applied on {cli_gateway.url}" in disabled.stderr, disabled.stderr
    deadline = time.monotonic() + 1
    while time.monotonic() < deadline:
        try:
            sdk.chat.completions.create(model="fast", messages=[{"role": "user", "content": "hi"}])
        except openai.AuthenticationError:
            break
    else:
        pytest.fail("the disabled key was still accepted after a second")
    assert "enabled" in pilothouse("keys", "enable", key["id"], env=env).stdout


def test_cli_errors_say_what_to_do(cli_gateway: Gateway) -> None:
    no_token = pilothouse(
        "keys", "list", env={"PILOTHOUSE_URL": cli_gateway.url, "PILOTHOUSE_ADMIN_TOKEN": ""}
    )
    assert no_token.returncode == 1 and "PILOTHOUSE_ADMIN_TOKEN is not set" in no_token.stderr
    wrong = pilothouse(
        "keys", "list", env={"PILOTHOUSE_URL": cli_gateway.url, "PILOTHOUSE_ADMIN_TOKEN": "nope"}
    )
    assert "401: admin token missing or wrong" in wrong.stderr
    down = pilothouse(
        "keys",
        "list",
        env={"PILOTHOUSE_URL": f"http://127.0.0.1:{free_port()}", "PILOTHOUSE_ADMIN_TOKEN": "x"},
    )
    assert (
        "cannot reach Pilothouse" in down.stderr and "is `pilothouse serve` running?" in down.stderr
    )
    env = {"PILOTHOUSE_URL": cli_gateway.url, "PILOTHOUSE_ADMIN_TOKEN": ADMIN_TOKEN}
    missing = pilothouse("keys", "disable", "no-such-key", env=env)
    assert (
        missing.returncode == 1
        and "404: no API key with id or name 'no-such-key'" in missing.stderr
    )
    bad_models = pilothouse("keys", "create", "--name", "x", "--models", "gpt-9", env=env)
    assert "unknown model aliases gpt-9" in bad_models.stderr


def test_db_commands(database_url: str, tmp_path: Path) -> None:
    env = {"PILOTHOUSE_DATABASE_URL": database_url}
    status = pilothouse("db", "status", "--data-dir", str(tmp_path), env=env)
    assert "(empty database)" in status.stdout and "behind" in status.stdout
    upgraded = pilothouse("db", "upgrade", "--data-dir", str(tmp_path), env=env)
    assert upgraded.returncode == 0 and "(head)" in upgraded.stdout
    assert "up to date" in pilothouse("db", "status", env=env).stdout
    engine = sa.create_engine(database_url.replace("postgresql://", "postgresql+psycopg://", 1))
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE alembic_version SET version_num = 'zz_future'"))
    engine.dispose()
    refused = pilothouse(
        "serve",
        *("--data-dir", str(tmp_path), "--config", str(_config(tmp_path))),
        *("--port", str(free_port())),  # the port is taken first: it must be free
        env=env,
    )
    assert (
        refused.returncode == 1
        and "'zz_future'" in refused.stderr
        and "newer version" in refused.stderr
    )


def _config(tmp_path: Path) -> Path:
    path = tmp_path / "c.yaml"
    path.write_text(
        "providers:\n  p: {type: openai, base_url: 'http://127.0.0.1:9/v1'}\nmodels: {}\n"
    )
    return path


def test_serve_says_when_the_database_is_unreachable(tmp_path: Path) -> None:
    result = pilothouse(
        "serve",
        "--config",
        str(_config(tmp_path)),
        "--data-dir",
        str(tmp_path),
        *("--port", str(free_port())),  # the port is taken first: it must be free
        env={"PILOTHOUSE_DATABASE_URL": f"postgresql://nobody@127.0.0.1:{free_port()}/none"},
    )
    assert result.returncode == 1
    assert "cannot use the database" in result.stderr and "PILOTHOUSE_DATABASE_URL" in result.stderr


def test_serve_on_a_port_in_use_stops_before_it_prints_a_token(tmp_path: Path) -> None:
    # Another process (an earlier `make run`, say) holds the port: the demo must not print
    # a new token, key and URL that the other process answers, then fail to bind.
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    port = taken.getsockname()[1]
    try:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PILOTHOUSE_")}
        serve = ["serve", "--port", str(port), "--data-dir", str(tmp_path / "data")]
        result = subprocess.run(
            [sys.executable, "-m", "pilothouse", *serve],
            capture_output=True,
            text=True,
            timeout=60,
            env=env,
        )
    finally:
        taken.close()
    assert result.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port}" in result.stderr and "--port" in result.stderr
    assert "PILOTHOUSE_ADMIN_TOKEN" not in result.stdout and "ph-" not in result.stdout
    assert not (tmp_path / "data").exists()  # nothing made: no database, no demo simulator


def test_serve_on_port_0_says_the_port_the_system_gave(tmp_path: Path) -> None:
    process, lines = start_demo(tmp_path / "data", 0, "--no-demo-traffic")
    try:
        url = re.search(r"The dashboard: (http://127\.0\.0\.1:(\d+))/", "".join(lines))
        assert url and int(url.group(2)) > 0, lines
        deadline = time.monotonic() + 30
        while not _answers(url.group(1) + "/healthz") and time.monotonic() < deadline:
            time.sleep(0.1)
        assert httpx.get(url.group(1) + "/healthz").status_code == 200
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def test_serve_listens_at_once_on_a_socket_no_child_inherits() -> None:
    # Two starts at once (the second while the first is still seeding): the second must
    # be refused then, not bind beside the first and later fail to listen in silence.
    [first] = serve_command._listen("127.0.0.1", 0)
    try:
        port = first.getsockname()[1]
        with pytest.raises(click.ClickException, match=f"cannot listen on 127.0.0.1:{port}"):
            serve_command._listen("127.0.0.1", port)
        # A scheduled eval run is a child process: it must not keep the port open.
        assert not first.get_inheritable()
        socket.create_connection(("127.0.0.1", port), timeout=2).close()  # listening
    finally:
        first.close()


def _can_bind_ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
        return True
    except OSError:
        return False


@pytest.mark.skipif(not _can_bind_ipv6_loopback(), reason="no IPv6 loopback on this machine")
def test_serve_listens_on_every_address_its_host_names(monkeypatch: pytest.MonkeyPatch) -> None:
    # Where /etc/hosts gives `localhost` both loopbacks, a client that tries ::1 first
    # must find the server there too (uvicorn's own bind did), on the same port.
    resolve = socket.getaddrinfo

    def both_loopbacks(host: str, port: int, *args: Any, **kwargs: Any) -> Any:
        if host != "localhost":
            return resolve(host, port, *args, **kwargs)
        return resolve("127.0.0.1", port, *args, **kwargs) + resolve("::1", port, *args, **kwargs)

    monkeypatch.setattr(serve_command.socket, "getaddrinfo", both_loopbacks)
    ipv4, ipv6 = serve_command._listen("localhost", 0)
    port = ipv4.getsockname()[1]
    try:
        assert (ipv4.family, ipv6.family) == (socket.AF_INET, socket.AF_INET6)
        assert ipv6.getsockname()[1] == port
        for address in ("127.0.0.1", "::1"):
            socket.create_connection((address, port), timeout=2).close()
        # Taken on ::1 only (another server there): refused, naming that address, and the
        # IPv4 socket it had bound is closed again (127.0.0.1 binds once more below).
        ipv4.close()
        with pytest.raises(click.ClickException, match=rf"\(\[::1\]:{port}\).*in use"):
            serve_command._listen("localhost", port)
        [again] = serve_command._listen("127.0.0.1", port)
        again.close()
    finally:
        ipv4.close()
        ipv6.close()


def test_serve_on_port_0_tries_another_port_when_one_address_has_it_taken(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The port the system gave the first address can be taken on the second: nothing the
    # user could change, so not their error; another port is tried.
    tries = []
    bind_all = serve_command._bind_all

    def taken_once(addresses: Any, port: int) -> list[socket.socket]:
        tries.append(port)
        if len(tries) == 1:
            raise OSError(errno.EADDRINUSE, "Address already in use", "[::1]:40000")
        return bind_all(addresses[:1], port)

    resolve = socket.getaddrinfo
    two = [*resolve("127.0.0.1", 0, type=socket.SOCK_STREAM)]
    two += resolve("127.0.0.2", 0, type=socket.SOCK_STREAM)
    monkeypatch.setattr(serve_command, "_bind_all", taken_once)
    monkeypatch.setattr(serve_command.socket, "getaddrinfo", lambda *a, **k: two)
    [listener] = serve_command._listen("localhost", 0)
    listener.close()
    assert tries == [0, 0]
    with pytest.raises(click.ClickException, match=r"localhost:8080 \(\[::1\]:40000\)"):
        tries.clear()
        serve_command._listen("localhost", 8080)  # a port the user chose: their error
    assert tries == [8080]


def test_serve_skips_an_address_of_its_host_that_is_not_this_machines(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # ::1 where IPv6 is off, say: the other addresses serve (as asyncio's server does);
    # only when none is this machine's does serve stop.
    resolve = socket.getaddrinfo

    def names(*hosts: str) -> Any:
        return lambda host, port, *a, **k: [x for h in hosts for x in resolve(h, port, *a, **k)]

    monkeypatch.setattr(serve_command.socket, "getaddrinfo", names("198.51.100.7", "127.0.0.1"))
    [listener] = serve_command._listen("somewhere", 0)
    try:
        assert listener.getsockname()[0] == "127.0.0.1"
    finally:
        listener.close()
    monkeypatch.setattr(serve_command.socket, "getaddrinfo", names("198.51.100.7", "203.0.113.7"))
    with pytest.raises(click.ClickException, match="none of its addresses is this machine's"):
        serve_command._listen("somewhere", 0)


def test_serve_on_a_host_that_does_not_resolve_says_so() -> None:
    with pytest.raises(
        click.ClickException, match=r"cannot listen on no-such-host\.invalid:0.*--host"
    ):
        serve_command._listen("no-such-host.invalid", 0)
