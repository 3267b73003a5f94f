"""A semantic diff summary attached to a changelog entry (`pilothouse diff ... --format
json --out FILE`, then `--diff FILE` on the label move or promote), checked against the
change it describes: a diff of some other version must not vouch for this one."""

from __future__ import annotations

from typing import Any

import orjson

from pilothouse import errors

MAX_SUMMARY_BYTES = 32_768
_REQUIRED = ("cases", "compared", "changed", "behaviour", "meaning")
_HINT = "run `pilothouse diff OLD NEW --dataset DS --format json --out FILE` and pass --diff FILE"


def attach(entry: dict[str, Any], summary: dict[str, Any]) -> dict[str, Any]:
    """Return `entry` with `summary` as its `diff`. Refuses (InvalidRequest, param `diff`)
    a dict that is not a diff summary, one over 32 KB, and one whose new side is not what
    the change moves to (compared by release id, else composition hash, else
    prompt@version)."""
    missing = [key for key in _REQUIRED if key not in summary]
    if missing:
        raise errors.InvalidRequest(
            f"diff is not a semantic diff summary (missing {', '.join(missing)})",
            param="diff",
            hint=_HINT,
        )
    if len(orjson.dumps(summary)) > MAX_SUMMARY_BYTES:
        raise errors.InvalidRequest(
            f"diff summary is over {MAX_SUMMARY_BYTES} bytes: attach the summary, not the "
            "report (the CLI's --diff summarises the report for you)",
            param="diff",
        )
    target = entry["change"].get("to") or {}
    prompt = target.get("prompt") or f"{entry['subject']['name']}@{target.get('version')}"
    new = (summary.get("sides") or {}).get("new") or {}
    for field, expected in (
        ("release_id", target.get("release")),
        ("composition_hash", target.get("composition_hash")),
    ):
        if new.get(field) and expected:
            if new[field] != expected:
                raise _mismatch(f"{field} {new[field]}", f"{field} {expected}")
            return {**entry, "diff": summary}
    if (new.get("prompt") or summary.get("new")) != prompt:
        raise _mismatch(str(new.get("prompt") or summary.get("new")), prompt)
    return {**entry, "diff": summary}


def _mismatch(diffed: str, moving_to: str) -> errors.InvalidRequest:
    return errors.InvalidRequest(
        f"the attached diff's new side is {diffed}, but this change moves to {moving_to}",
        param="diff",
        hint="diff the exact version or release you promote, then attach that diff",
    )
