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
        return create_engine(
            url,
            pool_pre_ping=True,
            pool_size=5,
            max_overflow=5,
            connect_args=postgres_session(parsed.query),
        )
    raise StoreError(
        f"unsupported database URL {parsed.render_as_string(hide_password=True)!r}: "
        "use sqlite:///PATH or postgresql://USER@HOST/DB"
    )


# Every PostgreSQL session this process opens; a parameter the URL sets itself wins.
POSTGRES_SESSION = {
    "connect_timeout": 5,
    # A server gone silent (a network drop, a failover) fails the query waiting on it
    # within about a minute (30 s idle, then 3 probes 10 s apart), not hours later.
    "keepalives": 1,
    "keepalives_idle": 30,
    "keepalives_interval": 10,
    "keepalives_count": 3,
}
# A session this process lost mid-transaction, without the server seeing it go, ends
# itself after this long: its row locks go with it. Otherwise the request-log loader's
# retry of the same rows waits on those locks until the server's own keepalive (hours).
# Every transaction here is a few statements with no pause between them.
IDLE_IN_TRANSACTION_TIMEOUT = "idle_in_transaction_session_timeout=60000"


def postgres_session(query: Mapping[str, str | tuple[str, ...]]) -> dict[str, Any]:
    """The connection parameters above, beside those of a URL's `query`."""
    args: dict[str, Any] = {k: v for k, v in POSTGRES_SESSION.items() if k not in query}
    given = query.get("options", "")
    options = " ".join(given) if isinstance(given, tuple) else given
    if "idle_in_transaction_session_timeout" not in options:
        # connect_args replace the URL's own `options` (a search_path, say): keep them.
        args["options"] = f"{options} -c {IDLE_IN_TRANSACTION_TIMEOUT}".strip()
    return args


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
