"""One request's attempts over an alias's deployments: which deployment to try next, what
each attempt's outcome does to that deployment's health, and when to stop.

The gateway runs the loop (`next` → send → `failed` or `answered`) around its one send;
this decides. A request is retried on the next deployment when its attempt failed before
anything reached the client, within `max_attempts` and the alias's deadline. Each
deployment is tried at most once per request; an open breaker is skipped.

When nothing is left: an alias with one deployment answers with that attempt's own error
(429, 502, 504 ... as the provider failed); otherwise, or when no attempt could be made
at all, a 503 naming the alias, with Retry-After (`NoHealthyDeployment`).
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Any, TypeVar

from pilothouse.fleet import choice
from pilothouse.fleet.deployments import Deployment, ModelAlias
from pilothouse.fleet.health import client_caused
from pilothouse.providers.types import ErrorClass, OutputSample, UpstreamError
from pilothouse.telemetry import signals as output_signals
from pilothouse.telemetry.signals import Signals

T = TypeVar("T")
NO_HEALTHY_DEPLOYMENT = "no_healthy_deployment"


class NoHealthyDeployment(UpstreamError):
    """No deployment of the alias could answer: 503 with Retry-After, naming the alias and
    each attempt."""

    def __init__(self, alias: str, message: str, retry_after_seconds: float, attempts: list[Any]):
        super().__init__(
            NO_HEALTHY_DEPLOYMENT,
            message,
            provider="",
            status=503,
            retry_after=str(max(1, math.ceil(retry_after_seconds))),
        )
        self.hint = "retry after the time in Retry-After; `pilothouse fleet status` shows why"
        self.details = {"model": alias, "attempts": attempts}


@dataclass(slots=True)
class Attempt:
    deployment: Deployment
    started: float  # perf_counter
    timeout_seconds: float | None  # the deployment's own, cut to what the deadline leaves
    judged: bool = False  # failed or answered: its outcome is recorded

    def latency_ms(self) -> float:
        return (time.perf_counter() - self.started) * 1000


async def bounded(attempt: Attempt, call: Awaitable[T]) -> T:
    """Await `call` within the attempt's timeout (a TIMEOUT UpstreamError past it)."""
    if attempt.timeout_seconds is None:
        return await call
    try:
        async with asyncio.timeout(attempt.timeout_seconds):
            return await call
    except TimeoutError:
        raise timed_out(attempt) from None


def timed_out(attempt: Attempt) -> UpstreamError:
    d = attempt.deployment
    return UpstreamError(
        ErrorClass.TIMEOUT,
        f"deployment {d.id} did not answer within {attempt.timeout_seconds:g} s",
        provider=d.provider_name,
    )


