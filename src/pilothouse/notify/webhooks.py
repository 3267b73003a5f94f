"""Webhook notifications: one sender for every event the server announces (alerts today).

`publish(event, payload)` records one delivery per subscribed webhook in the store and
returns; a background loop sends what is due. A delivery is the unit of truth: it survives
a restart (the loop picks up what is pending), is claimed before it is sent (two instances
never send the same one), and keeps its attempts, last status and last error, so
`GET /api/notifications/deliveries` shows what reached whom.

Each request is signed when the webhook names a secret: the header
`X-Pilothouse-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">` (a receiver
recomputes it and refuses an old `t`). 2xx is delivered; 408, 429, 5xx and a connection
failure are retried after 2 s, then twice as long each time (at most 5 minutes), up to the
webhook's `max_attempts`; any other status is the receiver refusing, recorded as failed.

Webhooks come from the config file, or from `resolve` for the names it knows: the
changelog's subscriptions (`changelog.<id>`, recorded by changelog/entries.py in the
transaction of the change), each with a secret of its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import logging
import os
import secrets
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from fnmatch import fnmatchcase
from typing import Any

import aiohttp
import orjson

from pilothouse.clock import Clock
from pilothouse.config import WebhookSpec
from pilothouse.store import Store
from pilothouse.store import deliveries as rows

log = logging.getLogger("pilothouse.notify")

RETRYABLE = {408, 429}
FIRST_BACKOFF_SECONDS = 2.0
MAX_BACKOFF_SECONDS = 300.0
BATCH = 50
DEFAULT_TIMEOUT_SECONDS = 5.0

# A webhook the config does not name, found by its name: its spec and its secret (None:
# unsigned), or None when there is no such webhook (any more). Called in a thread.
Resolver = Callable[[str], "tuple[WebhookSpec, str | None] | None"]


def signature(secret: str, timestamp: int, body: bytes) -> str:
    """The `X-Pilothouse-Signature` header value for `body` sent at `timestamp`."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


def render(spec: WebhookSpec, delivery: Mapping[str, Any]) -> bytes:
    """The request body: our JSON envelope, or a Slack-compatible `text` message."""
    payload = delivery["payload"]
    if spec.format == "slack":
        text = payload.get("message") or delivery["event"]
        return orjson.dumps({"text": f"[{delivery['event']}] {text}"})
    return orjson.dumps(
        {
            "id": delivery["id"],
            "event": delivery["event"],
            "created_at": delivery["created_at"].isoformat(),
            "data": payload,
        }
    )


