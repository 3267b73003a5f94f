"""Datasets and eval runs over HTTP. CI holds an application key, so reading datasets and
recording runs accept one; creating datasets needs the admin token."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from pilothouse import errors
from pilothouse.evals import datasets
from pilothouse.store import evals as rows
from pilothouse.web.api import admin, json_body, jsonable, parse_since, reader
from pilothouse.web.prompts_api import actor

if TYPE_CHECKING:
    from pilothouse.server import Server


@admin
async def push_dataset(request: Request) -> Response:
    server: Server = request.app.state.server
    body = await json_body(request)
    data = body.get("rows")
    if not isinstance(data, list) or not data:
        raise errors.InvalidRequest(
            "`rows` is required: a non-empty list of dataset rows", param="rows"
        )
    result = await asyncio.to_thread(
        datasets.store_version,
        server.store,
        request.path_params["name"],
        data,
        source=body.get("source") if isinstance(body.get("source"), str) else None,
        actor=actor(request),
    )
    return JSONResponse(result, status_code=201 if result["created"] else 200)


@admin
async def dataset_from_logs(request: Request) -> Response:
    server: Server = request.app.state.server
    body = await json_body(request)
    route = body.get("route")
    sample = body.get("sample", 200)
    if not isinstance(route, str):
        raise errors.InvalidRequest("`route` is required", param="route")
    if not isinstance(sample, int) or isinstance(sample, bool) or not 1 <= sample <= 100_000:
        raise errors.InvalidRequest("`sample` must be an integer from 1 to 100000", param="sample")
    since = parse_since(body.get("since") or "7d")
    assert since is not None
    seed = body.get("seed")
    result = await asyncio.to_thread(
        datasets.from_logs,
        server.store,
        request.path_params["name"],
        route=route,
        since=since,
        sample=sample,
        actor=actor(request),
        seed=seed if isinstance(seed, int) else None,
    )
    return JSONResponse(result, status_code=201 if result["created"] else 200)


@reader
async def list_datasets(request: Request) -> Response:
    server: Server = request.app.state.server

    def fetch() -> list[dict[str, Any]]:
        with server.store.connect() as conn:
            return rows.all_datasets(conn)

    data = await asyncio.to_thread(fetch)
    return JSONResponse({"data": [{k: jsonable(v) for k, v in r.items()} for r in data]})


@reader
async def get_dataset(request: Request) -> Response:
    server: Server = request.app.state.server
    raw = request.query_params.get("version")
    if raw is not None and not raw.isdigit():
        raise errors.InvalidRequest(f"`version` must be a number, got {raw!r}", param="version")
    row = await asyncio.to_thread(
        datasets.get_version, server.store, request.path_params["name"], int(raw) if raw else None
    )
    return JSONResponse({k: jsonable(v) for k, v in row.items()})


@reader
async def record_run(request: Request) -> Response:
    server: Server = request.app.state.server
    body = await json_body(request)
    for field in ("id", "suite", "manifest", "summary", "results"):
        if field not in body:
            raise errors.InvalidRequest(
                f"`{field}` is required: post the artifact `pilothouse eval run` writes",
                param=field,
            )
    row = {
        "id": str(body["id"]),
        "suite": str(body["suite"]),
        "owner": body.get("owner"),
        "passed": bool(body.get("passed")),
        "replay_of": (body["manifest"] or {}).get("replay_of"),
        "manifest": body["manifest"],
        "summary": body["summary"],
        "results": body["results"],
        "created_at": datetime.now(UTC),
    }

    def insert() -> None:
        with server.store.begin() as conn:
            if rows.run(conn, row["id"]) is not None:
                raise errors.Conflict(f"run {row['id']} is already recorded")
            rows.insert_run(conn, row)

    await asyncio.to_thread(insert)
    return JSONResponse({"id": row["id"]}, status_code=201)


@reader
async def list_runs(request: Request) -> Response:
    server: Server = request.app.state.server

    def fetch() -> list[dict[str, Any]]:
        with server.store.connect() as conn:
            return rows.runs(conn, request.query_params.get("suite"), limit=200)

    data = await asyncio.to_thread(fetch)
    return JSONResponse({"data": [{k: jsonable(v) for k, v in r.items()} for r in data]})


@reader
async def get_run(request: Request) -> Response:
    server: Server = request.app.state.server

    def fetch() -> dict[str, Any] | None:
        with server.store.connect() as conn:
            return rows.run(conn, request.path_params["run_id"])

    row = await asyncio.to_thread(fetch)
    if row is None:
        raise errors.NotFound(
            f"no eval run {request.path_params['run_id']!r}",
            hint="`pilothouse eval runs` lists them",
        )
    return JSONResponse({k: jsonable(v) for k, v in row.items()})


routes = [
    Route("/api/datasets", list_datasets, methods=["GET"]),
    Route("/api/datasets/{name}", get_dataset, methods=["GET"]),
    Route("/api/datasets/{name}/versions", push_dataset, methods=["POST"]),
    Route("/api/datasets/{name}/from-logs", dataset_from_logs, methods=["POST"]),
    Route("/api/evals/runs", list_runs, methods=["GET"]),
    Route("/api/evals/runs", record_run, methods=["POST"]),
    Route("/api/evals/runs/{run_id}", get_run, methods=["GET"]),
]
