"""SLOs added through the API: stored, replaced, deleted, each change audited."""

from __future__ import annotations

from datetime import UTC, datetime

from pilothouse import errors
from pilothouse.monitor.slo import SLO
from pilothouse.store import Store, audit
from pilothouse.store import alerts as rows


def store_slo(store: Store, objective: SLO, *, actor: str) -> None:
    with store.begin() as conn:
        rows.put_slo(
            conn,
            {
                "name": objective.name,
                "subject_kind": objective.subject_kind,
                "subject": objective.subject,
                "sli": objective.sli,
                "threshold_ms": objective.threshold_ms,
                "signal": objective.signal,
                "objective": objective.objective,
                "period_days": objective.period_days,
                "min_events": objective.min_events,
                "owner": objective.owner,
                "created_by": actor,
                "created_at": datetime.now(UTC),
            },
        )
        audit.record(
            conn,
            actor=actor,
            action="slo.put",
            target=f"slo:{objective.name}",
            after=objective.public(),
        )


def delete_slo(store: Store, name: str, *, actor: str) -> None:
    with store.begin() as conn:
        if not rows.delete_slo(conn, name):
            raise errors.NotFound(
                f"no SLO {name!r} added through the API", hint="`pilothouse slo ls`"
            )
        audit.record(conn, actor=actor, action="slo.delete", target=f"slo:{name}")
