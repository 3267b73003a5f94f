"""The spend watch: a key's spend as a security signal.

Every monitor interval, for each key that spent anything in the last `window_minutes`,
its cost and tokens per minute in that window are compared with the key's own baseline:
the larger of its daily profile (the average per minute in this hour of the day and the
hours beside it, over `baseline_days`) and its recent level (an average of the two hours
before the window, halving every 30 minutes). Two things make it more suspicious: spend
on a model alias the key never used before (counted twice when it is most of the window),
and a burst (the last minute alone). Above `ratio` times the baseline *and*
`floor_usd_per_minute`, it is an anomaly: an alert (kind `spend_anomaly`), the webhook
event `spend.anomaly`, and, unless the policy says alert-only (or the key has less than
`min_history_hours` of history), the key is suspended on every instance until an admin
restores it (`pilothouse keys restore KEY --reason ...`).

Reads only the per-key per-minute sums (`key_spend`), never raw request rows.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from pilothouse import errors
from pilothouse.clock import Clock
from pilothouse.config import SpendWatchSpec
from pilothouse.monitor.alerts import Condition, raise_alert
from pilothouse.policy import keys as key_policy
from pilothouse.store import Store
from pilothouse.store import key_spend as spend_rows

log = logging.getLogger("pilothouse.spend")
HALF_LIFE_MINUTES = 30.0
RECENT_MINUTES = 120
BURST_DISCOUNT = 3.0  # one minute alone must be this much further above the baseline
NEW_MODEL_SHARE = 0.5
Publish = Callable[[str, dict[str, Any]], Awaitable[object]]


@dataclass(frozen=True, slots=True)
class Verdict:
    key_id: str
    anomalous: bool
    score: float
    usd_per_minute: float
    baseline_usd_per_minute: float
    tokens_per_minute: float
    baseline_tokens_per_minute: float
    new_models: tuple[str, ...] = ()
    new_model_share: float = 0.0
    burst: bool = False
    history_hours: float = 0.0
    may_suspend: bool = False
    reasons: tuple[str, ...] = field(default=())

    def summary(self) -> str:
        text = (
            f"key {self.key_id} spends ${self.usd_per_minute:.2f}/min, {self.score:.1f}x its "
            f"baseline (${self.baseline_usd_per_minute:.2f}/min)"
        )
        return text + (f"; {', '.join(self.reasons)}" if self.reasons else "")


def _minutes(row_minute: datetime) -> int:
    return int(row_minute.timestamp() // 60)


def judge(
    key_id: str,
    rows: Iterable[Mapping[str, Any]],
    now: datetime,
    spec: SpendWatchSpec,
    *,
    watch_after: datetime | None = None,
) -> Verdict:
    """Whether a key's recent spend is anomalous against its own history (pure: `rows` are
    its key_spend rows over the baseline period and the window)."""
    now_minute = _minutes(now)
    window_start = now_minute - spec.window_minutes + 1
    judged_from = _minutes(watch_after) if watch_after is not None else None
    cost: dict[int, float] = {}
    tokens: dict[int, float] = {}
    seen_models: set[str] = set()
    window_models: dict[str, float] = {}
    first: int | None = None
    for row in rows:
        minute = _minutes(row["minute"])
        if minute > now_minute:
            continue
        value, used = (
            float(row["cost_usd"] or 0),
            float((row["prompt_tokens"] or 0) + (row["completion_tokens"] or 0)),
        )
        if minute < window_start:
            first = minute if first is None else min(first, minute)
            seen_models.add(row["model_alias"])
        elif judged_from is not None and minute < judged_from:
            continue  # before a restore: already judged
        else:
            window_models[row["model_alias"]] = window_models.get(row["model_alias"], 0) + value
        cost[minute] = cost.get(minute, 0.0) + value
        tokens[minute] = tokens.get(minute, 0.0) + used
    window = range(window_start, now_minute + 1)
    if judged_from is not None:
        window = range(max(window_start, judged_from), now_minute + 1)
    span = max(1, len(window))
    rate = sum(cost.get(m, 0.0) for m in window) / span
    token_rate = sum(tokens.get(m, 0.0) for m in window) / span
    history = 0.0 if first is None else (window_start - first) / 60
    base = _baseline(cost, first, window_start)
    token_base = _baseline(tokens, first, window_start)
    ratio = max(rate / max(base, 1e-6), token_rate / max(token_base, 1.0) if token_base else 0)
    last = cost.get(now_minute, 0.0) or cost.get(now_minute - 1, 0.0)
    burst_ratio = last / max(base, 1e-6) / BURST_DISCOUNT
    new_models = tuple(
        sorted(m for m in window_models if m not in seen_models and window_models[m] > 0)
    )
    window_total = sum(window_models.values())
    share = sum(window_models[m] for m in new_models) / window_total if window_total else 0.0
    score = max(ratio, burst_ratio) * (2.0 if share >= NEW_MODEL_SHARE else 1.0)
    reasons = []
    if share >= NEW_MODEL_SHARE:
        reasons.append(f"{share:.0%} of it on models it never used ({', '.join(new_models)})")
    if burst_ratio > ratio:
        reasons.append(f"a burst of ${last:.2f} in one minute")
    anomalous = score >= spec.ratio and rate >= spec.floor_usd_per_minute
    return Verdict(
        key_id=key_id,
        anomalous=anomalous,
        score=round(score, 2),
        usd_per_minute=round(rate, 6),
        baseline_usd_per_minute=round(base, 6),
        tokens_per_minute=round(token_rate, 1),
        baseline_tokens_per_minute=round(token_base, 1),
        new_models=new_models,
        new_model_share=round(share, 3),
        burst=burst_ratio > ratio,
        history_hours=round(history, 2),
        may_suspend=history >= spec.min_history_hours,
        reasons=tuple(reasons),
    )


def _baseline(series: Mapping[int, float], first: int | None, window_start: int) -> float:
    """Per minute: the larger of the daily profile (this hour of day and its neighbours)
    and the recent level (EWMA over the two hours before the window)."""
    if first is None:
        return 0.0
    by_hour = [0.0] * 24
    hours_seen = [0] * 24
    for minute, value in series.items():
        if minute < window_start:
            by_hour[(minute // 60) % 24] += value
    for hour in range(first // 60, (window_start - 1) // 60 + 1):
        hours_seen[hour % 24] += 1
    profile = [by_hour[h] / (60 * hours_seen[h]) if hours_seen[h] else 0.0 for h in range(24)]
    now_hour = (window_start // 60) % 24
    seasonal = max(profile[(now_hour + d) % 24] for d in (-1, 0, 1))
    alpha = 1 - 0.5 ** (1 / HALF_LIFE_MINUTES)
    level = 0.0
    start = max(first, window_start - RECENT_MINUTES)
    for minute in range(start, window_start):
        level += alpha * (series.get(minute, 0.0) - level)
    return max(seasonal, level)


class SpendWatch:
    """Runs the judgement for every recently active key (the monitor calls `tick`)."""

    def __init__(
        self,
        store: Store,
        spec: SpendWatchSpec,
        *,
        clock: Clock,
        publish: Publish | None = None,
        announce: Callable[[], Awaitable[object]] | None = None,
    ):
        self.store = store
        self.spec = spec
        self.clock = clock
        self.publish = publish
        self.announce = announce

    async def tick(self, now: float | None = None) -> list[dict[str, Any]]:
        """Judge every active key; suspend, alert and publish; the anomalies found."""
        if not self.spec.enabled:
            return []
        moment = datetime.fromtimestamp(self.clock.now() if now is None else now, UTC)
        found = await asyncio.to_thread(self.evaluate, moment)
        for anomaly in found:
            if self.publish is not None:
                await self.publish("spend.anomaly", anomaly)
        if any(a["suspended"] for a in found) and self.announce is not None:
            await self.announce()
        return found

    def evaluate(self, now: datetime) -> list[dict[str, Any]]:
        spec = self.spec
        since = now - timedelta(days=spec.baseline_days)
        window_from = now.replace(second=0, microsecond=0) - timedelta(
            minutes=spec.window_minutes - 1
        )
        with self.store.connect() as conn:
            active = spend_rows.active_keys(conn, window_from)
        found = []
        for key_id in active:
            try:
                key = key_policy.resolve_key(self.store, key_id)
            except errors.PilothouseError:
                continue  # deleted or damaged: nothing to suspend
            if key.suspended_at is not None:
                continue
            with self.store.connect() as conn:
                rows = spend_rows.read(conn, key_id, since)
            verdict = judge(key_id, rows, now, spec, watch_after=key.spend_watch_after)
            if verdict.anomalous:
                found.append(self._act(verdict, key, now))
        return found

    def _act(self, verdict: Verdict, key: key_policy.ApiKey, now: datetime) -> dict[str, Any]:
        spec = self.spec
        alert_only = (
            spec.action == "alert"
            or key.id in spec.alert_only_keys
            or key.name in spec.alert_only_keys
            or not verdict.may_suspend
        )
        suspended = False
        if not alert_only:
            reason = f"spend anomaly: {verdict.summary()}"
            suspended = key_policy.suspend(self.store, key.id, reason, at=now) is not None
        details = {**asdict(verdict), "suspended": suspended, "key_name": key.name}
        details["new_models"] = list(verdict.new_models)
        details["reasons"] = list(verdict.reasons)
        condition = Condition(
            kind="spend_anomaly",
            subject=f"key:{key.id}",
            signal="cost_per_minute",
            direction="up",
            severity="page",
            summary=verdict.summary() + (" — key suspended" if suspended else " — alert only"),
            details=details,
        )
        raise_alert(self.store, condition, now)
        log.error("spend anomaly: %s", condition.summary, extra={"key_id": key.id})
        return details


def recent_spend(store: Store, key_id: str, now: datetime) -> dict[str, Any]:
    """A key's spend in the last hour and day (by model alias for the day)."""
    with store.connect() as conn:
        rows = spend_rows.read(conn, key_id, now - timedelta(days=1))
    hour_from = now - timedelta(hours=1)

    def total(selected: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        return {
            "requests": sum(r["requests"] for r in selected),
            "tokens": sum(r["prompt_tokens"] + r["completion_tokens"] for r in selected),
            "cost_usd": round(sum(r["cost_usd"] for r in selected), 6),
        }

    models: dict[str, list[Mapping[str, Any]]] = {}
    for row in rows:
        models.setdefault(row["model_alias"], []).append(row)
    return {
        "last_hour": total([r for r in rows if r["minute"] >= hour_from]),
        "last_day": total(rows),
        "last_day_by_model": {alias: total(rs) for alias, rs in sorted(models.items())},
    }
