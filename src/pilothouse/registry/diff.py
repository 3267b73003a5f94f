"""A side-by-side text diff of two prompt versions, message by message: what a reviewer
reads before promoting. (What the change does to behaviour is the semantic diff's job.)"""

from __future__ import annotations

import difflib
import json
from typing import Any

from pilothouse.registry import prompts
from pilothouse.store import Store


def side_by_side(store: Store, name: str, old: int, new: int) -> dict[str, Any]:
    """Both versions and, per part (each message, the fragment text, tools, format), rows
    of (old line, new line, change) where change is equal, replace, delete or insert."""
    a = prompts.get(store, name, version=old)
    b = prompts.get(store, name, version=new)
    parts = []
    for title, before, after in _parts(a.content, b.content):
        parts.append({"part": title, "rows": _rows(before, after), "changed": before != after})
    return {
        "name": name,
        "old": {"version": a.version, "hash": a.hash, "labels": a.labels},
        "new": {"version": b.version, "hash": b.hash, "labels": b.labels},
        "parts": parts,
    }


def _parts(a: dict[str, Any], b: dict[str, Any]) -> list[tuple[str, str, str]]:
    out = []
    old_messages, new_messages = a.get("messages") or [], b.get("messages") or []
    for index in range(max(len(old_messages), len(new_messages))):
        before = old_messages[index] if index < len(old_messages) else None
        after = new_messages[index] if index < len(new_messages) else None
        role = (after or before or {}).get("role", "?")
        out.append(
            (
                f"messages[{index}] ({role})",
                (before or {}).get("content", ""),
                (after or {}).get("content", ""),
            )
        )
    if "text" in a or "text" in b:
        out.append(("text", a.get("text") or "", b.get("text") or ""))
    for field in ("variables", "tools", "response_format"):
        out.append((field, _json(a.get(field)), _json(b.get(field))))
    return out


def _json(value: Any) -> str:
    return "" if value in (None, {}, []) else json.dumps(value, indent=2, sort_keys=True)


def _rows(before: str, after: str) -> list[dict[str, Any]]:
    old_lines, new_lines = before.splitlines(), after.splitlines()
    rows: list[dict[str, Any]] = []
    matcher = difflib.SequenceMatcher(a=old_lines, b=new_lines, autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        left, right = old_lines[i1:i2], new_lines[j1:j2]
        for k in range(max(len(left), len(right))):
            rows.append(
                {
                    "old": left[k] if k < len(left) else None,
                    "new": right[k] if k < len(right) else None,
                    "change": tag,
                }
            )
    return rows
