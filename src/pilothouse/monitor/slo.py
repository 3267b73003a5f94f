"""Service-level objectives and multi-window, multi-burn-rate alerting (the Google SRE
workbook's scheme).

An SLO names a subject (a route, a model alias or a team), an SLI and an objective: the
share of good events over a period (30 days by default).

- `ttft`: of the streamed requests that delivered a first token, those within
  `threshold_ms` (an edge of the TTFT histogram, so the count is exact);
- `availability`: of the requests the gateway owed an answer (client errors and
  cancellations left out), those answered in full (outcome `ok`);
- `signal`: of the answers, those without the named output signal (e.g. `refusal` with
  objective 0.98: at most 2 % refusals).

The burn rate of a window is its bad share divided by the error budget (1 - objective).
An alert needs both windows of a pair above the rate, and the long window at least
`min_events` events: page at 14.4x (1 h and 5 min) or 6x (6 h and 30 min), ticket at 3x
(1 d and 2 h) or 1x (3 d and 6 h).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

from pilothouse.store.tables import TTFT_EDGES_MS
from pilothouse.telemetry.rollups import ttft_good

SLIS = ("ttft", "availability", "signal")
SUBJECT_COLUMN = {"route": "route", "model": "model_alias", "team": "team"}
# An answer's signals a signal SLO may bound: rollup column of the bad events, and of the
# events that could show it.
SIGNALS: dict[str, tuple[str, str]] = {
    "refusal": ("refusal", "answers"),
    "empty": ("empty", "answers"),
    "hedging": ("hedging", "answers"),
    "truncated": ("truncated", "answers"),
    "json_invalid": ("json_invalid", "json_checked"),
    "schema_invalid": ("schema_invalid", "schema_checked"),
    "tool_args_invalid": ("tool_args_invalid", "tool_args_checked"),
}
WINDOWS: dict[str, timedelta] = {
    "5m": timedelta(minutes=5),
    "30m": timedelta(minutes=30),
    "1h": timedelta(hours=1),
    "2h": timedelta(hours=2),
    "6h": timedelta(hours=6),
    "1d": timedelta(days=1),
    "3d": timedelta(days=3),
}


@dataclass(frozen=True, slots=True)
class BurnRule:
    severity: Literal["page", "ticket"]
    rate: float
    long: str
    short: str


RULES = (
    BurnRule("page", 14.4, "1h", "5m"),
    BurnRule("page", 6.0, "6h", "30m"),
    BurnRule("ticket", 3.0, "1d", "2h"),
    BurnRule("ticket", 1.0, "3d", "6h"),
)


class SLOError(ValueError):
    """An SLO that cannot be evaluated as written; the message says why."""


@dataclass(frozen=True, slots=True)
class SLO:
    name: str
    subject_kind: str  # route | model | team
    subject: str
    sli: str
    objective: float
    period_days: int = 30
    threshold_ms: int | None = None
    signal: str | None = None
    min_events: int = 100
    owner: str | None = None
    source: str = "api"  # api | config

    def __post_init__(self) -> None:
        if self.subject_kind not in SUBJECT_COLUMN:
            raise SLOError(f"subject kind must be route, model or team, got {self.subject_kind!r}")
        if self.sli not in SLIS:
            raise SLOError(f"sli must be one of {', '.join(SLIS)}, got {self.sli!r}")
        if not 0 < self.objective < 1:
            raise SLOError(f"objective must be between 0 and 1 (e.g. 0.99), got {self.objective}")
        if not 1 <= self.period_days <= 400:
            raise SLOError(f"period_days must be 1 to 400, got {self.period_days}")
        if self.sli == "ttft" and self.threshold_ms not in TTFT_EDGES_MS:
            raise SLOError(
                f"a ttft SLO's threshold_ms must be one of the TTFT histogram's edges "
                f"({', '.join(map(str, TTFT_EDGES_MS))}), got {self.threshold_ms}"
            )
        if self.sli == "signal" and self.signal not in SIGNALS:
            raise SLOError(f"a signal SLO names one of {', '.join(SIGNALS)}, got {self.signal!r}")

    @property
    def subject_filter(self) -> dict[str, str]:
        return {SUBJECT_COLUMN[self.subject_kind]: self.subject}

    def describe(self) -> str:
        what = {
            "ttft": f"delivered TTFT <= {self.threshold_ms} ms",
            "availability": "answered in full",
            "signal": f"answers without {self.signal}",
        }[self.sli]
        return f"{self.objective:.2%} of {self.subject_kind} {self.subject!r}: {what}"

    def public(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "subject_kind": self.subject_kind,
            "subject": self.subject,
            "sli": self.sli,
            "threshold_ms": self.threshold_ms,
            "signal": self.signal,
            "objective": self.objective,
            "period_days": self.period_days,
            "min_events": self.min_events,
            "owner": self.owner,
            "source": self.source,
            "describes": self.describe(),
        }


def from_spec(spec: Any) -> SLO:
    """An SLO from the config file's `monitoring.slos` entry (config.SLOSpec)."""
    subjects = [(kind, getattr(spec, kind)) for kind in ("route", "model", "team")]
    given = [(kind, value) for kind, value in subjects if value]
    if len(given) != 1:
        raise SLOError("give exactly one subject: route, model or team")
    kind, subject = given[0]
    return SLO(
        name=spec.name,
        subject_kind=kind,
        subject=subject,
        sli=spec.sli,
        objective=spec.objective,
        period_days=spec.period_days,
        threshold_ms=spec.threshold_ms,
        signal=spec.signal,
        min_events=spec.min_events,
        owner=spec.owner,
        source="config",
    )


