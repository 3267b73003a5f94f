"""Deprecation debt: routes whose active or canary release pins a model that is retired,
retiring soon, deprecated, or not yet GA."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from typing import Any

from pilothouse.config import ModelSpec
from pilothouse.registry import catalog


def route_warnings(
    routes: list[dict[str, Any]], models: Mapping[str, ModelSpec], *, today: date, within_days: int
) -> list[dict[str, Any]]:
    """One entry per (route, side) that pins a model worth a warning, worst first."""
    order = {"retired": 0, "retiring": 1, "deprecated": 2, "preview": 3}
    found = []
    for route in routes:
        for side in ("active", "canary"):
            release = route.get(side)
            if not release:
                continue
            spec = models.get(release["model"])
            warning = (
                catalog.warning_for(release["model"], spec, today, within_days)
                if spec is not None
                else catalog.ModelWarning(
                    release["model"], "retired", f"{release['model']} is not in the catalog"
                )
            )
            if warning is not None:
                found.append(
                    {
                        "route": route["name"],
                        "owner": route.get("owner"),
                        "side": side,
                        "release_id": release["id"],
                        **warning.public(),
                        "successor": spec.successor if spec else None,
                    }
                )
    return sorted(found, key=lambda w: (order[w["problem"]], w["route"], w["side"]))
