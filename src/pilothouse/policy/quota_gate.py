"""The gateway's one quota call, and what a request learns about its quotas.

`QuotaGate.admit` runs between resolve and call: it reserves what the request may use at
most (one request; its prompt's token bound plus `max_tokens`; their price) against every
policy that applies, refuses it (429, `quota_exceeded`) when a hard limit would be passed,
and says whether a soft limit is passed (a warning, and the policy's degradation). After
the call, `settle` replaces the reservation with the real usage, or releases it when the
call failed having used nothing. Every answer carries the remaining budget and its reset:
the IETF `RateLimit-Policy` / `RateLimit` headers for request quotas, and ours for tokens
and USD.

Crossing 75 % and 90 % of a hard limit publishes `quota.warning.<percent>`; reaching or
being refused at it, `quota.exceeded` (once per window and subject in each process).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from pilothouse import errors
from pilothouse.clock import Clock
from pilothouse.errors import QuotaExceeded
from pilothouse.policy.quota_backends import (
    BackendDown,
    Charge,
    InProcessBackend,
    QuotaBackend,
    refused,
)
from pilothouse.policy.quotas import UNITS_PER, WINDOW_SECONDS, QuotaPolicy

log = logging.getLogger("pilothouse.quotas")
WARN_AT = (75, 90)
# The most one request reserves or settles in one counter: a client's max_tokens can make
# a bound past any 64-bit integer, which no backend could count; every hard limit is far
# below this (2**53 nano-dollars is $9M), so a clamped request is refused all the same.
MAX_UNITS = 2**53
Notify = Callable[[str, dict[str, Any]], None]


@dataclass(frozen=True, slots=True)
class UsageBound:
    """The most a request may use: its prompt's token bound, its output cap (None: no
    cap was set, so only the prompt is reserved) and their price in nano-dollars."""

    prompt_tokens: int
    output_tokens: int | None
    cost_units: int

    @property
    def tokens(self) -> int:
        return self.prompt_tokens + (self.output_tokens or 0)


@dataclass(slots=True)
class Admission:
    """What `admit` decided for one request; `settle` takes it back."""

    charges: list[Charge]
    soft: list[Charge] = field(default_factory=list)  # charges past their soft limit
    degrade_to: str | None = None
    max_tokens: int | None = None
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)
    settled: bool = False

    @property
    def degraded(self) -> bool:
        return self.degrade_to is not None or self.max_tokens is not None


def amount_for(dimension: str, bound: UsageBound) -> int:
    """What a request reserves in a counter of `dimension` (at most MAX_UNITS)."""
    if dimension == "requests":
        return 1
    return min(bound.tokens if dimension == "tokens" else bound.cost_units, MAX_UNITS)


def display(dimension: str, units: float) -> str:
    if dimension == "cost":
        usd = units / UNITS_PER["cost"]
        return f"${usd:,.2f}" if usd >= 1 or usd == 0 else f"${usd:.6f}".rstrip("0")
    return f"{int(units):,} {dimension}"


def in_unit(dimension: str, units: int) -> float | int:
    return units / UNITS_PER["cost"] if dimension == "cost" else units


class QuotaGate:
    def __init__(
        self,
        backend: QuotaBackend,
        *,
        clock: Clock,
        notify: Notify | None = None,
        count: Callable[[str], None] | None = None,
    ):
        self.backend = backend
        self.clock = clock
        self._notify = notify or (lambda event, payload: None)
        self._count = count or (lambda decision: None)
        self._told: set[tuple[str, ...]] = set()
        # (policy, window, subject) -> its counter slices, when they were computed, and
        # when they change (the window's reset, or a rolling window's next slice).
        self._slices: dict[tuple[str, str, bool, str], tuple[tuple[str, ...], float, float]] = {}

    def charges(
        self, applicable: Sequence[tuple[QuotaPolicy, str]], bound: UsageBound, now: float
    ) -> list[Charge]:
        out = []
        known = self._slices
        for policy, subject in applicable:
            cached = (policy.name, policy.window, policy.rolling, subject)
            found = known.get(cached)
            if found is None or not found[1] <= now < found[2]:
                ids, resets_at = policy.bucket_ids(now)
                prefix = f"pilothouse:quota:{policy.name}:{policy.window_label}:{subject}:"
                if len(known) > 100_000:
                    known.clear()
                found = known[cached] = (tuple(prefix + str(i) for i in ids), now, resets_at)
            out.append(
                Charge(policy, subject, found[0], amount_for(policy.dimension, bound), found[2])
            )
        return out

    async def admit(
        self, applicable: Sequence[tuple[QuotaPolicy, str]], bound: UsageBound
    ) -> Admission | None:
        """Reserve `bound` against each applicable policy; QuotaExceeded past a hard limit.
        None when nothing was reserved (no policy, or the backend is down and every
        policy fails open)."""
        if not applicable:
            return None
        now = self.clock.now()
        charges = self.charges(applicable, bound, now)
        try:
            if isinstance(self.backend, InProcessBackend):  # no await: nothing to wait for
                refused_at = self.backend.reserve_now(charges)
            else:
                refused_at = await self.backend.reserve(charges)
        except BackendDown as exc:
            return self._backend_down(charges, exc)
        if refused_at is not None:
            self._count("refused")
            raise self._refusal(charges[refused_at], now)
        admission = Admission(charges)
        for charge in charges:
            policy = charge.policy
            if policy.soft_units is not None and charge.used >= policy.soft_units:
                admission.soft.append(charge)
                if admission.degrade_to is None:
                    admission.degrade_to = policy.degrade_to
                if policy.degrade_max_tokens is not None:
                    admission.max_tokens = min(
                        admission.max_tokens or policy.degrade_max_tokens,
                        policy.degrade_max_tokens,
                    )
            self._crossings(charge, now)
        self._answer_headers(admission, now)
        self._count("soft" if admission.soft else "allowed")
        return admission

    def _answer_headers(self, admission: Admission, now: float) -> None:
        admission.headers = self.headers(admission.charges, now, taken=True)
        if admission.soft:
            first = admission.soft[0]
            used = display(first.policy.dimension, first.used)
            admission.headers.append(
                (
                    b"x-pilothouse-quota-warning",
                    f"quota {first.policy.name!r} is past its soft limit ({used} used)".encode(),
                )
            )

    async def rebound(self, admission: Admission, bound: UsageBound) -> None:
        """The request changed (degraded): move each reservation to the new bound."""
        deltas = []
        for charge in admission.charges:
            amount = amount_for(charge.policy.dimension, bound)
            if amount != charge.amount:
                deltas.append((charge.slices[0], amount - charge.amount, charge.policy.ttl_seconds))
                charge.amount = amount
        try:
            await self.backend.adjust(deltas)
        except BackendDown as exc:
            log.error("could not move a quota reservation (kept as it was): %s", exc)
        self._answer_headers(admission, self.clock.now())

    async def settle(
        self,
        admission: Admission,
        *,
        used_anything: bool,
        tokens: int,
        cost_usd: float,
    ) -> None:
        """Replace the reservation with the real usage, or release it (the call failed
        and used nothing). Never raises: a lost correction is logged and counted."""
        if admission.settled:
            return
        admission.settled = True
        deltas = []
        for charge in admission.charges:
            dimension = charge.policy.dimension
            if not used_anything:
                actual = 0
            elif dimension == "requests":
                actual = 1
            elif dimension == "tokens":
                actual = tokens
            else:
                actual = math.ceil(round(cost_usd * UNITS_PER["cost"], 3))
            actual = min(actual, MAX_UNITS)
            if actual != charge.amount:
                deltas.append((charge.slices[0], actual - charge.amount, charge.policy.ttl_seconds))
        try:
            await self.backend.adjust(deltas)
        except BackendDown as exc:
            self._count("settle_failed")
            log.error("could not reconcile a quota reservation: %s", exc)

    async def usage(self, applicable: Sequence[tuple[QuotaPolicy, str]]) -> list[dict[str, Any]]:
        """Where each applicable policy stands now (for `keys usage`)."""
        now = self.clock.now()
        charges = self.charges(applicable, UsageBound(0, 0, 0), now)
        await self.backend.peek(charges)
        return [self._state(c, now) for c in charges]

    # ------------------------------------------------------------------ answers

    def headers(
        self, charges: Sequence[Charge], now: float, *, taken: bool
    ) -> list[tuple[bytes, bytes]]:
        """RateLimit-Policy / RateLimit for request quotas; ours for tokens and USD (the
        tightest policy of each)."""
        policies, states = [], []
        tightest: dict[str, tuple[int, int]] = {}
        for charge in charges:
            policy = charge.policy
            limit = policy.hard_units if policy.hard_units is not None else policy.soft_units
            assert limit is not None
            used = charge.used + (charge.amount if taken else 0)
            remaining = max(0, limit - used)
            reset = max(0, math.ceil(charge.resets_at - now))
            if policy.dimension == "requests":
                window = _window_seconds(policy, charge.resets_at, now)
                policies.append(f'"{policy.name}";q={limit};w={window}')
                states.append(f'"{policy.name}";r={remaining};t={reset}')
            elif policy.dimension not in tightest or remaining < tightest[policy.dimension][0]:
                tightest[policy.dimension] = (remaining, reset)
        out = []
        if policies:
            out.append((b"ratelimit-policy", ", ".join(policies).encode()))
            out.append((b"ratelimit", ", ".join(states).encode()))
        if "tokens" in tightest:
            remaining, reset = tightest["tokens"]
            out.append((b"x-pilothouse-quota-tokens-remaining", str(remaining).encode()))
            out.append((b"x-pilothouse-quota-tokens-reset", str(reset).encode()))
        if "cost" in tightest:
            remaining, reset = tightest["cost"]
            usd = f"{remaining / UNITS_PER['cost']:.6f}"
            out.append((b"x-pilothouse-quota-usd-remaining", usd.encode()))
            out.append((b"x-pilothouse-quota-usd-reset", str(reset).encode()))
        return out

    def _state(self, charge: Charge, now: float) -> dict[str, Any]:
        policy, dimension = charge.policy, charge.policy.dimension
        hard, soft = policy.hard_units, policy.soft_units
        limit = hard if hard is not None else soft
        return {
            "quota": policy.name,
            "subject": charge.subject,
            "dimension": dimension,
            "window": policy.window_label,
            "used": in_unit(dimension, charge.used),
            "soft_limit": policy.soft_limit,
            "hard_limit": policy.hard_limit,
            "remaining": in_unit(dimension, max(0, (limit or 0) - charge.used)),
            "resets_at": _iso(charge.resets_at),
            "state": "exceeded"
            if hard is not None and charge.used >= hard
            else "soft"
            if soft is not None and charge.used >= soft
            else "ok",
        }

    def _refusal(self, charge: Charge, now: float) -> QuotaExceeded:
        policy, dimension = charge.policy, charge.policy.dimension
        assert policy.hard_units is not None
        resets_at = _iso(charge.resets_at)
        limit, used = display(dimension, policy.hard_units), display(dimension, charge.used)
        per = f"per {policy.window}" if policy.rolling else f"a {policy.window}"
        if charge.used >= policy.hard_units:
            why = f"{used} of {limit} used"
        else:
            why = (
                f"{used} of {limit} used, and this request may use up to "
                f"{display(dimension, charge.amount)}"
            )
        self._tell("quota.exceeded", charge, now, refused=True)
        retry_after = max(1, math.ceil(charge.resets_at - now))
        headers = {"retry-after": str(retry_after)}
        for name, value in self.headers([charge], now, taken=False):
            headers[name.decode()] = value.decode()
        return QuotaExceeded(
            f"quota {policy.name!r} ({charge.subject}: {limit} {per}) is exhausted: {why}; "
            f"it resets at {resets_at}",
            details={
                "quota": policy.name,
                "subject": charge.subject,
                "dimension": dimension,
                "window": policy.window_label,
                "limit": in_unit(dimension, policy.hard_units),
                "used": in_unit(dimension, charge.used),
                "requested": in_unit(dimension, charge.amount),
                "resets_at": resets_at,
                "display_message": (
                    f"You have reached the {policy.window_label} limit of {limit}. "
                    f"It resets at {resets_at[11:16]} UTC on {resets_at[:10]}."
                ),
            },
            headers=headers,
        )

    def _crossings(self, charge: Charge, now: float) -> None:
        hard = charge.policy.hard_units
        if not hard:
            return
        before, after = charge.used, charge.used + charge.amount
        if after < hard * WARN_AT[0] / 100:
            return  # below the first line: the usual case
        for percent in WARN_AT:
            line = hard * percent / 100
            if before < line <= after:
                self._tell(f"quota.warning.{percent}", charge, now)
        if before < hard <= after:
            self._tell("quota.exceeded", charge, now)

    def _tell(self, event: str, charge: Charge, now: float, *, refused: bool = False) -> None:
        once = (event, charge.policy.name, charge.subject, charge.slices[0])
        if once in self._told:
            return
        if len(self._told) > 50_000:
            self._told.clear()
        self._told.add(once)
        state = self._state(charge, now)
        state["used"] = in_unit(
            charge.policy.dimension, charge.used + (0 if refused else charge.amount)
        )
        self._notify(event, {**state, "refused": refused})

    def _backend_down(self, charges: list[Charge], exc: BackendDown) -> Admission | None:
        closed = [c.policy.name for c in charges if c.policy.on_backend_down == "closed"]
        minute = int(self.clock.now() // 60)
        if ("backend_down", str(minute)) not in self._told:
            self._told.add(("backend_down", str(minute)))
            log.error("quota counters unreachable (%s): %s", self.backend.name, exc)
            self._notify(
                "quota.backend_down",
                {"backend": self.backend.name, "error": str(exc)[:300], "fail_closed": closed},
            )
        if closed:
            self._count("fail_closed")
            raise errors.ServiceUnavailable(
                f"quota counters are unreachable and quota {closed[0]!r} fails closed, so "
                "this request was not served",
                hint="retry shortly",
                code="quota_backend_unavailable",
                headers={"retry-after": "1"},
            )
        self._count("fail_open")
        return None


def _window_seconds(policy: QuotaPolicy, resets_at: float, now: float) -> int:
    if policy.window == "month" and not policy.rolling:
        return max(1, math.ceil(resets_at - now))  # what is left of this calendar month
    return WINDOW_SECONDS[policy.window]


def _iso(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


__all__ = ["Admission", "QuotaExceeded", "QuotaGate", "UsageBound", "refused"]
