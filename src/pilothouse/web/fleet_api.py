"""The provider fleet over HTTP: each alias's deployments, their breaker state, failure
rate by class, latency, last trip and comparison flag, and the recent fleet events."""

from __future__ import annotations

from typing import Any

from pilothouse.web.auth import Access
from pilothouse.web.endpoint import Api, Call

api = Api()


@api.get("/api/fleet", Access.ADMIN)
async def fleet_status(call: Call) -> dict[str, Any]:
    """The fleet as this instance sees it (the breaker state is shared in shared mode; the
    windows count this instance's calls)."""
    return call.services.fleet.status()
