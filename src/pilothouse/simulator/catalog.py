"""GET /v1/models in both providers' shapes.

OpenAI and Anthropic share the path; a request carrying an `anthropic-version`
header (as the Anthropic SDK always sends) gets Anthropic's shape.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from pilothouse.simulator.errors import json_response
from pilothouse.simulator.state import SimulatorState

# A fixed creation time keeps the listing deterministic.
_CREATED = 1_700_000_000
_CREATED_AT = "2023-11-14T22:13:20Z"


class CatalogApi:
    """Model listing and lookup. Every model name is accepted elsewhere; this is informational."""

    def __init__(self, state: SimulatorState) -> None:
        self.state = state

    def routes(self) -> list[Route]:
        """The Starlette routes this API serves."""
        return [
            Route("/v1/models", self.list_models, methods=["GET"]),
            Route("/v1/models/{model_id:path}", self.get_model, methods=["GET"]),
        ]

    async def list_models(self, request: Request) -> Response:
        """GET /v1/models: the scenario's models (or the built-in list)."""
        models = self.state.scenario.listed_models()
        if "anthropic-version" in request.headers:
            data = [_anthropic_model(model_id) for model_id, _ in models]
            return json_response(
                {
                    "data": data,
                    "has_more": False,
                    "first_id": data[0]["id"] if data else None,
                    "last_id": data[-1]["id"] if data else None,
                }
            )
        return json_response(
            {
                "object": "list",
                "data": [_openai_model(model_id, owner) for model_id, owner in models],
            }
        )

    async def get_model(self, request: Request) -> Response:
        """GET /v1/models/{id}: any id is answered, since any model name is accepted."""
        model_id = request.path_params["model_id"]
        if "anthropic-version" in request.headers:
            return json_response(_anthropic_model(model_id))
        owners = dict(self.state.scenario.listed_models())
        return json_response(_openai_model(model_id, owners.get(model_id, "simulator")))


def _openai_model(model_id: str, owner: str) -> dict[str, Any]:
    return {"id": model_id, "object": "model", "created": _CREATED, "owned_by": owner}


def _anthropic_model(model_id: str) -> dict[str, Any]:
    return {"type": "model", "id": model_id, "display_name": model_id, "created_at": _CREATED_AT}
