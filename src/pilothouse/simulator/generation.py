"""Reply generation, independent of any provider's wire format.

The OpenAI and Anthropic modules translate their requests into a `Conversation`
and render the `Choice` objects produced here, so both APIs share one notion of
what the "model" says, how many tokens it used and why it stopped.
"""

from __future__ import annotations

import json
import random
import string
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from pilothouse.simulator.choice import Choice, FinishReason, ToolCallOut
from pilothouse.simulator.plan import Plan
from pilothouse.simulator.scenario import ReplyRule
from pilothouse.simulator.structured import json_object_reply, value_for_schema
from pilothouse.simulator.text import (
    REFUSAL_TEXTS,
    count_tokens,
    hedge,
    prose,
    rng_for,
    stable_hash,
    tokenize,
    topic_words,
)

_ID_ALPHABET = string.ascii_letters + string.digits
_CACHE_SIZE = 2048


@dataclass(frozen=True)
class ToolSpec:
    """A tool the caller offered: its name and the JSON schema of its arguments."""

    name: str
    parameters: dict[str, Any]


@dataclass
class Conversation:
    """A chat request reduced to what generation needs.

    `fingerprint` is any JSON-like value identifying the request's content (messages,
    system prompt, tools, format, seed); equal fingerprints give equal replies.
    """

    model: str
    fingerprint: Any
    last_user_text: str
    ends_with_tool_result: bool
    prompt_tokens: int
    system_text: str = ""  # the system (and developer) instructions, joined by newlines
    tools: list[ToolSpec] = field(default_factory=list)
    tool_choice: Literal["auto", "none", "required"] = "auto"
    forced_tool: str | None = None
    response_format: Literal["text", "json_object", "json_schema"] = "text"
    json_schema: dict[str, Any] | None = None
    n: int = 1
    max_tokens: int | None = None
    stop: list[str] = field(default_factory=list)


def generate(
    conversation: Conversation,
    plan: Plan,
    rules: Sequence[ReplyRule],
    cache: dict[tuple[Any, ...], Choice] | None = None,
) -> list[Choice]:
    """Produce `conversation.n` choices under `plan` (its fault, length and hedging).

    Priority: the `empty`/`refusal` faults, then the first matching scripted rule,
    then a tool call (when tools are offered and allowed), then structured output,
    then generated prose. `max_tokens` and stop sequences apply to all of them.
    `cache`, when given, must belong to one fixed set of `rules`; it keeps recent
    choices so repeated prompts (as in benchmarks) skip generation.
    """
    if cache is None:
        return [_one(conversation, plan, rules, index) for index in range(conversation.n)]
    base = (
        conversation.model,
        stable_hash(conversation.fingerprint),
        conversation.tool_choice,
        conversation.forced_tool,
        conversation.max_tokens,
        tuple(conversation.stop),
        plan.fault,
        plan.reply_tokens,
        plan.length_multiplier,
        plan.hedging,
    )
    choices = []
    for index in range(conversation.n):
        key = (*base, index)
        choice = cache.get(key)
        if choice is None:
            choice = _one(conversation, plan, rules, index)
            # A reply is a pure function of its key, and choices are never mutated
            # after creation, so sharing them is safe; the oldest entry goes first.
            if len(cache) >= _CACHE_SIZE:
                cache.pop(next(iter(cache)))
            cache[key] = choice
        choices.append(choice)
    return choices


