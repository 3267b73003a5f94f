"""The store on SQLite and PostgreSQL: migrations, keys with audit, the request log."""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from harness import fresh_schema
from pilothouse import errors, logs
from pilothouse.policy import keys as key_policy
from pilothouse.policy.credentials import secret_hash
from pilothouse.store import Store, StoreError, audit, changes, database, notify, open_store
from pilothouse.store import request_log as request_rows
from pilothouse.store.tables import request_log


@pytest.fixture
def store(database_url: str) -> Store:
    store = open_store(database_url)
    store.upgrade()
    yield store
    store.close()


def test_migrations_take_an_empty_database_to_head(database_url: str) -> None:
    store = open_store(database_url)
    before = database.revision_state(store.engine)
    assert before.current is None and not before.at_head
    store.upgrade()
    after = database.revision_state(store.engine)
    assert after.at_head
    tables = set(sa.inspect(store.engine).get_table_names())
    assert {"api_keys", "audit_log", "request_log", "config_version"} <= tables
    store.upgrade()  # a second upgrade is a no-op
    with store.connect() as conn:
        assert changes.current(conn) == 1
    # The migrations build the request log's indexes store/tables/ describes.
    built = {
        i["name"]: i["column_names"] for i in sa.inspect(store.engine).get_indexes("request_log")
    }
    described = {i.name: [c.name for c in i.columns] for i in request_log.indexes}
    assert built == described
    store.close()


@pytest.fixture
def served_logs():
    """The records a server's logging (`logs.configure`) lets through, as (logger,
    message, extras); the root logger as it was afterwards."""
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    chatty = {name: logging.getLogger(name).level for name in ("alembic", "httpx")}
    seen: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append(record)

    def configure(level: str) -> list[logging.LogRecord]:
        logs.configure(level)
        root.addHandler(Keep())
        return seen

    yield configure
    root.handlers[:], root.level = saved
    for name, level in chatty.items():
        logging.getLogger(name).setLevel(level)


@pytest.mark.parametrize("level", ["info", "debug"])
def test_a_migration_is_one_line_of_the_servers_log(tmp_path, served_logs, level) -> None:
    seen = served_logs(level)
    store = open_store(f"sqlite:///{tmp_path / 'x.db'}")
    store.upgrade()
    head = database.revision_state(store.engine).head
    ours = [r for r in seen if r.name == "pilothouse.store"]
    assert [
        (r.getMessage(), r.__dict__["from_revision"], r.__dict__["to_revision"]) for r in ours
    ] == [("database schema created", None, head)]
    steps = [r for r in seen if r.name.startswith("alembic")]
    # Alembic's line per step only when asked for debug logs.
    assert bool(steps) is (level == "debug")
    seen.clear()
    store.upgrade()  # at head already: nothing to say
    assert [r for r in seen if r.name == "pilothouse.store"] == []
    store.close()


def test_a_database_from_a_newer_version_is_refused(store: Store) -> None:
    with store.begin() as conn:
        conn.execute(sa.text("UPDATE alembic_version SET version_num = '9999_future'"))
    with pytest.raises(StoreError, match=r"9999_future.*newer version"):
        store.upgrade()


def test_sqlite_runs_in_wal_mode(tmp_path) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'x.db'}")
    with store.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
    store.close()


def _with_query(url: str, query: str) -> str:
    return f"{url}{'&' if '?' in url else '?'}{query}"


def _idle_timeout(url: str) -> str:
    engine = database.create_store_engine(url)
    try:
        with engine.connect() as conn:
            return str(conn.exec_driver_sql("SHOW idle_in_transaction_session_timeout").scalar())
    finally:
        engine.dispose()


