"""One served request, as the gateway saw it: the request log's row, field for column."""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import UTC, datetime
from typing import Any

from pilothouse.store import request_log as rows


@dataclass(slots=True)
class RequestRecord:
    """One served request, as the gateway saw it. Times are epoch seconds."""

    id: str
    started_at: float
    finished_at: float = 0.0
    endpoint: str = "chat"
    key_id: str | None = None
    user: str | None = None
    team: str | None = None
    model_alias: str | None = None
    provider: str | None = None
    provider_model: str | None = None
    stream: bool = False
    status_code: int = 200
    error_class: str | None = None
    error_message: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    cached_tokens: int | None = None
    cost_usd: float | None = None
    latency_ms: float = 0.0
    ttft_delivered_ms: float | None = None
    ttft_upstream_ms: float | None = None
    ttft_gateway_ms: float | None = None
    chunks_in: int | None = None
    chunks_out: int | None = None
    finish_reason: str | None = None
    route: str | None = None
    release_id: str | None = None
    release_arm: str | None = None  # "active" or "canary"
    prompt_name: str | None = None
    prompt_version: int | None = None
    prompt_hash: str | None = None
    variables: dict[str, Any] | None = None  # a route call's template variables: eval datasets
    client_request_id: str | None = None  # the caller's X-Request-Id: kept, never the key
    outcome: str = "ok"  # telemetry.outcomes: what happened, beside the status sent
    usage_estimated: bool = False  # tokens counted from what was delivered, not reported
    source: str | None = None  # "eval" for the eval runner's own calls
    eval_run_id: str | None = None
    attempt_count: int = 0  # upstream calls made (several when it failed over)
    attempts: list[dict[str, Any]] | None = None  # each: deployment, error_class, latency_ms
    output_chars: int | None = None  # the answer's length; None: no answer was judged
    sig_empty: bool | None = None  # output signals: telemetry/signals.py
    sig_refusal: bool | None = None
    sig_hedging: bool | None = None
    sig_truncated: bool | None = None
    sig_tool_call: bool | None = None
    sig_json_valid: bool | None = None
    sig_schema_valid: bool | None = None
    sig_tool_args_valid: bool | None = None

    def to_row(self) -> dict[str, Any]:
        # Not dataclasses.asdict: it deep-copies every value (~50 µs a row, in the writer
        # thread, holding the GIL the event loop needs).
        row = {name: getattr(self, name) for name in _FIELD_NAMES}
        row["started_at"] = datetime.fromtimestamp(self.started_at, UTC)
        row["finished_at"] = datetime.fromtimestamp(self.finished_at or self.started_at, UTC)
        return row


_FIELD_NAMES = tuple(f.name for f in fields(RequestRecord))
assert frozenset(_FIELD_NAMES) == rows.COLUMNS, "RequestRecord and the request_log table must match"
