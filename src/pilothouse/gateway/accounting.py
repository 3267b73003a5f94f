"""What a request cost, reported or estimated: tokens onto the record, cost from the
deployment that answered (through the catalog, the one place that prices).

When the provider's usage never arrived (the client left, the stream was cut, the
instance stopped), tokens are counted from what was sent and delivered, at about four
characters a token, and the row says they are estimated.
"""

from __future__ import annotations

import math
from typing import Any

import orjson

from pilothouse.fleet.deployments import Deployment, ModelAlias
from pilothouse.policy.quota_gate import UsageBound
from pilothouse.providers.types import OutputSample, Usage
from pilothouse.registry.catalog import cost_usd
from pilothouse.telemetry.request_log import RequestRecord
from pilothouse.telemetry.signals import Signals

CHARS_PER_TOKEN = 4


def account(record: RequestRecord, deployment: Deployment, usage: Usage) -> None:
    """Put the provider's reported usage and its cost on the record."""
    record.prompt_tokens = usage.prompt_tokens
    record.completion_tokens = usage.completion_tokens
    record.cached_tokens = usage.cached_tokens
    record.cost_usd = cost_usd(
        deployment.pricing,
        prompt_tokens=usage.prompt_tokens,
        completion_tokens=usage.completion_tokens,
        cached_tokens=usage.cached_tokens,
    )


def account_partial(
    record: RequestRecord,
    deployment: Deployment,
    usage: Usage | None,
    body: dict[str, Any],
    sample: OutputSample | None,
) -> None:
    """Cost up to a cut: what the provider reported, and where it reported nothing (or
    less than was delivered), an estimate from the prompt sent and the output delivered;
    then the row says the usage is estimated."""
    reported = usage or Usage()
    delivered = _tokens(sample.chars) if sample is not None else 0
    prompt = reported.prompt_tokens or estimate_prompt_tokens(body)
    completion = max(reported.completion_tokens, delivered)
    account(record, deployment, Usage(prompt, completion, reported.cached_tokens))
    record.usage_estimated = (
        prompt != reported.prompt_tokens or completion != reported.completion_tokens
    )


# A token is at least one byte of text; each message and the request add a few of their own.
TOKENS_PER_MESSAGE = 8
TOKENS_PER_REQUEST = 16


def usage_bound(
    alias: ModelAlias, body: dict[str, Any], sent_bytes: int | None = None
) -> UsageBound:
    """The most a request may use, for quota reservations: the prompt's token bound
    (bytes of its text and tools: never fewer tokens than that), `max_tokens` (or
    `max_completion_tokens`) times `n` when set, priced at the alias's dearest deployment.
    `sent_bytes`, the size of the body as the client sent it, when the prompt is all in
    it (not rendered from a route's template), bounds the prompt without encoding it
    again: JSON never writes a text in fewer bytes than the text has."""
    if sent_bytes is not None:
        prompt = TOKENS_PER_REQUEST + sent_bytes
    else:
        prompt = TOKENS_PER_REQUEST
        messages = body.get("messages")
        for message in messages if isinstance(messages, list) else ():
            prompt += TOKENS_PER_MESSAGE + len(orjson.dumps(message))
        for name in ("tools", "input", "response_format"):
            if name in body:
                prompt += len(orjson.dumps(body[name]))
    cap = body.get("max_completion_tokens", body.get("max_tokens"))
    output: int | None = None
    if isinstance(cap, int) and not isinstance(cap, bool) and cap > 0:
        n = body.get("n")
        output = cap * (n if isinstance(n, int) and not isinstance(n, bool) and n > 0 else 1)
    input_price = max(d.pricing.input_per_mtok for d in alias.deployments)
    output_price = max(d.pricing.output_per_mtok for d in alias.deployments)
    # USD per million tokens → nano-dollars per token is x 1000
    cost = math.ceil((prompt * input_price + (output or 0) * output_price) * 1000)
    return UsageBound(prompt, output, cost)


def estimate_prompt_tokens(body: dict[str, Any]) -> int:
    """About how many tokens the request's messages (or embedding input) are."""
    chars = 0
    messages = body.get("messages")
    for message in messages if isinstance(messages, list) else ():
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, str):
            chars += len(content)
        elif isinstance(content, list):
            chars += sum(
                len(part["text"])
                for part in content
                if isinstance(part, dict) and isinstance(part.get("text"), str)
            )
    embedding_input = body.get("input")
    if isinstance(embedding_input, str):
        chars += len(embedding_input)
    elif isinstance(embedding_input, list):
        chars += sum(len(item) for item in embedding_input if isinstance(item, str))
    return _tokens(chars)


def _tokens(chars: int) -> int:
    return -(-chars // CHARS_PER_TOKEN)


def record_signals(record: RequestRecord, signals: Signals | None) -> None:
    """The answer's output signals onto its row (left NULL when nothing answered)."""
    if signals is None:
        return
    record.output_chars = signals.chars
    record.sig_empty = signals.empty
    record.sig_refusal = signals.refusal
    record.sig_hedging = signals.hedging
    record.sig_truncated = signals.truncated
    record.sig_tool_call = signals.tool_call
    record.sig_json_valid = signals.json_valid
    record.sig_schema_valid = signals.schema_valid
    record.sig_tool_args_valid = signals.tool_args_valid
