"""Teams subscribed to a prompt's or a route's changelog: each entry is delivered to their
webhook by notify/webhooks.py (signed with the subscription's secret, retried with backoff,
every delivery recorded under the webhook name `changelog.<subscription id>`).

The secret signs deliveries, so the store keeps it; it is never shown again after it is
given, in the API or the CLI.
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from pydantic import ValidationError

from pilothouse import errors
from pilothouse.changelog.entries import EVENT
from pilothouse.config import CHANGELOG_WEBHOOK_PREFIX, WebhookSpec
from pilothouse.contracts.subjects import subject_exists
from pilothouse.store import Store, audit
from pilothouse.store import changelog as rows

MIN_SECRET_CHARS = 16


def check_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise errors.InvalidRequest(
            f"url {url[:100]!r} is not an http(s) URL with a host", param="url"
        )
    return url


def subscribe(
    store: Store,
    kind: str,
    name: str,
    *,
    url: str,
    secret: str,
    owner: str | None,
    actor: str,
) -> dict[str, Any]:
    """Subscribe `url` to the changelog of prompt or route `name` (which must exist)."""
    check_url(url)
    if len(secret) < MIN_SECRET_CHARS or not secret.isprintable():
        raise errors.InvalidRequest(
            f"the secret must be at least {MIN_SECRET_CHARS} printable characters: the "
            "receiver checks each delivery's HMAC with it",
            param="secret",
        )
    row = {
        "id": "sub_" + secrets.token_hex(6),
        "subject_kind": kind,
        "subject_name": name,
        "url": url,
        "secret": secret,
        "owner": owner,
        "created_by": actor,
        "created_at": datetime.now(UTC),
    }
    with store.write() as conn:
        subject_exists(conn, kind, name)
        rows.insert_subscription(conn, row)
        audit.record(
            conn,
            actor=actor,
            action="changelog.subscribe",
            target=f"{kind}:{name}",
            after={"id": row["id"], "url": url, "owner": owner},
        )
    return public(row)


def unsubscribe(store: Store, subscription_id: str, *, actor: str) -> dict[str, Any]:
    with store.write() as conn:
        row = rows.get_subscription(conn, subscription_id)
        if row is None or not rows.delete_subscription(conn, subscription_id):
            raise errors.NotFound(
                f"no changelog subscription {subscription_id!r}",
                hint="`pilothouse changelog subscriptions` lists them",
            )
        audit.record(
            conn,
            actor=actor,
            action="changelog.unsubscribe",
            target=f"{row['subject_kind']}:{row['subject_name']}",
            before={"id": subscription_id, "url": row["url"], "owner": row["owner"]},
        )
    return {"removed": True, "id": subscription_id}


def list_subscriptions(store: Store) -> list[dict[str, Any]]:
    with store.connect() as conn:
        return [public(r) for r in rows.all_subscriptions(conn)]


def destination(store: Store, subscription_id: str) -> tuple[str, str] | None:
    """(url, secret) of a subscription, for the webhook sender; None once it is removed."""
    with store.connect() as conn:
        row = rows.get_subscription(conn, subscription_id)
    return (row["url"], row["secret"]) if row else None


def public(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": row["id"],
        row["subject_kind"]: row["subject_name"],
        "url": row["url"],
        "owner": row["owner"],
        "signed": True,
        "webhook": CHANGELOG_WEBHOOK_PREFIX + row["id"],
        "created_by": row["created_by"],
        "created_at": row["created_at"].isoformat(),
    }


def webhook(store: Store, name: str) -> tuple[WebhookSpec, str] | None:
    """The webhook sender's view of subscription webhook `name` (`changelog.<id>`): where
    to send and the secret to sign with; None for other names and removed subscriptions."""
    if not name.startswith(CHANGELOG_WEBHOOK_PREFIX):
        return None
    found = destination(store, name.removeprefix(CHANGELOG_WEBHOOK_PREFIX))
    if found is None:
        return None
    url, secret = found
    try:
        spec = WebhookSpec.model_validate({"name": name, "url": url, "events": [EVENT]})
    except ValidationError:
        return None  # checked when subscribed; a row edited by hand is reported as gone
    return spec, secret
