"""Alerts on-call can trust.

An alert has a signature: kind, subject, signal and direction (`drift|route:support|
refusal|up`). While one is open, the same condition seen again adds an occurrence instead
of a new alert. Closing one takes a disposition — `regression` (a real problem),
`expected_change` (we changed it on purpose) or `noise` (the monitor was wrong) — and a
reason; a signature dismissed as noise three times within fourteen days is listed as
chronically dismissed, so the monitor gets fixed instead of ignored. Every change is an
event in the alert's history.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.exc import IntegrityError

from pilothouse import errors
from pilothouse.store import Store
from pilothouse.store import alerts as rows

DISPOSITIONS = ("regression", "expected_change", "noise")
SEVERITIES = ("page", "ticket", "info")
CHRONIC_TIMES = 3
CHRONIC_DAYS = 14


@dataclass(frozen=True, slots=True)
class Condition:
    """A condition a monitor saw: what would become (or repeat) an alert."""

    kind: str  # slo_burn | drift | eval_failed | eval_drop | eval_stale | fleet ...
    subject: str  # route:support, provider:openai, suite:triage-quality, slo:support-ttft
    signal: str
    direction: str  # up | down | none
    severity: str
    summary: str
    owner: str | None = None
    details: dict[str, Any] | None = None

    @property
    def signature(self) -> str:
        return f"{self.kind}|{self.subject}|{self.signal}|{self.direction}"


def raise_alert(store: Store, condition: Condition, now: datetime) -> tuple[dict[str, Any], bool]:
    """Open an alert for `condition`, or count another occurrence of the open one with the
    same signature; (alert, new)."""
    for _ in range(3):  # two monitors racing on one new signature: one inserts, one adds
        try:
            with store.write() as conn:
                existing = rows.open_by_signature(conn, condition.signature)
                if existing is not None:
                    rows.change(
                        conn,
                        existing["id"],
                        occurrences=existing["occurrences"] + 1,
                        last_seen_at=now,
                        summary=condition.summary,
                        details=condition.details,
                        severity=worst(existing["severity"], condition.severity),
                    )
                    return {**existing, "occurrences": existing["occurrences"] + 1}, False
                alert = {
                    "id": "alt_" + secrets.token_hex(8),
                    "signature": condition.signature,
                    "kind": condition.kind,
                    "subject": condition.subject,
                    "signal": condition.signal,
                    "direction": condition.direction,
                    "severity": condition.severity,
                    "state": "open",
                    "owner": condition.owner,
                    "summary": condition.summary,
                    "details": condition.details,
                    "occurrences": 1,
                    "opened_at": now,
                    "last_seen_at": now,
                }
                rows.insert(conn, alert)
                rows.add_event(
                    conn,
                    alert_id=alert["id"],
                    signature=alert["signature"],
                    at=now,
                    kind="fired",
                    actor="monitor",
                )
                return alert, True
        except IntegrityError:
            continue
    raise errors.Conflict(f"could not record alert {condition.signature!r}")


def worst(*severities: str) -> str:
    """The most urgent of `severities` (page before ticket before info)."""
    return min(
        severities, key=lambda s: SEVERITIES.index(s) if s in SEVERITIES else len(SEVERITIES)
    )


def close(
    store: Store,
    alert_id: str,
    *,
    state: str,
    disposition: str,
    reason: str,
    actor: str,
    now: datetime,
) -> dict[str, Any]:
    """Acknowledge (state `acknowledged`) or resolve (`resolved`) an alert; both need a
    disposition and a reason."""
    if state not in ("acknowledged", "resolved"):
        raise errors.InvalidRequest("state must be acknowledged or resolved", param="state")
    if disposition not in DISPOSITIONS:
        raise errors.InvalidRequest(
            f"disposition must be one of {', '.join(DISPOSITIONS)}", param="disposition"
        )
    if not reason.strip():
        raise errors.InvalidRequest("say why: a reason is required", param="reason")
    with store.write() as conn:
        alert = rows.get(conn, alert_id)
        if alert is None:
            raise errors.NotFound(
                f"no alert {alert_id!r}", hint="`pilothouse alerts ls` lists them"
            )
        if alert["state"] == "resolved":
            raise errors.Conflict(f"alert {alert_id} is already resolved")
        fields: dict[str, Any] = {"state": state, "disposition": disposition, "reason": reason}
        if state == "resolved":
            fields["closed_at"] = now
        rows.change(conn, alert_id, **fields)
        rows.add_event(
            conn,
            alert_id=alert_id,
            signature=alert["signature"],
            at=now,
            kind=state,
            actor=actor,
            disposition=disposition,
            reason=reason,
        )
        return {**alert, **fields}


def clear(store: Store, signature: str, now: datetime) -> dict[str, Any] | None:
    """The condition is gone: resolve its open alert (the monitor's own resolution, with no
    disposition, so it does not count as a dismissal)."""
    with store.write() as conn:
        alert = rows.open_by_signature(conn, signature)
        if alert is None:
            return None
        rows.change(conn, alert["id"], state="resolved", closed_at=now)
        rows.add_event(
            conn, alert_id=alert["id"], signature=signature, at=now, kind="cleared", actor="monitor"
        )
        return alert


def listing(
    store: Store,
    *,
    states: tuple[str, ...] | None = None,
    owner: str | None = None,
    limit: int = 200,
) -> list[dict[str, Any]]:
    with store.connect() as conn:
        return rows.listing(conn, states=states, owner=owner, limit=limit)


def history(store: Store, alert_id: str) -> dict[str, Any]:
    with store.connect() as conn:
        alert = rows.get(conn, alert_id)
        if alert is None:
            raise errors.NotFound(
                f"no alert {alert_id!r}", hint="`pilothouse alerts ls` lists them"
            )
        return {**alert, "events": rows.events(conn, alert_id)}


def chronic(store: Store, now: datetime) -> list[dict[str, Any]]:
    """Signatures dismissed as noise at least CHRONIC_TIMES times in CHRONIC_DAYS days."""
    with store.connect() as conn:
        counted = rows.dismissals(conn, now - timedelta(days=CHRONIC_DAYS), "noise")
    return sorted(
        (
            {"signature": c["signature"], "dismissed_as_noise": c["times"], "last": c["last"]}
            for c in counted
            if c["times"] >= CHRONIC_TIMES
        ),
        key=lambda c: -c["dismissed_as_noise"],
    )
