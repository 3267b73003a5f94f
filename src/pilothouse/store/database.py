"""The database: engine set-up for SQLite and PostgreSQL, migrations, readiness.

SQLite runs in WAL mode so readers never block the request-log writer. Migrations are
Alembic revisions shipped inside the package; a database at a revision this code does not
know (written by a newer Pilothouse) is refused rather than touched.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, create_engine, event, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

from pilothouse.store.tables import config_version

log = logging.getLogger("pilothouse.store")

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


class StoreError(RuntimeError):
    """The store cannot be used as it is; the message says why and what to do."""


@dataclass(frozen=True)
class RevisionState:
    current: str | None
    head: str

    @property
    def at_head(self) -> bool:
        return self.current == self.head


def normalize_url(url: str) -> str:
    """Accept `postgres://` and `postgresql://` and use the psycopg 3 driver for both."""
    if url.startswith("postgres://"):
        url = "postgresql://" + url.removeprefix("postgres://")
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
    return url


def create_store_engine(url: str) -> Engine:
    """An engine for `url`; SQLite gets WAL, a busy timeout and its directory created."""
    url = normalize_url(url)
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    if parsed.get_backend_name() == "postgresql":
        engine = create_engine(
            url,
            pool_pre_ping=True,
            pool_size=5,
            max_overflow=5,
            connect_args=postgres_keepalives(parsed.query),
        )
        event.listen(engine, "connect", _postgres_session)
        return engine
    raise StoreError(
        f"unsupported database URL {parsed.render_as_string(hide_password=True)!r}: "
        "use sqlite:///PATH or postgresql://USER@HOST/DB"
    )


def postgres_keepalives(query: Mapping[str, Any]) -> dict[str, Any]:
    """Connection parameters for every PostgreSQL session this process opens, but those
    the URL's `query` sets itself: a connect timeout, and TCP keepalives so that a server
    gone silent (a network drop, a failover) fails the query waiting on it within about a
    minute rather than hours later (30 s idle then 3 probes 10 s apart; with data unsent,
    libpq 12+'s `tcp_user_timeout`)."""
    import psycopg  # a PostgreSQL URL only (start-up of the rest)

    wanted: dict[str, Any] = {
        "connect_timeout": 5,
        "keepalives": 1,
        "keepalives_idle": 30,
        "keepalives_interval": 10,
        "keepalives_count": 3,
    }
    if psycopg.pq.version() >= 120000:
        wanted["tcp_user_timeout"] = 60_000
    return {k: v for k, v in wanted.items() if k not in query}


# A session this process lost mid-transaction, without the server seeing it go, ends
# itself after this long, and its row locks with it: otherwise the request-log loader's
# retry of the same rows waits on them until the server's own keepalive (hours). Every
# transaction here is a few statements with no pause between them.
IDLE_IN_TRANSACTION_MS = 60_000


def _postgres_session(dbapi_connection: Any, _record: Any) -> None:
    """Set the idle-in-transaction timeout on a new session, unless it has one already
    (from the server, the role, the database, PGOPTIONS or the URL's `options`: theirs
    wins). Set in the session, not as a startup `options`, which poolers such as
    PgBouncer refuse and which would replace PGOPTIONS."""
    autocommit = dbapi_connection.autocommit
    dbapi_connection.autocommit = True
    try:
        with dbapi_connection.cursor() as cursor:
            cursor.execute(
                "SELECT set_config('idle_in_transaction_session_timeout', %s, false) "
                "WHERE current_setting('idle_in_transaction_session_timeout') = '0'",
                (str(IDLE_IN_TRANSACTION_MS),),
            )
    finally:
        dbapi_connection.autocommit = autocommit


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def _alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    return config


def revision_state(engine: Engine) -> RevisionState:
    """Where the database is, and where this code's migrations end."""
    script = ScriptDirectory.from_config(_alembic_config())
    head = script.get_current_head()
    assert head is not None
    with engine.connect() as conn:
        current = MigrationContext.configure(conn).get_current_revision()
    if current is not None and not _known(script, current):
        raise StoreError(
            f"the database is at schema revision {current!r}, which this Pilothouse "
            f"(newest revision {head!r}) does not know: it was upgraded by a newer version. "
            "Run that newer version, or point PILOTHOUSE_DATABASE_URL at another database."
        )
    return RevisionState(current=current, head=head)


def _known(script: ScriptDirectory, revision: str) -> bool:
    try:
        return script.get_revision(revision) is not None
    except Exception:  # alembic raises several types for an unknown revision id
        return False


def upgrade(engine: Engine) -> RevisionState:
    """Migrate the database to head (a no-op when it is there); refuse unknown revisions."""
    before = revision_state(engine)
    config = _alembic_config()
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, "head")
        if conn.execute(select(config_version.c.version)).first() is None:
            conn.execute(
                config_version.insert().values(id=1, version=1, changed_at=datetime.now(UTC))
            )
    after = revision_state(engine)
    if not before.at_head:
        log.info(
            "database schema %s",
            "created" if before.current is None else "upgraded",
            extra={"from_revision": before.current, "to_revision": after.current},
        )
    return after


def is_unavailable(exc: BaseException) -> bool:
    """True for a failure that means "the database cannot be reached or used right now"
    (connection refused or lost, a timeout), as opposed to a bad statement."""
    return isinstance(exc, OperationalError | InterfaceError) or (
        isinstance(exc, DBAPIError) and exc.connection_invalidated
    )


def ping(engine: Engine) -> None:
    """Raise if the database does not answer a trivial query."""
    with engine.connect() as conn:
        conn.execute(text("SELECT 1"))