def test_postgres_sessions_keep_the_url_options_and_bound_a_lost_session(
    postgres_base_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with fresh_schema(postgres_base_url) as url:  # its search_path is an `options` entry
        engine = database.create_store_engine(url)
        with engine.connect() as conn:
            assert conn.exec_driver_sql("SHOW search_path").scalar().startswith("t_")
            timeout = conn.exec_driver_sql("SHOW idle_in_transaction_session_timeout").scalar()
            assert timeout == "1min"
            libpq = conn.connection.dbapi_connection.info.get_parameters()
            assert (libpq["keepalives"], libpq["keepalives_idle"]) == ("1", "30")
            assert libpq["tcp_user_timeout"] == "60000"
        engine.dispose()

    # A timeout the session already has is its own: from PGOPTIONS or the URL.
    monkeypatch.setenv("PGOPTIONS", "-c idle_in_transaction_session_timeout=700")
    assert _idle_timeout(postgres_base_url) == "700ms"
    monkeypatch.delenv("PGOPTIONS")
    own = "options=-c%20idle_in_transaction_session_timeout%3D500&keepalives_idle=7"
    assert _idle_timeout(_with_query(postgres_base_url, own)) == "500ms"

    # A session left idle in its transaction ends, and its locks go with it (a session
    # this process lost to a network drop).
    engine = database.create_store_engine(_with_query(postgres_base_url, own))
    other = sa.create_engine(postgres_base_url.replace("postgresql://", "postgresql+psycopg://"))
    lock = secrets.randbelow(1 << 30)
    try:
        with engine.connect() as lost, other.connect() as conn:
            assert lost.connection.dbapi_connection.info.get_parameters()["keepalives_idle"] == "7"
            lost.exec_driver_sql(f"SELECT pg_advisory_xact_lock({lock})")
            taken = f"SELECT pg_try_advisory_xact_lock({lock})"
            assert conn.exec_driver_sql(taken).scalar() is False
            conn.rollback()
            deadline = time.monotonic() + 10
            while not conn.exec_driver_sql(taken).scalar():
                conn.rollback()
                assert time.monotonic() < deadline, "the idle session kept its lock"
                time.sleep(0.1)
            with pytest.raises(sa.exc.DBAPIError, match="idle-in-transaction timeout"):
                lost.exec_driver_sql("SELECT 1")
    finally:
        engine.dispose()
        other.dispose()


def test_the_change_listener_connects_as_the_pool_does(postgres_base_url: str) -> None:
    """Its parameters are the URL's, decoded (a value with a space used to reach libpq
    with a `+` and the connection was refused), with the keepalives."""
    url = _with_query(
        postgres_base_url,
        "application_name=change%20listener&options=-c%20idle_in_transaction_session_timeout%3D500",
    )

    async def first_note() -> str:
        changes_ = notify.listen(url)
        waiting = asyncio.ensure_future(anext(changes_))
        engine = sa.create_engine(
            postgres_base_url.replace("postgresql://", "postgresql+psycopg://")
        )
        try:
            deadline = time.monotonic() + 10
            while not waiting.done():  # NOTIFY until the listener has connected and hears it
                assert time.monotonic() < deadline, "the listener heard nothing"
                with engine.begin() as conn:
                    notify.notify(conn, "hello")
                await asyncio.wait([waiting], timeout=0.2)
            return waiting.result()
        finally:
            engine.dispose()
            await changes_.aclose()

    assert asyncio.run(first_note()) == "hello"
    params = notify.libpq_params(url)
    assert params["application_name"] == "change listener" and params["keepalives_idle"] == 30


def test_key_lifecycle_is_audited_and_bumps_the_version(store: Store) -> None:
    with store.connect() as conn:
        start = changes.current(conn)
    key, secret = key_policy.create_key(
        store, name="billing", user="ana", team="payments", models=["fast"]
    )
    assert secret.startswith("ph-") and len(secret) > 40
    stored = key_policy.resolve_key(store, "billing")
    assert stored.id == key.id and stored.models == ("fast",) and not stored.disabled
    with store.connect() as conn:
        row = conn.execute(sa.text("SELECT key_hash FROM api_keys")).scalar()
    assert row == secret_hash(secret) and secret not in str(row)

    key_policy.set_disabled(store, key.id, True, reason="leaked in a log")
    assert key_policy.resolve_key(store, key.id).disabled
    with store.connect() as conn:
        trail = audit.history(conn, key.id)
        assert changes.current(conn) == start + 2
    assert [entry["action"] for entry in trail] == ["key.disable", "key.create"]
    assert trail[0]["reason"] == "leaked in a log"
    assert trail[0]["before"] == {"disabled": False} and trail[0]["after"] == {"disabled": True}


def test_key_errors_say_what_to_do(store: Store) -> None:
    with pytest.raises(errors.NotFound, match="no API key with id or name 'nope'") as caught:
        key_policy.resolve_key(store, "nope")
    assert caught.value.hint and "keys list" in caught.value.hint
    with pytest.raises(errors.InvalidRequest, match="in the past"):
        key_policy.create_key(store, name="old", expires_at=datetime.now(UTC) - timedelta(days=1))
    key_policy.create_key(store, name="twin")
    key_policy.create_key(store, name="twin")
    with pytest.raises(errors.Conflict, match="2 keys are named 'twin'"):
        key_policy.resolve_key(store, "twin")


def _row(i: int, started: datetime) -> dict:
    return {
        "id": f"req_{i:04d}",
        "started_at": started,
        "finished_at": started,
        "endpoint": "chat",
        "status_code": 200 if i % 3 else 502,
        "outcome": "ok" if i % 3 else "upstream_error",
        "model_alias": "fast" if i % 2 else "smart",
        "stream": False,
        "latency_ms": 1.5,
        "key_id": None,
        "user": None,
        "team": None,
        "provider": "sim",
        "provider_model": "m",
        "error_class": None,
        "error_message": None,
        "prompt_tokens": 3,
        "completion_tokens": 4,
        "cached_tokens": 0,
        "cost_usd": 0.001,
        "ttft_delivered_ms": None,
        "ttft_upstream_ms": None,
        "ttft_gateway_ms": None,
        "chunks_in": None,
        "chunks_out": None,
        "finish_reason": "stop",
    }


def test_request_log_insert_is_idempotent_and_filters_and_pages(store: Store) -> None:
    base = datetime(2026, 1, 1, tzinfo=UTC)
    rows = [_row(i, base + timedelta(seconds=i)) for i in range(30)]
    with store.begin() as conn:
        request_rows.insert_many(conn, rows[:20])
    with store.begin() as conn:
        request_rows.insert_many(conn, rows)  # replaying overlapping rows must not fail
    with store.connect() as conn:
        assert request_rows.count(conn) == 30
        newest = request_rows.query(conn, limit=10)
        assert [r["id"] for r in newest] == [f"req_{i:04d}" for i in range(29, 19, -1)]
        page2 = request_rows.query(conn, limit=10, before_id=newest[-1]["id"])
        assert [r["id"] for r in page2] == [f"req_{i:04d}" for i in range(19, 9, -1)]
        failed = request_rows.query(conn, errors_only=True, limit=100)
        assert {r["status_code"] for r in failed} == {502} and len(failed) == 10
        assert all(r["model_alias"] == "fast" for r in request_rows.query(conn, model="fast"))
        since = request_rows.query(conn, since=base + timedelta(seconds=25), limit=100)
        assert len(since) == 5


def test_request_log_pages_by_key_through_rows_of_the_same_instant_and_filters_by_team(
    store: Store,
) -> None:
    """Paging is by (started_at, id): rows started in the same microsecond are neither
    skipped nor repeated, whatever the filter; the team filter reads the key's team."""
    base = datetime(2026, 1, 1, tzinfo=UTC)
    rows = []
    for i in range(40):
        row = _row(i, base + timedelta(seconds=i // 4))  # four rows per instant
        row["team"] = "support" if i % 2 else "insights"
        rows.append(row)
    with store.begin() as conn:
        request_rows.insert_many(conn, rows)
    with store.connect() as conn:
        seen: list[str] = []
        before = None
        while True:
            page = request_rows.query(conn, team="support", limit=3, before_id=before)
            seen += [r["id"] for r in page]
            if len(page) < 3:
                break
            before = page[-1]["id"]
    expected = sorted(
        (r for r in rows if r["team"] == "support"), key=lambda r: (r["started_at"], r["id"])
    )
    assert seen == [r["id"] for r in reversed(expected)]