def _one(conversation: Conversation, plan: Plan, rules: Sequence[ReplyRule], index: int) -> Choice:
    rng = rng_for("reply", conversation.model, conversation.fingerprint, index)
    if plan.fault == "empty":
        return Choice(
            index=index, text_tokens=[], tool_call=None, finish="stop", completion_tokens=0
        )
    if plan.fault == "refusal":
        return _text_choice(index, rng.choice(REFUSAL_TEXTS), conversation, refusal=True)
    topics = topic_words(conversation.last_user_text)
    rule = _matching_rule(conversation, rules)
    if rule is not None and rule.tool_call is not None:
        arguments = json.dumps(rule.tool_call.arguments, ensure_ascii=False)
        return _tool_choice(index, rule.tool_call.name, arguments, conversation, rng)
    if rule is not None and rule.kind == "json":
        text = json.dumps(rule.json_value, ensure_ascii=False)
    elif rule is not None:
        text = _scripted_text(rule.reply or "", plan, rng, topics)
    elif _should_call_tool(conversation):
        spec = _tool_to_call(conversation)
        value = value_for_schema(spec.parameters, rng, topics)
        return _tool_choice(
            index, spec.name, json.dumps(value, ensure_ascii=False), conversation, rng
        )
    elif conversation.response_format == "json_schema":
        value = value_for_schema(conversation.json_schema or {}, rng, topics)
        text = json.dumps(value, ensure_ascii=False)
    elif conversation.response_format == "json_object":
        text = json.dumps(json_object_reply(rng, topics), ensure_ascii=False)
    else:
        # ±20% around the profile's reply length so answers do not all look alike.
        target = round(plan.reply_tokens * plan.length_multiplier * rng.uniform(0.8, 1.2))
        text = prose(rng, max(target, 1), topics, plan.hedging)
    return _text_choice(index, text, conversation)


def _matching_rule(conversation: Conversation, rules: Sequence[ReplyRule]) -> ReplyRule | None:
    for rule in rules:
        # After a tool result the model should answer, not call the tool again;
        # skipping tool-call rules here is what lets scripted agent loops end.
        if rule.tool_call is not None and conversation.ends_with_tool_result:
            continue
        if rule.applies(conversation.model, conversation.last_user_text, conversation.system_text):
            return rule
    return None


def _scripted_text(text: str, plan: Plan, rng: random.Random, topics: list[str]) -> str:
    if plan.hedging > 0 and rng.random() < plan.hedging:
        text = hedge(text, rng)
    if plan.length_multiplier > 1:
        # Drift makes scripted answers ramble too: generated sentences are appended.
        extra = round(count_tokens(text) * (plan.length_multiplier - 1))
        if extra > 0:
            text = f"{text} {prose(rng, extra, topics, plan.hedging)}"
    return text


def _should_call_tool(conversation: Conversation) -> bool:
    if not conversation.tools or conversation.tool_choice == "none":
        return False
    if conversation.forced_tool is not None or conversation.tool_choice == "required":
        return True
    return not conversation.ends_with_tool_result


def _tool_to_call(conversation: Conversation) -> ToolSpec:
    if conversation.forced_tool is not None:
        for spec in conversation.tools:
            if spec.name == conversation.forced_tool:
                return spec
    return conversation.tools[0]


def _tool_choice(
    index: int, name: str, arguments: str, conversation: Conversation, rng: random.Random
) -> Choice:
    call_id = "".join(rng.choice(_ID_ALPHABET) for _ in range(24))
    name_tokens = count_tokens(name)
    pieces = tokenize(arguments)
    finish: FinishReason = "tool_calls"
    limit = conversation.max_tokens
    if limit is not None and name_tokens + len(pieces) > limit:
        pieces = pieces[: max(limit - name_tokens, 0)]
        finish = "length"
    return Choice(
        index=index,
        text_tokens=[],
        tool_call=ToolCallOut(call_id=call_id, name=name, argument_tokens=pieces),
        finish=finish,
        completion_tokens=name_tokens + len(pieces),
    )


def _text_choice(
    index: int, text: str, conversation: Conversation, *, refusal: bool = False
) -> Choice:
    finish: FinishReason = "stop"
    matched: str | None = None
    cut = len(text)
    for stop in conversation.stop:
        position = text.find(stop) if stop else -1
        if 0 <= position < cut:
            cut, matched = position, stop
    if matched is not None:
        text = text[:cut]
        finish = "stop_sequence"
    tokens = tokenize(text)
    limit = conversation.max_tokens
    if limit is not None and len(tokens) > limit:
        tokens = tokens[:limit]
        finish, matched = "length", None
    return Choice(
        index=index,
        text_tokens=tokens,
        tool_call=None,
        finish=finish,
        completion_tokens=len(tokens),
        stop_sequence=matched,
        refusal=refusal,
    )
