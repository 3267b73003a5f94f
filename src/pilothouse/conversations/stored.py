"""Stored responses: the Responses objects the gateway keeps so a later request can build
on one (`previous_response_id`), read it (`GET /v1/responses/{id}`) or delete it.

Each belongs to the key that made it: every read and delete is by id *and* that key, so
another key's response, an unknown id and one past retention are all the same "not
found" (no oracle telling them apart). A response is kept `retention_days`; a lookup
never finds an older one, and `prune` (the monitor's hourly retention job) deletes it.
The database calls run in a worker thread, off the event loop.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from pilothouse import errors
from pilothouse.clock import Clock
from pilothouse.store import Store, database
from pilothouse.store import stored_responses as rows

log = logging.getLogger("pilothouse.conversations")
ID_PREFIX = "resp_"
ID_HEX_DIGITS = 32  # a request id's: every id this gateway gives is resp_ and these
_HEX = frozenset("0123456789abcdef")
PRUNE_BATCH = 5000
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class StoredResponse:
    id: str
    key_id: str
    created_at: datetime
    input_items: list[dict[str, Any]]  # the whole conversation it answered, in input items
    response: dict[str, Any]  # the Responses object as the client received it

    @property
    def output(self) -> list[dict[str, Any]]:
        output = self.response.get("output")
        return output if isinstance(output, list) else []

    def conversation(self) -> list[dict[str, Any]]:
        """What a response continuing this one carries before its own input: this one's
        input items, then its output items (instructions are not carried, as OpenAI does)."""
        return [*self.input_items, *self.output]

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> StoredResponse:
        items, response = row["input_items"], row["response"]
        if not isinstance(items, list) or not isinstance(response, dict):
            raise errors.ServiceUnavailable(
                f"stored response {row['id']} cannot be read (its row is damaged)",
                hint="send the conversation in `input` instead; the server log names the row",
                code="damaged_row",
            )
        return cls(row["id"], row["key_id"], row["created_at"], items, response)


def could_be_id(value: Any) -> bool:
    """Whether `value` is shaped like an id this gateway gives, `resp_` and 32 hex digits
    (anything else, such as a NUL byte the database would refuse, is not found without
    asking the database)."""
    return (
        isinstance(value, str)
        and len(value) == len(ID_PREFIX) + ID_HEX_DIGITS
        and value.startswith(ID_PREFIX)
        and _HEX.issuperset(value[len(ID_PREFIX) :])
    )


async def _off_loop(call: Callable[..., T], *args: Any) -> T:
    """`call(*args)` in a worker thread; ServiceUnavailable (503, retry) when the database
    cannot be reached, rather than a fault of the gateway's."""
    try:
        return await asyncio.to_thread(call, *args)
    except Exception as exc:
        if not database.is_unavailable(exc):
            raise
        log.error("stored responses: the database is unavailable: %s", exc)
        raise errors.ServiceUnavailable(
            "the database is unavailable, so stored responses cannot be read or deleted now",
            hint="retry shortly, or send the whole conversation in `input` instead",
            code="database_unavailable",
        ) from exc


class StoredResponses:
    """The stored responses of a deployment, kept `retention_days` (by `clock`'s time)."""

    def __init__(self, store: Store, *, retention_days: float, clock: Clock | None = None):
        self.store = store
        self.retention = timedelta(days=retention_days)
        self.clock = clock or Clock()

    def _since(self) -> datetime:
        return datetime.fromtimestamp(self.clock.now(), UTC) - self.retention

    async def get(self, response_id: str, key_id: str) -> StoredResponse | None:
        """The response `key_id` stored under this id, unless it is past retention."""
        if not could_be_id(response_id):
            return None
        row = await _off_loop(self._get, response_id, key_id, self._since())
        return StoredResponse.from_row(row) if row is not None else None

    def _get(self, response_id: str, key_id: str, since: datetime) -> dict[str, Any] | None:
        with self.store.connect() as conn:
            return rows.get(conn, response_id, key_id, since)

    async def get_many(self, response_ids: list[str], key_id: str) -> dict[str, StoredResponse]:
        """`get` for several ids in one query; the ones not found are left out."""
        wanted = sorted({i for i in response_ids if could_be_id(i)})
        if not wanted:
            return {}
        found = await _off_loop(self._get_many, wanted, key_id, self._since())
        return {i: StoredResponse.from_row(row) for i, row in found.items()}

    def _get_many(
        self, response_ids: list[str], key_id: str, since: datetime
    ) -> dict[str, dict[str, Any]]:
        with self.store.connect() as conn:
            return rows.get_many(conn, response_ids, key_id, since)

    async def save(
        self,
        response_id: str,
        key_id: str,
        input_items: list[dict[str, Any]],
        response: dict[str, Any],
    ) -> None:
        """Store `response` (made by `key_id`, answering `input_items`); a later save under
        the same id replaces it. Raises what the database raised."""
        row = {
            "id": response_id,
            "key_id": key_id,
            "created_at": datetime.fromtimestamp(self.clock.now(), UTC),
            "input_items": input_items,
            "response": response,
        }
        await asyncio.to_thread(self._put, row)

    def _put(self, row: dict[str, Any]) -> None:
        with self.store.begin() as conn:
            rows.put(conn, row)

    async def delete(self, response_id: str, key_id: str) -> bool:
        """Delete the response `get` would find; whether there was one."""
        if not could_be_id(response_id):
            return False
        return await _off_loop(self._delete, response_id, key_id, self._since())

    def _delete(self, response_id: str, key_id: str, since: datetime) -> bool:
        with self.store.begin() as conn:
            return rows.remove(conn, response_id, key_id, since)

    def prune(self, now: datetime) -> int:
        """Retention: delete every response made more than `retention_days` before `now`,
        in batches (a first prune of many never holds one long lock); how many went."""
        before = now - self.retention
        deleted = 0
        while True:
            with self.store.begin() as conn:
                gone = rows.prune(conn, before, PRUNE_BATCH)
            deleted += gone
            if gone < PRUNE_BATCH:
                return deleted