class Failover:
    """The attempts of one request. `started` is the request's admission (perf_counter)."""

    __slots__ = (
        "_index",
        "_last_error",
        "_order",
        "_skipped",
        "_started",
        "_tried",
        "alias",
        "body",
        "current",
        "signals",
    )

    def __init__(self, alias: ModelAlias, body: dict[str, Any], started: float):
        self.alias = alias
        self.body = body
        self._started = started
        self._order = choice.order(alias)
        self._index = 0
        self._skipped: list[Deployment] = []
        self._last_error: UpstreamError | None = None
        self.current: Attempt | None = None
        self.signals: Signals | None = None  # of the answer last judged
        self._tried: list[tuple[str, str | None, float]] = []  # deployment, error, latency

    @property
    def count(self) -> int:
        """Attempts made so far."""
        return len(self._tried)

    @property
    def tried(self) -> list[dict[str, Any]]:
        """Every attempt so far: deployment, error_class (None: it answered), latency_ms."""
        return [
            {"deployment": d, "error_class": e, "latency_ms": round(ms, 1)}
            for d, e, ms in self._tried
        ]

    # ------------------------------------------------------------------ choice

    def next(self) -> Attempt:
        """The next deployment to try; raises the request's error when none is left."""
        alias = self.alias
        remaining = self._remaining_seconds()
        if len(self._tried) < alias.max_attempts and (remaining is None or remaining > 0):
            order = self._order
            while self._index < len(order):
                deployment = order[self._index]
                self._index += 1
                if deployment.health.breaker.admit():
                    timeout = deployment.timeout_seconds
                    if remaining is not None:
                        timeout = remaining if timeout is None else min(timeout, remaining)
                    self.current = Attempt(deployment, time.perf_counter(), timeout)
                    return self.current
                self._skipped.append(deployment)
        raise self._exhausted(remaining)

    def can_continue(self) -> bool:
        """Could another attempt follow (budget, deadline, a deployment not open)?"""
        if len(self._tried) >= self.alias.max_attempts:
            return False
        remaining = self._remaining_seconds()
        if remaining is not None and remaining <= 0:
            return False
        return any(d.health.breaker.available() for d in self._order[self._index :])

    def _remaining_seconds(self) -> float | None:
        deadline = self.alias.deadline_seconds
        if deadline is None:
            return None
        return deadline - (time.perf_counter() - self._started)

    # ------------------------------------------------------------------ outcomes

    def failed(self, attempt: Attempt, exc: UpstreamError) -> None:
        """Record a failed attempt. Raises `exc` when no other deployment would answer
        differently (the provider refused the request itself)."""
        self._log(attempt, exc.error_class)
        self.signals = None  # whatever an earlier attempt said, this request did not answer
        health = attempt.deployment.health
        if client_caused(exc):
            health.breaker.succeeded()  # it answered: reachable, just not for this request
            raise exc
        health.failed(exc.error_class, _seconds(exc.retry_after))
        self._last_error = exc

    def answered(
        self,
        attempt: Attempt,
        sample: OutputSample | None,
        finish_reason: str | None,
        *,
        may_retry: bool = True,
    ) -> bool:
        """A 200 answer: True to deliver it; False when it failed semantically
        (telemetry/signals.py) and another deployment may answer instead. The last one left is
        delivered as it is (it is a well-formed answer), still counted as a failure."""
        deployment = attempt.deployment
        if sample is None:  # embeddings: nothing to judge
            deployment.health.succeeded(attempt.latency_ms())
            self._log(attempt, None)
            return True
        self.signals = output_signals.compute(self.body, sample, finish_reason)
        if len(self.alias.deployments) > 1:  # signals are compared between peers only
            deployment.signals.add(self.signals)
        verdict = self.signals.failure()
        if verdict is None:
            deployment.health.succeeded(attempt.latency_ms())
            self._log(attempt, None)
            return True
        error_class, why = verdict
        # A breaker moves traffic elsewhere and spares a dead upstream. With one deployment
        # there is no elsewhere and the upstream is alive: opening it would turn some unusable
        # answers into no answers at all. Health still counts it (degraded, owners told).
        deployment.health.failed(error_class, trips=len(self.alias.deployments) > 1)
        self._log(attempt, error_class)
        if may_retry and self.can_continue():
            self._last_error = UpstreamError(
                error_class,
                f"provider {deployment.provider_name!r} answered unusably: {why}",
                provider=deployment.provider_name,
            )
            return False
        return True

    def abandoned(self, attempt: Attempt) -> None:
        """The attempt was cancelled (the client left, the instance stopped): no verdict."""
        if attempt.judged:
            return
        attempt.deployment.health.breaker.release()
        self._log(attempt, "cancelled")

    def log(self) -> list[dict[str, Any]] | None:
        """Every attempt for the request log; None when the first one simply answered."""
        if len(self._tried) == 1 and self._tried[0][1] is None:
            return None
        return self.tried or None

    def _log(self, attempt: Attempt, error_class: str | None) -> None:
        attempt.judged = True
        self._tried.append((attempt.deployment.id, error_class, attempt.latency_ms()))

    # ------------------------------------------------------------------ the end

    def _exhausted(self, remaining: float | None) -> UpstreamError:
        alias = self.alias
        if len(alias.deployments) == 1 and self._last_error is not None:
            return self._last_error
        waits = [d.health.breaker.retry_after_seconds() for d in alias.deployments]
        waits = [w for w in waits if w > 0] or [1.0]
        tried = self.tried
        parts = [f"{a['deployment']}: {a['error_class']}" for a in tried]
        parts += [f"{d.id}: breaker open" for d in self._skipped]
        if remaining is not None and remaining <= 0:
            parts.append(f"the deadline of {alias.deadline_seconds:g} s passed")
        elif len(self._tried) >= alias.max_attempts and self._index < len(self._order):
            parts.append(f"the attempt budget of {alias.max_attempts} was spent")
        verb = "could answer" if self._tried else "is available"
        return NoHealthyDeployment(
            alias.alias,
            f"no deployment of model {alias.alias!r} {verb} ({'; '.join(parts)})",
            min(waits),
            tried,
        )


def _seconds(retry_after: str | None) -> float | None:
    """A Retry-After in seconds (its HTTP-date form is ignored)."""
    if not retry_after:
        return None
    try:
        return max(0.0, float(retry_after))
    except ValueError:
        return None
