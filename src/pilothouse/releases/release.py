"""A release: what a route serves, immutable once made."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any


@dataclass(frozen=True)
class Release:
    id: str
    route: str
    prompt_name: str
    prompt_version: int
    prompt_hash: str  # the version's own content hash
    model_alias: str
    params: dict[str, Any]
    fragments: dict[str, dict[str, Any]] | None  # None: made before 0006, not frozen
    composition_hash: str | None
    note: str | None
    created_by: str
    created_at: datetime

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> Release:
        fragments = row.get("fragments")
        return cls(
            id=row["id"],
            route=row["route"],
            prompt_name=row["prompt_name"],
            prompt_version=row["prompt_version"],
            prompt_hash=row["prompt_hash"],
            model_alias=row["model_alias"],
            params=row["params"] if isinstance(row["params"], dict) else {},
            fragments=fragments if isinstance(fragments, dict) else None,
            composition_hash=row.get("composition_hash"),
            note=row["note"],
            created_by=row["created_by"],
            created_at=row["created_at"],
        )

    def public(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "route": self.route,
            "prompt": f"{self.prompt_name}@{self.prompt_version}",
            "prompt_name": self.prompt_name,
            "prompt_version": self.prompt_version,
            # What the request log and X-Pilothouse-Prompt-Hash carry: the composed prompt.
            "prompt_hash": self.composition_hash or self.prompt_hash,
            "version_hash": self.prompt_hash,
            "fragments": self.fragments,
            "frozen": self.fragments is not None,
            "model": self.model_alias,
            "params": self.params,
            "note": self.note,
            "created_by": self.created_by,
            "created_at": self.created_at.isoformat(),
        }
