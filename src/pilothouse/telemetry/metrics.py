"""Prometheus metrics, one registry per app so several apps can live in one process."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest


@dataclass(frozen=True, slots=True)
class _RequestChildren:
    requests: Any
    duration: Any
    ttft: Any
    prompt: Any
    completion: Any
    cached: Any
    cost: Any


_TTFT_BUCKETS = (0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0, 30.0)
_DURATION_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 120.0)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "pilothouse_requests",
            "Gateway requests by endpoint, model alias, provider, HTTP status and outcome.",
            ["endpoint", "model", "provider", "status", "outcome"],
            registry=r,
        )
        self.tokens = Counter(
            "pilothouse_tokens",
            "Tokens by model alias, provider and kind (prompt, completion, cached).",
            ["model", "provider", "kind"],
            registry=r,
        )
        self.cost_usd = Counter(
            "pilothouse_cost_usd",
            "Spend in USD computed from the model catalog's pricing.",
            ["model", "provider"],
            registry=r,
        )
        self.ttft_seconds = Histogram(
            "pilothouse_ttft_seconds",
            "Delivered time to first token (admission to first content chunk written).",
            ["model"],
            buckets=_TTFT_BUCKETS,
            registry=r,
        )
        self.duration_seconds = Histogram(
            "pilothouse_request_duration_seconds",
            "Total request time at the gateway.",
            ["endpoint", "model"],
            buckets=_DURATION_BUCKETS,
            registry=r,
        )
        self.upstream_errors = Counter(
            "pilothouse_upstream_errors",
            "Failed provider calls by provider and error class.",
            ["provider", "error_class"],
            registry=r,
        )
        self.quarantined = Gauge(
            "pilothouse_quarantined_items",
            "Configuration items that cannot be loaded and answer with an error, by kind "
            "(key, route, release, setting); everything else is served.",
            ["kind"],
            registry=r,
        )
        self.log_rows_written = Counter(
            "pilothouse_request_log_rows_written", "Request-log rows written.", registry=r
        )
        self.log_rows_journaled = Counter(
            "pilothouse_request_log_rows_journaled",
            "Request-log rows appended to the local journal.",
            registry=r,
        )
        self.log_rows_bounded = Counter(
            "pilothouse_request_log_rows_bounded",
            "Request-log rows stored with a value cut or replaced to fit its column.",
            registry=r,
        )
        self.log_rows_dead_lettered = Counter(
            "pilothouse_request_log_rows_dead_lettered",
            "Request-log rows the database refused, set aside in the dead-letter file.",
            registry=r,
        )
        self.log_rows_dropped = Counter(
            "pilothouse_request_log_rows_dropped",
            "Request-log rows dropped: the journal was full, the disk refused the write, "
            "or too many rows waited in memory.",
            ["reason"],
            registry=r,
        )
        self.log_journal_bytes = Gauge(
            "pilothouse_request_log_journal_bytes",
            "Size of the request-log journal on disk.",
            registry=r,
        )
        self.log_backlog_bytes = Gauge(
            "pilothouse_request_log_backlog_bytes",
            "Journal bytes not yet loaded into the database.",
            registry=r,
        )
        self.log_memory_rows = Gauge(
            "pilothouse_request_log_memory_rows",
            "Request-log rows held in memory: waiting for the journal or being loaded.",
            registry=r,
        )
        self.log_store_up = Gauge(
            "pilothouse_request_log_store_up",
            "1 when the last request-log load reached the store, else 0.",
            registry=r,
        )
        self.log_store_up.set(1)
        self._children: dict[tuple[str, str, str, int, str], _RequestChildren] = {}
        self.config_version = Gauge(
            "pilothouse_config_version", "Configuration version this process serves.", registry=r
        )

    def observe_request(
        self,
        *,
        endpoint: str,
        model: str,
        provider: str,
        status: int,
        outcome: str,
        latency_ms: float,
        ttft_ms: float | None,
        prompt_tokens: int | None,
        completion_tokens: int | None,
        cached_tokens: int | None,
        cost_usd: float | None,
    ) -> None:
        """Count one served request. Labelled children are cached: `labels()` takes a lock
        and builds a key on every call, which the hot path should not pay."""
        key = (endpoint, model, provider, status, outcome)
        children = self._children.get(key)
        if children is None:
            children = self._children[key] = _RequestChildren(
                requests=self.requests.labels(endpoint, model, provider, str(status), outcome),
                duration=self.duration_seconds.labels(endpoint, model),
                ttft=self.ttft_seconds.labels(model),
                prompt=self.tokens.labels(model, provider, "prompt"),
                completion=self.tokens.labels(model, provider, "completion"),
                cached=self.tokens.labels(model, provider, "cached"),
                cost=self.cost_usd.labels(model, provider),
            )
        children.requests.inc()
        children.duration.observe(latency_ms / 1000)
        if ttft_ms is not None:
            children.ttft.observe(ttft_ms / 1000)
        if prompt_tokens is not None:
            children.prompt.inc(prompt_tokens)
            children.completion.inc(completion_tokens or 0)
            if cached_tokens:
                children.cached.inc(cached_tokens)
        if cost_usd:
            children.cost.inc(cost_usd)

    def render(self) -> bytes:
        return generate_latest(self.registry)
