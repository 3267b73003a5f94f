"""The monitor: every `evaluate_interval_seconds`, one instance of the deployment (it holds
the `monitor` lease; every instance on SQLite, where there is only one) evaluates the SLOs
and looks for drift, raises and clears alerts, and sends the notifications, grouped.

Notifications: every open alert not yet notified, whoever raised it (SLOs, drift,
scheduled suites, the spend watch, quotas), is read from the store; once the oldest has
waited `group_wait_seconds` they go out grouped by owner, one message each; an alert
still open is sent again every `repeat_interval_seconds`. Each goes through the one
webhook sender as the event `alert.<severity>.<owner>` (subscribe to `alert.*`,
`alert.page.*`, `alert.*.payments`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.exc import IntegrityError

from pilothouse.clock import Clock
from pilothouse.config import MonitoringSpec
from pilothouse.conversations.stored import StoredResponses
from pilothouse.monitor import alerts, drift, slo
from pilothouse.monitor.alerts import Condition
from pilothouse.monitor.scheduler import EvalScheduler
from pilothouse.monitor.spend import SpendWatch
from pilothouse.store import Store
from pilothouse.store import alerts as alert_rows
from pilothouse.store import key_spend as spend_rows
from pilothouse.store import request_log as log_rows
from pilothouse.store import rollups as rollup_rows

log = logging.getLogger("pilothouse.monitor")
LEASE = "monitor"
PRUNE_EVERY_SECONDS = 3600.0
PRUNE_BATCH = 5000
Publish = Callable[[str, dict[str, Any]], Awaitable[object]]


def _utc(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


class Monitor:
    def __init__(
        self,
        store: Store,
        spec: MonitoringSpec,
        *,
        clock: Clock,
        publish: Publish | None = None,
        owners: Callable[[], Mapping[str, str | None]] = dict,
        shared: bool = False,
        scheduler: EvalScheduler | None = None,
        stored_responses: StoredResponses | None = None,
    ):
        self.store = store
        self.stored_responses = stored_responses  # pruned with the rest (its own retention)
        self.spec = spec
        self.clock = clock
        self.publish = publish
        self.owners = owners  # "route:x" / "provider:y" → owner
        self.shared = shared
        self.scheduler = scheduler
        self.holder = "instance-" + secrets.token_hex(6)
        self.config_slos = [slo.from_spec(s) for s in spec.slos]
        self._task: asyncio.Task[None] | None = None
        self.last_statuses: list[slo.Status] = []
        self._pruned_at: float | None = None
        self.spend_watch: SpendWatch | None = None  # set by the server (it can suspend keys)

    # ------------------------------------------------------------------ running

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="monitor")

    async def close(self) -> None:
        if self.scheduler is not None:
            await self.scheduler.close()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.spec.evaluate_interval_seconds)
            try:
                await self.tick()
            except Exception:  # the monitor must outlive any single failure
                log.exception("monitor evaluation failed; it runs again next interval")

    async def tick(self) -> list[dict[str, Any]]:
        """One evaluation (if this instance holds the lease); the alerts it raised."""
        now = self.clock.now()
        if self.shared and not await asyncio.to_thread(self._lease, now):
            return []
        raised = await asyncio.to_thread(self.evaluate, _utc(now))
        if self.scheduler is not None:
            raised += await self.scheduler.tick()
        if self.spend_watch is not None:
            try:
                await self.spend_watch.tick(now)
            except Exception:
                log.exception("the spend watch failed; it runs again next interval")
        await self.notify(now)
        if self._pruned_at is None or now - self._pruned_at >= PRUNE_EVERY_SECONDS:
            self._pruned_at = now
            await asyncio.to_thread(self.prune, _utc(now))
        return raised

    def prune(self, now: datetime) -> dict[str, int]:
        """Retention: raw request-log rows past `raw_retention_days`, rollups past
        `rollup_retention_days` (each set on its own: charts and SLOs read rollups only),
        stored responses past `responses.retention_days`."""
        spec = self.spec
        raw_before = now - timedelta(days=spec.raw_retention_days)
        deleted = {"request_log": 0, "request_rollups": 0, "key_spend": 0, "stored_responses": 0}
        while True:
            with self.store.begin() as conn:
                gone = log_rows.prune(conn, raw_before, PRUNE_BATCH)
            deleted["request_log"] += gone
            if gone < PRUNE_BATCH:
                break
        with self.store.begin() as conn:
            deleted["request_rollups"] = rollup_rows.prune(
                conn, now - timedelta(days=spec.rollup_retention_days)
            )
            # The spend watch reads `baseline_days`; a day more is kept for `keys usage`.
            deleted["key_spend"] = spend_rows.prune(
                conn, now - timedelta(days=max(spec.spend_watch.baseline_days + 1, 2))
            )
        if self.stored_responses is not None:
            deleted["stored_responses"] = self.stored_responses.prune(now)
        if any(deleted.values()):
            log.info("retention: pruned %s", deleted, extra={"pruned": deleted})
        return deleted

    def _lease(self, now: float) -> bool:
        until = _utc(now + self.spec.evaluate_interval_seconds * 3)
        try:
            with self.store.begin() as conn:
                return alert_rows.take_lease(conn, LEASE, self.holder, _utc(now), until)
        except IntegrityError:
            return False  # another instance took it first

    # ------------------------------------------------------------------ evaluation

    def slos(self) -> list[slo.SLO]:
        """The config file's SLOs and those added through the API."""
        with self.store.connect() as conn:
            stored = alert_rows.all_slos(conn)
        out = list(self.config_slos)
        names = {s.name for s in out}
        for row in stored:
            if row["name"] in names:
                continue  # the config file's wins: it is what the deployment declares
            out.append(
                slo.SLO(
                    name=row["name"],
                    subject_kind=row["subject_kind"],
                    subject=row["subject"],
                    sli=row["sli"],
                    objective=row["objective"],
                    period_days=row["period_days"],
                    threshold_ms=row["threshold_ms"],
                    signal=row["signal"],
                    min_events=row["min_events"],
                    owner=row["owner"],
                )
            )
        return out

    def statuses(self, now: datetime) -> list[slo.Status]:
        out = []
        for objective in self.slos():
            # Every window of the SLO ends now: all of them in two queries.
            spans = slo.spans(objective)
            with self.store.connect() as conn:
                summed = rollup_rows.nested_sums(
                    conn, now, spans, slo.columns(objective), **objective.subject_filter
                )
            by_since = {now - span: totals for span, totals in zip(spans, summed, strict=True)}

            def totals_for(
                since: datetime, until: datetime, known: Mapping[datetime, Any] = by_since
            ) -> Mapping[str, float]:
                return known[since]

            out.append(slo.evaluate(objective, totals_for, now))
        return out

    def evaluate(self, now: datetime) -> list[dict[str, Any]]:
        """SLO burn and drift at `now`: raise what fires, clear what stopped."""
        raised: list[dict[str, Any]] = []
        owners = self.owners()
        self.last_statuses = self.statuses(now)
        for status in self.last_statuses:
            objective = status.slo
            condition = Condition(
                kind="slo_burn",
                subject=f"slo:{objective.name}",
                signal=objective.sli,
                direction="up",
                severity=status.firing.severity if status.firing else "ticket",
                summary="",
                owner=objective.owner
                or owners.get(f"{objective.subject_kind}:{objective.subject}"),
            )
            if status.firing is None:
                alerts.clear(self.store, condition.signature, now)
                continue
            rule = status.firing
            burn = status.burn[rule.long] or 0.0
            summary = (
                f"SLO {objective.name} ({objective.describe()}) is burning its error budget "
                f"{burn:.1f}x over {rule.long} (and {status.burn[rule.short] or 0:.1f}x over "
                f"{rule.short}); {max(status.budget_left or 0.0, 0.0):.0%} of the budget left"
            )
            details = status.public()
            alert, new = alerts.raise_alert(
                self.store,
                Condition(**{**_fields(condition), "summary": summary, "details": details}),
                now,
            )
            if new:
                raised.append(alert)
        raised += self._drift(now, owners)
        return raised

    def _drift(self, now: datetime, owners: Mapping[str, str | None]) -> list[dict[str, Any]]:
        settings = drift.DriftSettings(**self.spec.drift.model_dump())
        with self.store.connect() as conn:
            history_start = rollup_rows.first_minute(conn)
        (cur_since, cur_until), (base_since, base_until) = drift.windows(
            now, settings, history_start
        )
        raised = []
        for column, prefix in (("route", "route"), ("provider", "provider")):
            with self.store.connect() as conn:
                subjects = {
                    row[column]
                    for row in rollup_rows.read(conn, cur_since, cur_until)
                    if row[column]
                }
            for subject in sorted(subjects):
                with self.store.connect() as conn:
                    current = rollup_rows.sums(conn, cur_since, cur_until, **{column: subject})
                    baseline = rollup_rows.sums(conn, base_since, base_until, **{column: subject})
                found = {f.signal: f for f in drift.detect(current, baseline, settings)}
                name = f"{prefix}:{subject}"
                for signal in (*drift.RATES, "length", "ttft"):
                    finding = found.get(signal)
                    for direction in ("up", "down"):
                        condition = Condition(
                            kind="drift",
                            subject=name,
                            signal=signal,
                            direction=direction,
                            severity="ticket",
                            summary=finding.summary(name) if finding else "",
                            owner=owners.get(name),
                            details=finding.public() if finding else None,
                        )
                        if finding is not None and finding.direction == direction:
                            alert, new = alerts.raise_alert(self.store, condition, now)
                            if new:
                                raised.append(alert)
                        elif current["answers"] >= settings.min_samples:
                            alerts.clear(self.store, condition.signature, now)
        return raised

    # ------------------------------------------------------------------ notifications

    async def notify(self, now: float) -> None:
        """Send new alerts once the oldest has waited; repeat the ones still open."""
        if self.publish is None:
            return
        fresh, due = await asyncio.to_thread(self._to_send, now)
        for owner, group in fresh.items():
            await self._send(owner, group, repeat=False, now=now)
        for owner, group in due.items():
            await self._send(owner, group, repeat=True, now=now)

    def _to_send(
        self, now: float
    ) -> tuple[dict[str | None, list[dict[str, Any]]], dict[str | None, list[dict[str, Any]]]]:
        """(new alerts by owner, once the oldest has waited; repeats due, by owner)."""
        fresh: dict[str | None, list[dict[str, Any]]] = {}
        with self.store.connect() as conn:
            waiting = alert_rows.unnotified(conn)
        if waiting and min(a["opened_at"] for a in waiting) <= _utc(
            now - self.spec.group_wait_seconds
        ):
            for alert in waiting:
                fresh.setdefault(alert["owner"], []).append(alert)
        return fresh, self._due_repeats(now)

    def _due_repeats(self, now: float) -> dict[str | None, list[dict[str, Any]]]:
        cutoff = _utc(now - self.spec.repeat_interval_seconds)
        due: dict[str | None, list[dict[str, Any]]] = {}
        for alert in alerts.listing(self.store, states=("open",)):
            notified = alert["notified_at"]
            if notified is not None and notified < cutoff:
                due.setdefault(alert["owner"], []).append(alert)
        return due

    async def _send(
        self, owner: str | None, group: list[dict[str, Any]], *, repeat: bool, now: float
    ) -> None:
        assert self.publish is not None
        severity = alerts.worst(*(a["severity"] for a in group))
        lines = [a["summary"] for a in group]
        payload = {
            "message": ("still open: " if repeat else "") + "; ".join(lines),
            "owner": owner,
            "severity": severity,
            "repeat": repeat,
            "alerts": [_public(a) for a in group],
        }
        try:
            await self.publish(f"alert.{severity}.{owner or 'unowned'}", payload)
        except Exception:
            log.exception("could not hand alerts to the webhook sender")
            return
        await asyncio.to_thread(self._mark_notified, [a["id"] for a in group], now)

    def _mark_notified(self, ids: list[str], now: float) -> None:
        with self.store.begin() as conn:
            for alert_id in ids:
                alert_rows.change(conn, alert_id, notified_at=_utc(now))


def _fields(condition: Condition) -> dict[str, Any]:
    return {
        name: getattr(condition, name)
        for name in (
            "kind",
            "subject",
            "signal",
            "direction",
            "severity",
            "summary",
            "owner",
            "details",
        )
    }


def _public(alert: Mapping[str, Any]) -> dict[str, Any]:
    return {
        k: (v.isoformat() if isinstance(v, datetime) else v)
        for k, v in alert.items()
        if k not in ("details",)
    }