def columns(slo: SLO) -> tuple[str, ...]:
    """The rollup counters `good_and_total` reads for this SLO."""
    if slo.sli == "ttft":
        return ("ttft_count", *(f"ttft_le_{e}" for e in TTFT_EDGES_MS))
    if slo.sli == "availability":
        return ("requests", "client_error", "client_cancelled", "ok")
    assert slo.signal is not None
    bad, total = SIGNALS[slo.signal]
    checked = {"json_invalid": "json", "schema_invalid": "schema", "tool_args_invalid": "tool_args"}
    if bad in checked:
        return (total, f"{checked[bad]}_valid")
    return (bad, total)


def spans(slo: SLO) -> tuple[timedelta, ...]:
    """Every window `evaluate` reads, all ending now: the period, then WINDOWS."""
    return (timedelta(days=slo.period_days), *WINDOWS.values())


def good_and_total(slo: SLO, totals: Mapping[str, float]) -> tuple[float, float]:
    """(good events, events) in rollup counters summed over a window."""
    if slo.sli == "ttft":
        assert slo.threshold_ms is not None
        return ttft_good(totals, slo.threshold_ms), totals["ttft_count"]
    if slo.sli == "availability":
        owed = totals["requests"] - totals["client_error"] - totals["client_cancelled"]
        return totals["ok"], owed
    assert slo.signal is not None
    bad_column, total_column = SIGNALS[slo.signal]
    total = totals[total_column]
    if bad_column == "json_invalid":
        bad = totals["json_checked"] - totals["json_valid"]
    elif bad_column == "schema_invalid":
        bad = totals["schema_checked"] - totals["schema_valid"]
    elif bad_column == "tool_args_invalid":
        bad = totals["tool_args_checked"] - totals["tool_args_valid"]
    else:
        bad = totals[bad_column]
    return total - bad, total


@dataclass
class Status:
    """An SLO's state now: budget left over its period, and the burn rate per window."""

    slo: SLO
    events: float = 0.0
    good: float = 0.0
    budget_left: float | None = None  # 1.0 untouched, 0 spent, below 0 overspent
    burn: dict[str, float | None] = field(default_factory=dict)
    events_by_window: dict[str, float] = field(default_factory=dict)
    firing: BurnRule | None = None

    def public(self) -> dict[str, Any]:
        return {
            **self.slo.public(),
            "events": self.events,
            "sli_value": self.good / self.events if self.events else None,
            "budget_left": self.budget_left,
            "burn": self.burn,
            "firing": None
            if self.firing is None
            else {
                "severity": self.firing.severity,
                "rate": self.firing.rate,
                "windows": [self.firing.long, self.firing.short],
            },
        }


def evaluate(slo: SLO, totals_for: Any, now: datetime) -> Status:
    """The SLO's status at `now`; `totals_for(since, until)` gives summed rollup counters
    for the SLO's subject (so this stays free of the store)."""
    status = Status(slo)
    budget = 1.0 - slo.objective
    period = totals_for(now - timedelta(days=slo.period_days), now)
    status.good, status.events = good_and_total(slo, period)
    if status.events:
        bad = status.events - status.good
        status.budget_left = 1.0 - bad / (budget * status.events)
    for name, span in WINDOWS.items():
        good, total = good_and_total(slo, totals_for(now - span, now))
        status.events_by_window[name] = total
        status.burn[name] = ((total - good) / total) / budget if total else None
    for rule in RULES:
        long, short = status.burn[rule.long], status.burn[rule.short]
        enough = status.events_by_window[rule.long] >= slo.min_events
        if (
            enough
            and long is not None
            and short is not None
            and long >= rule.rate
            and short >= rule.rate
        ):
            status.firing = rule
            break
    return status
