"""The request log through a real gateway process: `kill -9` under load loses no row
accepted more than one journal interval before the kill, on SQLite and PostgreSQL, with
the database healthy and while another connection holds the table locked; and poison
values sent by a client are stored bounded while the rows after them arrive."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest
import sqlalchemy as sa

from db_locks import request_log_locked
from harness import Gateway, Simulator, fresh_schema, gateway_config, start_gateway
from pilothouse.config import RequestLogSpec
from pilothouse.store.database import normalize_url

JOURNAL_INTERVAL_SECONDS = RequestLogSpec().journal_interval_ms / 1000  # the gateway's default
CLIENTS = 16
HELLO = {"model": "fast", "messages": [{"role": "user", "content": "Keep me."}]}


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'kill.db'}"
        return
    with fresh_schema(request.getfixturevalue("postgres_base_url")) as url:
        yield url


def logged_ids(database_url: str) -> set[str]:
    engine = sa.create_engine(normalize_url(database_url))
    try:
        with engine.connect() as conn:
            return set(conn.execute(sa.text("SELECT id FROM request_log")).scalars())
    finally:
        engine.dispose()


def metric(gateway: Gateway, name: str) -> float:
    for line in httpx.get(gateway.url + "/metrics", timeout=5).text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[-1])
    raise AssertionError(f"{name} is not in /metrics")


class Load:
    """Concurrent clients; each 200 is kept with its x-request-id and arrival time."""

    def __init__(self, gateway: Gateway, key: str):
        self.url = gateway.url
        self.key = key
        self.served: list[tuple[str, float]] = []  # list.append is atomic across threads
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._client) for _ in range(CLIENTS)]

    def __enter__(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=30)

    def wait_for(self, served: int, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while len(self.served) < served:
            assert time.monotonic() < deadline, f"only {len(self.served)} requests served"
            time.sleep(0.01)

    def _client(self) -> None:
        headers = {"Authorization": f"Bearer {self.key}"}
        with httpx.Client(base_url=self.url, headers=headers, timeout=10) as client:
            while not self._stop.is_set():
                try:
                    response = client.post("/v1/chat/completions", json=HELLO)
                except httpx.HTTPError:
                    time.sleep(0.01)  # the gateway is gone: keep trying until told to stop
                    continue
                if response.status_code == 200:
                    self.served.append((response.headers["x-request-id"], time.monotonic()))


@pytest.mark.parametrize("held", [False, True], ids=["healthy", "table-locked"])
def test_kill_9_under_load_loses_no_row_older_than_the_journal_interval(
    simulator: Simulator, database: str, tmp_path: Path, held: bool
) -> None:
    data_dir = tmp_path / "gw"
    gateway = start_gateway(gateway_config(simulator), database, data_dir)
    restarted: Gateway | None = None
    try:
        key = gateway.create_key(name="kill-9")
        with Load(gateway, key) as load:
            load.wait_for(100)
            lock = request_log_locked(database) if held else contextlib.nullcontext()
            with lock:
                before_lock = len(load.served)
                load.wait_for(before_lock + 600)
                if held:  # the hang is real: rows are waiting in the journal
                    assert metric(gateway, "pilothouse_request_log_backlog_bytes") > 0
                killed_at = time.monotonic()
                gateway.process.kill()
                gateway.process.wait(timeout=10)
                served = list(load.served)
                # Back on the same data dir and database, the table still locked if it was.
                restarted = start_gateway(gateway_config(simulator), database, data_dir)
        accepted = {rid for rid, at in served if at <= killed_at - JOURNAL_INTERVAL_SECONDS}
        assert len(accepted) >= 600
        deadline = time.monotonic() + 60
        while missing := accepted - logged_ids(database):
            assert time.monotonic() < deadline, (
                f"{len(missing)} of {len(accepted)} rows served more than "
                f"{JOURNAL_INTERVAL_SECONDS * 1000:.0f} ms before kill -9 are not in the log"
            )
            time.sleep(0.1)
    finally:
        gateway.stop()
        if restarted is not None:
            restarted.stop()


def test_poison_values_from_clients_are_stored_bounded_and_later_rows_arrive(
    gateway: Gateway,
) -> None:
    key = gateway.create_key(name="poison")
    sdk = openai.OpenAI(base_url=gateway.url + "/v1", api_key=key, max_retries=0)
    prefix = f"poison-{gateway.database_url[:6]}"
    long_id = (prefix + "-" + "x" * 300)[:200]  # valid as a header, longer than any column
    sent: list[tuple[str, str, dict[str, str]]] = [
        ("nul", f"{prefix}-nul", {"user": "eve\x00il"}),
        # An end user's id past its column: kept as prefix~hash, as its quotas count it.
        ("long-user", f"{prefix}-long-user", {"user": "u" * 250}),
        # Refused (no such model), its row naming the alias as asked, cut to the column.
        ("long-model", f"{prefix}-long-model", {"model": "m" * 250}),
        ("long-id", long_id, {}),
    ]
    expected_ids = []
    for n, (_, rid, extra) in enumerate(sent):
        call = {"model": "fast", "messages": HELLO["messages"], **extra}
        try:
            sdk.chat.completions.create(**call, extra_headers={"x-request-id": rid})
        except (openai.BadRequestError, openai.NotFoundError):
            assert rid.endswith("-long-model"), rid
        after = f"{prefix}-after-{n}"
        sdk.chat.completions.create(
            model="fast", messages=HELLO["messages"], extra_headers={"x-request-id": after}
        )
        # The caller's id is a label, kept to 128 characters; the row's id is the gateway's.
        expected_ids += [rid[:128], after]
    key_id = next(
        k["id"] for k in gateway.admin.get("/api/keys").json()["data"] if k["name"] == "poison"
    )
    logged = gateway.log_rows(len(expected_ids), key=key_id)
    rows = {r["client_request_id"]: r for r in logged}
    assert set(rows) == set(expected_ids) and len(logged) == len(expected_ids)
    # Not "eve\ufffdil", another user's name: the id as its quotas count it, prefix~hash.
    assert rows[f"{prefix}-nul"]["user"].startswith("eve\ufffdil~")
    long_user, long_model = rows[f"{prefix}-long-user"], rows[f"{prefix}-long-model"]
    assert long_user["status_code"] == 200 and len(long_user["user"]) == 200
    assert long_user["user"].startswith("u" * 150) and "~" in long_user["user"]
    assert long_model["status_code"] == 404 and len(long_model["model_alias"]) == 200
    assert "model_alias: cut to 200 chars (was 250)" in long_model["error_message"]
    assert all(len(r["id"]) == 36 for r in logged)  # UUIDv7s, never the caller's text
    assert all(rows[f"{prefix}-after-{n}"]["status_code"] == 200 for n in range(len(sent)))
