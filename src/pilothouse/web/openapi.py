"""The OpenAPI description of /v1 and /api, made from the code: each admin endpoint's
declared body and query models (web/endpoint.py), and the gateway's request shapes below.
Served at GET /openapi.json."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from pydantic import BaseModel

from pilothouse import __version__
from pilothouse.web.auth import Access
from pilothouse.web.endpoint import Operation

ERROR = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["type", "message"],
            "properties": {
                "type": {"type": "string"},
                "message": {"type": "string"},
                "hint": {"type": "string"},
                "field": {"type": "string"},
                "code": {"type": "string"},
            },
        }
    },
}
OPENAI_ERROR = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["message", "type"],
            "properties": {
                "message": {"type": "string"},
                "type": {"type": "string"},
                "param": {"type": ["string", "null"]},
                "code": {"type": ["string", "null"]},
            },
        }
    },
}
_PATH_PARAM = re.compile(r"\{(\w+)\}")


def describe(operations: Iterable[Operation], models: Iterable[str]) -> dict[str, Any]:
    """The whole document; `models` are the configured aliases (the `model` enum)."""
    components: dict[str, Any] = {
        "schemas": {"Error": ERROR, "OpenAIError": OPENAI_ERROR},
        "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
    }
    paths: dict[str, Any] = {}
    for operation in operations:
        entry = _operation(operation, components["schemas"])
        paths.setdefault(operation.path, {})[operation.method.lower()] = entry
    paths.update(_gateway_paths(sorted(models)))
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Pilothouse",
            "version": __version__,
            "description": "The gateway (/v1, OpenAI-compatible) and the admin API (/api).",
        },
        "paths": paths,
        "components": components,
    }


def _operation(operation: Operation, schemas: dict[str, Any]) -> dict[str, Any]:
    doc = (operation.function.__doc__ or "").strip().split("\n\n")[0]
    entry: dict[str, Any] = {
        "operationId": operation.function.__name__ + "_" + operation.method.lower(),
        "summary": " ".join(doc.split()) or operation.function.__name__.replace("_", " "),
        "parameters": [
            {
                "name": name,
                "in": "path",
                "required": True,
                "schema": _path_schema(operation, name),
            }
            for name in _PATH_PARAM.findall(operation.path)
        ],
        "responses": {
            "200": {"description": "OK", "content": {"application/json": {"schema": {}}}},
            "4XX": {
                "description": "Refused",
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
            },
        },
    }
    if operation.access is not Access.PUBLIC:
        entry["security"] = [{"bearer": []}]
    if operation.query is not None:
        entry["parameters"] += _query_parameters(operation.query)
    body = operation.body or operation.doc_body
    if body is not None:
        entry["requestBody"] = {
            "required": not operation.body_optional,
            "content": {"application/json": {"schema": _schema(body, schemas)}},
        }
    return entry


def _path_schema(operation: Operation, name: str) -> dict[str, Any]:
    rule = operation.path_rules.get(name)
    if rule is None:
        return {"type": "string", "maxLength": 200}
    return {"type": "string", "pattern": rule[0], "description": rule[1]}


def _schema(model: type[BaseModel], schemas: dict[str, Any]) -> dict[str, Any]:
    schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
    schemas.update(schema.pop("$defs", {}))
    schemas[model.__name__] = schema
    return {"$ref": f"#/components/schemas/{model.__name__}"}


def _query_parameters(model: type[BaseModel]) -> list[dict[str, Any]]:
    schema = model.model_json_schema()
    out = []
    for name, prop in schema.get("properties", {}).items():
        options = prop.get("anyOf")
        if options:  # `X | None`: in a query string, absent is the None
            kept = [o for o in options if o.get("type") != "null"]
            prop = {
                **{k: v for k, v in prop.items() if k != "anyOf"},
                **(kept[0] if len(kept) == 1 else {"anyOf": kept}),
            }
        prop.pop("default", None)
        prop.pop("title", None)
        out.append({"name": name, "in": "query", "required": False, "schema": prop})
    return out


def _gateway_paths(models: list[str]) -> dict[str, Any]:
    model = {"type": "string", "enum": models} if models else {"type": "string"}
    message = {
        "type": "object",
        "required": ["role", "content"],
        "properties": {
            "role": {"type": "string", "enum": ["system", "developer", "user", "assistant"]},
            "content": {"type": "string", "maxLength": 2000},
        },
    }
    chat = {
        "type": "object",
        "required": ["model", "messages"],
        "properties": {
            "model": model,
            "messages": {"type": "array", "items": message, "minItems": 1, "maxItems": 8},
            "stream": {"type": "boolean"},
            "max_tokens": {"type": "integer", "minimum": 1, "maximum": 4096},
            "temperature": {"type": "number", "minimum": 0, "maximum": 1},
            "user": {"type": "string", "maxLength": 200},
            "seed": {"type": "integer", "minimum": 0, "maximum": 2**31 - 1},
        },
    }
    embeddings = {
        "type": "object",
        "required": ["model", "input"],
        "properties": {
            "model": model,
            "input": {
                "anyOf": [
                    {"type": "string", "maxLength": 2000},
                    {
                        "type": "array",
                        "items": {"type": "string", "maxLength": 200},
                        "minItems": 1,
                        "maxItems": 8,
                    },
                ]
            },
        },
    }
    error = {
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/OpenAIError"}}}
    }
    ok = {"content": {"application/json": {"schema": {"type": "object"}}}}

    def post(summary: str, schema: dict[str, Any], op_id: str) -> dict[str, Any]:
        return {
            "post": {
                "operationId": op_id,
                "summary": summary,
                "security": [{"bearer": []}],
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": schema}},
                },
                "responses": {
                    "200": {"description": "OK", **ok},
                    "4XX": {"description": "Refused", **error},
                },
            }
        }

    def get(
        summary: str, op_id: str, params: list[dict[str, Any]] | None = None, method: str = "get"
    ) -> dict[str, Any]:
        return {
            method: {
                "operationId": op_id,
                "summary": summary,
                "security": [{"bearer": []}],
                "parameters": params or [],
                "responses": {
                    "200": {"description": "OK", **ok},
                    "4XX": {"description": "Refused", **error},
                },
            }
        }

    response_id = [
        {
            "name": "response_id",
            "in": "path",
            "required": True,
            "schema": {"type": "string", "maxLength": 200},
        }
    ]
    return {
        "/v1/responses/{response_id}": {
            **get("A response stored for this key", "get_response", response_id),
            **get("Delete it", "delete_response", response_id, method="delete"),
        },
        "/v1/responses/{response_id}/input_items": get(
            "The conversation a stored response answered", "list_input_items", response_id
        ),
        "/v1/chat/completions": post(
            "A chat completion (OpenAI-compatible)", chat, "chat_completions"
        ),
        "/v1/embeddings": post("Embeddings (OpenAI-compatible)", embeddings, "embeddings"),
        "/v1/models": get("The model aliases this key may use", "list_models_v1"),
        "/v1/models/{model}": get(
            "One model alias",
            "get_model_v1",
            [
                {
                    "name": "model",
                    "in": "path",
                    "required": True,
                    "schema": {"type": "string", "maxLength": 200},
                }
            ],
        ),
    }
