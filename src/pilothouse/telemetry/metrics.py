"""Prometheus metrics, one registry per app so several apps can live in one process."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from pilothouse.store.tables import TTFT_EDGES_MS

if TYPE_CHECKING:
    from pilothouse.telemetry.record import RequestRecord


@dataclass(frozen=True, slots=True)
class _RequestChildren:
    requests: Any
    duration: Any
    prompt: Any
    completion: Any
    cached: Any
    cost: Any


@dataclass(frozen=True, slots=True)
class _RouteChildren:
    ttft: Any
    gateway_added: Any
    answers: Any
    signals: dict[str, Any]


@dataclass(frozen=True, slots=True)
class _AttemptChildren:
    duration: Any
    input_tokens: Any
    output_tokens: Any
    first_chunk: Any


# Fixed edges that include every SLO threshold (store/tables/traffic.py TTFT_EDGES_MS, in seconds).
_TTFT_BUCKETS = tuple(edge / 1000 for edge in TTFT_EDGES_MS)
_DURATION_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 120.0)
_GATEWAY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25)
# Endpoints that never carry a model's answer (no TTFT, no output signals to count).
_NO_ANSWER = frozenset({"models", "responses.get", "responses.delete"})
_TOKEN_BUCKETS = (1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576)
SIGNALS = (
    "empty",
    "refusal",
    "hedging",
    "truncated",
    "tool_call",
    "json_invalid",
    "schema_invalid",
    "tool_args_invalid",
)


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
            "Delivered time to first token (admission to first content chunk written), "
            "by route ('' outside routes) and model alias.",
            ["route", "model"],
            buckets=_TTFT_BUCKETS,
            registry=r,
        )
        self.gateway_added_seconds = Histogram(
            "pilothouse_gateway_added_seconds",
            "What the gateway added to the first token: delivered TTFT minus the provider's.",
            ["route", "model"],
            buckets=_GATEWAY_BUCKETS,
            registry=r,
        )
        self.no_first_token = Counter(
            "pilothouse_streams_without_first_token",
            "Streamed requests that never delivered a first token, by reason (the outcome).",
            ["route", "model", "reason"],
            registry=r,
        )
        self.answers = Counter(
            "pilothouse_answers",
            "Answers judged for output signals, by route and model alias.",
            ["route", "model"],
            registry=r,
        )
        self.output_signals = Counter(
            "pilothouse_output_signals",
            "Answers showing an output signal (telemetry/signals.py), by route and model.",
            ["route", "model", "signal"],
            registry=r,
        )
        # The provider hop, named as the OpenTelemetry GenAI semantic conventions name it.
        self.genai_duration = Histogram(
            "gen_ai_client_operation_duration_seconds",
            "GenAI client operation duration: one upstream attempt.",
            ["gen_ai_operation_name", "gen_ai_provider_name", "gen_ai_request_model", "error_type"],
            buckets=_DURATION_BUCKETS,
            registry=r,
        )
        self.genai_tokens = Histogram(
            "gen_ai_client_token_usage",
            "GenAI client token usage per operation, by token type (input, output).",
            [
                "gen_ai_operation_name",
                "gen_ai_provider_name",
                "gen_ai_request_model",
                "gen_ai_token_type",
            ],
            buckets=_TOKEN_BUCKETS,
            registry=r,
        )
        self.genai_first_chunk = Histogram(
            "gen_ai_client_operation_time_to_first_chunk_seconds",
            "GenAI client time to the first content chunk of a streamed operation.",
            ["gen_ai_operation_name", "gen_ai_provider_name", "gen_ai_request_model"],
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
        self.unserved = Counter(
            "pilothouse_unserved_requests",
            "Requests to /v1 paths or methods the gateway does not serve, by kind of path "
            "(gateway/unserved.py: a fixed set, never the path itself).",
            ["path_kind"],
            registry=r,
        )
        self.quota_decisions = Counter(
            "pilothouse_quota_decisions",
            "Quota checks by decision: allowed, soft (past a soft limit), refused, "
            "fail_open / fail_closed (counters unreachable), settle_failed.",
            ["decision"],
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
        self.log_load_seconds = Gauge(
            "pilothouse_request_log_load_seconds",
            "How long the request-log load in flight has taken, 0 when none: a database "
            "that hangs (a held lock, a silent network) shows here, not in store_up.",
            registry=r,
        )
        self.rollup_errors = Counter(
            "pilothouse_rollup_errors",
            "Batches of request-log rows loaded without their rollups (see the server log).",
            registry=r,
        )
        self.log_store_up = Gauge(
            "pilothouse_request_log_store_up",
            "1 when the last request-log load reached the store, else 0.",
            registry=r,
        )
        self.log_store_up.set(1)
        self._children: dict[tuple[str, str, str, int, str], _RequestChildren] = {}
        self._route_children: dict[tuple[str, str], _RouteChildren] = {}
        self._attempt_children: dict[tuple[str, str, str], _AttemptChildren] = {}
        self.config_version = Gauge(
            "pilothouse_config_version", "Configuration version this process serves.", registry=r
        )
        self.config_loads = Counter(
            "pilothouse_config_loads",
            "Snapshot loads: incremental (the items a change touched: change, poll, gap, "
            "refresh) or full (start-up, changes the change log cannot name, the "
            "consistency check), by why.",
            ["mode", "reason"],
            registry=r,
        )
        self.config_drift = Counter(
            "pilothouse_config_drift_repaired",
            "Snapshot items the consistency check found differing from a full load and "
            "replaced, by kind (should stay 0).",
            ["kind"],
            registry=r,
        )

    def observe(
        self, record: RequestRecord, attempts: list[dict[str, Any]], *, alias_known: bool = True
    ) -> None:
        """Count one served request and its upstream attempts. Labels are bounded by the
        configuration (endpoint, alias, provider, route, status, outcome): never a key,
        user or request id, and never an alias the client asked for that is not one of
        ours (`alias_known` False: the model label is empty). Labelled children are
        cached: `labels()` takes a lock and builds a key on every call, which the hot path
        should not pay."""
        model = (record.model_alias or "") if alias_known else ""
        provider, route = record.provider or "", record.route or ""
        key = (record.endpoint, model, provider, record.status_code, record.outcome)
        children = self._children.get(key)
        if children is None:
            children = self._children[key] = _RequestChildren(
                requests=self.requests.labels(*key[:3], str(key[3]), key[4]),
                duration=self.duration_seconds.labels(record.endpoint, model),
                prompt=self.tokens.labels(model, provider, "prompt"),
                completion=self.tokens.labels(model, provider, "completion"),
                cached=self.tokens.labels(model, provider, "cached"),
                cost=self.cost_usd.labels(model, provider),
            )
        children.requests.inc()
        children.duration.observe(record.latency_ms / 1000)
        if record.prompt_tokens is not None:
            children.prompt.inc(record.prompt_tokens)
            children.completion.inc(record.completion_tokens or 0)
            if record.cached_tokens:
                children.cached.inc(record.cached_tokens)
        if record.cost_usd:
            children.cost.inc(record.cost_usd)
        if record.endpoint not in _NO_ANSWER:
            self._observe_route(record, route, model)
        for attempt in attempts:
            self._observe_attempt(record, attempt)

    def _observe_route(self, record: RequestRecord, route: str, model: str) -> None:
        children = self._route_children.get((route, model))
        if children is None:
            children = self._route_children[(route, model)] = _RouteChildren(
                ttft=self.ttft_seconds.labels(route, model),
                gateway_added=self.gateway_added_seconds.labels(route, model),
                answers=self.answers.labels(route, model),
                signals={s: self.output_signals.labels(route, model, s) for s in SIGNALS},
            )
        if record.ttft_delivered_ms is not None:
            children.ttft.observe(record.ttft_delivered_ms / 1000)
            if record.ttft_gateway_ms is not None:
                children.gateway_added.observe(max(record.ttft_gateway_ms, 0.0) / 1000)
        elif record.stream and record.outcome != "client_error":
            self.no_first_token.labels(route, model, record.outcome).inc()
        if record.output_chars is None:
            return
        children.answers.inc()
        for signal, shown in (
            ("empty", record.sig_empty),
            ("refusal", record.sig_refusal),
            ("hedging", record.sig_hedging),
            ("truncated", record.sig_truncated),
            ("tool_call", record.sig_tool_call),
            ("json_invalid", record.sig_json_valid is False),
            ("schema_invalid", record.sig_schema_valid is False),
            ("tool_args_invalid", record.sig_tool_args_valid is False),
        ):
            if shown:
                children.signals[signal].inc()

    def _observe_attempt(self, record: RequestRecord, attempt: dict[str, Any]) -> None:
        operation = "embeddings" if record.endpoint == "embeddings" else "chat"
        error = attempt.get("error_class") or ""
        key = (operation, str(attempt["deployment"]), error)
        children = self._attempt_children.get(key)
        if children is None:
            provider, _, model = key[1].partition("/")
            ok = not error  # a failed attempt has no usage series of its own
            children = self._attempt_children[key] = _AttemptChildren(
                duration=self.genai_duration.labels(operation, provider, model, error),
                input_tokens=ok and self.genai_tokens.labels(operation, provider, model, "input"),
                output_tokens=ok and self.genai_tokens.labels(operation, provider, model, "output"),
                first_chunk=ok and self.genai_first_chunk.labels(operation, provider, model),
            )
        children.duration.observe((attempt.get("latency_ms") or 0.0) / 1000)
        if error:
            return
        if record.prompt_tokens is not None:
            children.input_tokens.observe(record.prompt_tokens)
            children.output_tokens.observe(record.completion_tokens or 0)
        if record.ttft_upstream_ms is not None:
            children.first_chunk.observe(record.ttft_upstream_ms / 1000)

    def render(self) -> bytes:
        return generate_latest(self.registry)