class WebhookSender:
    def __init__(
        self,
        store: Store,
        webhooks: Sequence[WebhookSpec],
        *,
        clock: Clock,
        environ: Mapping[str, str] = os.environ,
        poll_seconds: float = 5.0,
        resolve: Resolver | None = None,
    ):
        self.store = store
        self.webhooks = {w.name: w for w in webhooks}
        self.resolve = resolve
        self.clock = clock
        self.environ = environ
        self.poll_seconds = poll_seconds
        self.holder = "sender-" + secrets.token_hex(6)
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._session: aiohttp.ClientSession | None = None
        for spec in webhooks:
            if spec.secret_env and not environ.get(spec.secret_env):
                log.error(
                    "webhook %s names the secret variable %s, which is not set: its "
                    "deliveries fail until it is (nothing is sent unsigned)",
                    spec.name,
                    spec.secret_env,
                )

    def _now(self) -> datetime:
        return datetime.fromtimestamp(self.clock.now(), UTC)

    # ------------------------------------------------------------------ publishing

    async def publish(self, event: str, payload: dict[str, Any]) -> list[str]:
        """Record a delivery for every webhook subscribed to `event`; their ids."""
        targets = [
            spec.name
            for spec in self.webhooks.values()
            if any(fnmatchcase(event, pattern) for pattern in spec.events)
        ]
        if not targets:
            return []
        now = self._now()
        records: list[dict[str, Any]] = [
            {
                "id": "dlv_" + secrets.token_hex(10),
                "webhook": name,
                "event": event,
                "payload": payload,
                "state": "pending",
                "attempts": 0,
                "next_attempt_at": now,
                "created_at": now,
            }
            for name in targets
        ]
        await asyncio.to_thread(self._insert, records)
        self._wake.set()
        return [r["id"] for r in records]

    def _insert(self, records: list[dict[str, Any]]) -> None:
        with self.store.begin() as conn:
            rows.insert(conn, records)

    # ------------------------------------------------------------------ sending

    def wake(self) -> None:
        """Deliveries were recorded by someone else (a changelog entry): send them now."""
        self._wake.set()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="webhooks")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._session is not None:
            await self._session.close()

    async def _run(self) -> None:
        while True:
            # asyncio.timeout, not wait_for: on 3.11 wait_for swallows a cancellation that
            # arrives as the wake-up does (close() then waited for ever).
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.poll_seconds):
                    await self._wake.wait()
            self._wake.clear()
            try:
                await self.deliver_due()
            except Exception:  # a broken store or receiver must not end the loop
                log.exception("webhook deliveries failed; they are tried again")

    async def deliver_due(self) -> int:
        """Send every delivery that is due now (claimed first); how many were sent."""
        now = self._now()
        claimed = await asyncio.to_thread(self._claim, now)
        if claimed:
            await asyncio.gather(*(self._deliver(d) for d in claimed))
        return len(claimed)

    def _claim(self, now: datetime) -> list[dict[str, Any]]:
        out = []
        with self.store.begin() as conn:
            for delivery in rows.due(conn, now, BATCH):
                spec = self.webhooks.get(delivery["webhook"])
                # Held for as long as a send may take; a crash mid-send frees it then.
                hold = (spec.timeout_seconds if spec else DEFAULT_TIMEOUT_SECONDS) + 30
                if rows.claim(conn, delivery, now + timedelta(seconds=hold)):
                    out.append(delivery)
        return out

    async def _deliver(self, delivery: dict[str, Any]) -> None:
        attempt = delivery["attempts"] + 1
        found = await self._destination(delivery["webhook"])
        if found is None:
            await self._record(
                delivery, attempt, "failed", None, "the webhook is no longer configured"
            )
            return
        spec, secret = found
        status: int | None
        error: str | None
        if spec.secret_env and not secret:
            status, error = None, f"the secret variable {spec.secret_env} is not set"
            retry = True
        else:
            status, error, retry = await self._send(spec, delivery, secret)
        if status is not None and 200 <= status < 300:
            await self._record(delivery, attempt, "delivered", status, None)
        elif retry and attempt < spec.max_attempts:
            await self._record(delivery, attempt, "pending", status, error)
        else:
            await self._record(delivery, attempt, "failed", status, error)
            log.warning(
                "webhook %s: delivery %s of %s failed for good after %d attempts: %s",
                spec.name,
                delivery["id"],
                delivery["event"],
                attempt,
                error,
            )

    async def _destination(self, name: str) -> tuple[WebhookSpec, str | None] | None:
        """The webhook `name` and its secret: from the config, else from `resolve`."""
        spec = self.webhooks.get(name)
        if spec is not None:
            return spec, self.environ.get(spec.secret_env) if spec.secret_env else None
        if self.resolve is None:
            return None
        return await asyncio.to_thread(self.resolve, name)

    async def _send(
        self, spec: WebhookSpec, delivery: Mapping[str, Any], secret: str | None
    ) -> tuple[int | None, str | None, bool]:
        """(status, error, worth retrying)."""
        body = render(spec, delivery)
        headers = {
            "content-type": "application/json",
            "user-agent": "pilothouse-webhooks",
            "x-pilothouse-event": delivery["event"],
            "x-pilothouse-delivery": delivery["id"],
        }
        if secret:
            headers["x-pilothouse-signature"] = signature(secret, int(self.clock.now()), body)
        if self._session is None:
            self._session = aiohttp.ClientSession()
        try:
            async with self._session.post(
                str(spec.url),
                data=body,
                headers=headers,
                timeout=aiohttp.ClientTimeout(total=spec.timeout_seconds),
                allow_redirects=False,
            ) as response:
                await response.read()
                status = response.status
        except (TimeoutError, aiohttp.ClientError) as exc:
            return None, f"{type(exc).__name__}: {exc}".rstrip(": "), True
        if 200 <= status < 300:
            return status, None, False
        retry = status in RETRYABLE or status >= 500
        return status, f"the receiver answered HTTP {status}", retry

    async def _record(
        self,
        delivery: Mapping[str, Any],
        attempt: int,
        state: str,
        status: int | None,
        error: str | None,
    ) -> None:
        now = self._now()
        backoff = min(FIRST_BACKOFF_SECONDS * 2 ** (attempt - 1), MAX_BACKOFF_SECONDS)
        fields: dict[str, Any] = {
            "state": state,
            "attempts": attempt,
            "last_status": status,
            "last_error": error,
            "next_attempt_at": now + timedelta(seconds=backoff) if state == "pending" else None,
        }
        if state == "delivered":
            fields["delivered_at"] = now

        def write() -> None:
            with self.store.begin() as conn:
                rows.change(conn, delivery["id"], **fields)

        await asyncio.to_thread(write)

    # ------------------------------------------------------------------ reading

    def listing(
        self, *, state: str | None = None, webhook: str | None = None, limit: int = 100
    ) -> list[dict[str, Any]]:
        with self.store.connect() as conn:
            return rows.listing(conn, state=state, webhook=webhook, limit=limit)
