"""What one registry event means for the SDK's cache: the entries it affects, and the
prompt a label-move event carries for one of them (which spares that entry a fetch)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

Key = tuple[str, str | None, int | None]  # (name, label, version): one of label/version set


def affected_keys(entries: Mapping[Key, Any], name: str, label: str | None) -> list[Key]:
    """The cached entries an event on `name` (`label`: the label that changed, None for a
    new version) affects: its entries on that label (and unconfirmed pinned copies), then
    the labelled entries whose prompt includes it through that label. `entries` values
    have `confirmed` and `prompt.fragments`."""
    direct: list[Key] = []
    includers: list[Key] = []
    for key, entry in list(entries.items()):
        if key[0] == name:
            moved = key[1] is not None and (label is None or key[1] == label)
            if moved or (key[2] is not None and not entry.confirmed):
                direct.append(key)
        elif key[1] is not None and any(
            fragment.name == name and (label is None or ref.partition("@")[2] == label)
            for ref, fragment in entry.prompt.fragments.items()
        ):
            includers.append(key)
    return direct + includers


def carried_prompt(data: Mapping[str, Any], key: Key) -> tuple[dict[str, Any], str] | None:
    """The prompt payload and ETag a label-move event carries, when they are what `key`
    (an entry on that prompt's moved label) would fetch; else None."""
    payload, etag = data.get("prompt"), data.get("etag")
    if key[1] is None or key[1] != data.get("label") or key[0] != data.get("name"):
        return None
    if not isinstance(payload, dict) or not isinstance(etag, str):
        return None
    if payload.get("name") != key[0] or payload.get("version") != data.get("version"):
        return None
    return payload, etag
