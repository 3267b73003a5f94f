"""One case, two answers: which behaviours changed between them.

A change has a category (what a consumer downstream relies on) and a detail a person
reads. The categories, in the order reports show them:

- `json_validity`: the answer was a JSON object or array and is not, or the reverse;
- `json_keys`: both are JSON and the set of key paths differs (`a`, `a.b`, `a[].c`);
- `label`: the value at the label path differs (a missing value is `(none)`);
- `tool_calls`: a tool is called or no longer called, another tool is called, or the
  same tool with other arguments;
- `refusal`: the answer refuses and did not, or the reverse;
- `gateway_refusal`: the gateway refused the request (e.g. the prompt grew past the
  context) on one side only.

Meaning (same, rephrased, changed) is decided with the similarity (similarity.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from pilothouse.behaviour.observe import NO_LABEL, Observation, ToolCall
from pilothouse.evals.scorers_options import json_equal

CATEGORIES = ("json_validity", "json_keys", "label", "tool_calls", "refusal", "gateway_refusal")
MEANING = "meaning"
_SHOWN_KEYS = 6


@dataclass(frozen=True)
class Change:
    """One behaviour that changed in one case; `before`/`after` are set for labels."""

    category: str
    detail: str
    before: str | None = None
    after: str | None = None

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"category": self.category, "detail": self.detail}
        if self.category == "label":
            out.update(before=self.before, after=self.after)
        return out


def changes(old: Observation, new: Observation, *, labels: bool) -> list[Change]:
    """What changed from `old` to `new` (both comparable); `labels`: a label path is set."""
    if (old.gateway_refused is None) != (new.gateway_refused is None):
        before = "refused by the gateway" if old.gateway_refused else "answered"
        after = "refused by the gateway" if new.gateway_refused else "answered"
        why = new.gateway_refused or old.gateway_refused
        return [Change("gateway_refusal", f"{before} -> {after} ({why})")]
    if old.gateway_refused is not None:
        return []
    found: list[Change] = []
    if old.json_valid != new.json_valid:
        found.append(
            Change("json_validity", "JSON -> not JSON" if old.json_valid else "not JSON -> JSON")
        )
    elif old.keys is not None and new.keys is not None and old.keys != new.keys:
        found.append(Change("json_keys", _keys_detail(old.keys, new.keys)))
    if labels and old.label != new.label:
        before, after = old.label or NO_LABEL, new.label or NO_LABEL
        found.append(Change("label", f"{before} -> {after}", before, after))
    tools = _tools_detail(old.tools, new.tools)
    if tools is not None:
        found.append(Change("tool_calls", tools))
    if old.refused != new.refused:
        found.append(
            Change("refusal", "answered -> refused" if new.refused else "refused -> answered")
        )
    return found


def identical(old: Observation, new: Observation) -> bool:
    """The same answer: equal JSON documents, or equal text once whitespace runs are
    collapsed; and the same tool calls."""
    if not same_tools(old.tools, new.tools) or old.refused != new.refused:
        return False
    if old.gateway_refused is not None or new.gateway_refused is not None:
        return old.gateway_refused == new.gateway_refused
    if old.json_valid and new.json_valid:
        return json_equal(old.document, new.document)
    return " ".join(old.text.split()) == " ".join(new.text.split())


def meaning_text(observation: Observation) -> str:
    """The text the similarity compares: the answer's text and its tool calls."""
    if observation.gateway_refused is not None:
        return ""
    return "\n".join([observation.text, *(t.shown() for t in observation.tools)]).strip()


def _keys_detail(old: frozenset[str], new: frozenset[str]) -> str:
    parts = []
    for title, keys in (("removed", old - new), ("added", new - old)):
        if keys:
            shown = sorted(keys)[:_SHOWN_KEYS]
            more = f" (+{len(keys) - _SHOWN_KEYS} more)" if len(keys) > _SHOWN_KEYS else ""
            parts.append(f"{title} {', '.join(shown)}{more}")
    return "keys " + "; ".join(parts)


def same_tools(old: tuple[ToolCall, ...], new: tuple[ToolCall, ...]) -> bool:
    """The same tools called in the same order with equal arguments (as JSON compares)."""
    return len(old) == len(new) and all(
        a.name == b.name and json_equal(a.arguments, b.arguments)
        for a, b in zip(old, new, strict=True)
    )


def _tools_detail(old: tuple[ToolCall, ...], new: tuple[ToolCall, ...]) -> str | None:
    if same_tools(old, new):
        return None
    if not old:
        return "no tool call -> " + ", ".join(t.shown() for t in new)
    if not new:
        return ", ".join(t.shown() for t in old) + " -> no tool call"
    old_names, new_names = [t.name for t in old], [t.name for t in new]
    if old_names != new_names:
        return f"{', '.join(old_names)} -> {', '.join(new_names)}"
    details = [
        f"{a.name}: {_arguments_detail(a.arguments, b.arguments)}"
        for a, b in zip(old, new, strict=True)
        if not json_equal(a.arguments, b.arguments)
    ]
    return "; ".join(details)


def _arguments_detail(old: Any, new: Any) -> str:
    if not (isinstance(old, dict) and isinstance(new, dict)):
        return f"arguments {_short(old)} -> {_short(new)}"
    parts = []
    removed = sorted(set(old) - set(new))
    added = sorted(set(new) - set(old))
    changed = sorted(k for k in set(old) & set(new) if not json_equal(old[k], new[k]))
    for key in changed[:_SHOWN_KEYS]:
        parts.append(f"{key} {_short(old[key])} -> {_short(new[key])}")
    if removed:
        parts.append("removed " + ", ".join(removed))
    if added:
        parts.append("added " + ", ".join(added))
    return "arguments: " + "; ".join(parts)


def _short(value: Any, limit: int = 40) -> str:
    text = value if isinstance(value, str) else orjson.dumps(value).decode()
    text = text if not isinstance(value, str) else repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
