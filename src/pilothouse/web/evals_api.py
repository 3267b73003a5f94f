"""Datasets and eval runs over HTTP. CI holds an application key, so reading datasets and
recording runs accept one; creating datasets needs the admin token."""

from __future__ import annotations

from typing import Any

from pydantic import ConfigDict

from pilothouse import errors
from pilothouse.evals import datasets, runs
from pilothouse.web.auth import Access
from pilothouse.web.endpoint import Api, Body, Call, parse_since
from pilothouse.web.rendering import Result

api = Api()


class PushDataset(Body):
    rows: list[Any]
    source: str | None = None


class FromLogs(Body):
    route: str
    sample: int = 200
    since: str | None = None
    seed: int | None = None


class RunArtifact(Body):
    """What `pilothouse eval run` writes; fields beyond these are kept in the artifact."""

    model_config = ConfigDict(extra="allow", strict=True)
    id: str
    suite: str
    manifest: dict[str, Any]
    summary: dict[str, Any]
    results: dict[str, Any]
    owner: str | None = None
    passed: bool = False


@api.post("/api/datasets/{name}/versions", Access.ADMIN)
async def push_dataset(call: Call) -> Result:
    body = await call.body(PushDataset)
    if not body.rows:
        raise errors.InvalidRequest(
            "`rows` is required: a non-empty list of dataset rows", param="rows"
        )
    result = await call.run(
        datasets.store_version,
        call.services.store,
        call.path["name"],
        body.rows,
        source=body.source,
        actor=call.actor,
    )
    return Result(result, status=201 if result["created"] else 200)


@api.post("/api/datasets/{name}/from-logs", Access.ADMIN)
async def dataset_from_logs(call: Call) -> Result:
    body = await call.body(FromLogs)
    if not 1 <= body.sample <= 100_000:
        raise errors.InvalidRequest("`sample` must be an integer from 1 to 100000", param="sample")
    since = parse_since(body.since or "7d")
    assert since is not None
    result = await call.run(
        datasets.from_logs,
        call.services.store,
        call.path["name"],
        route=body.route,
        since=since,
        sample=body.sample,
        actor=call.actor,
        seed=body.seed,
    )
    return Result(result, status=201 if result["created"] else 200)


@api.get("/api/datasets", Access.READER)
async def list_datasets(call: Call) -> dict[str, Any]:
    return {"data": await call.run(datasets.list_datasets, call.services.store)}


@api.get("/api/datasets/{name}", Access.READER)
async def get_dataset(call: Call) -> dict[str, Any]:
    version = call.int_query("version", None, low=1, high=2**31 - 1)
    return await call.run(datasets.get_version, call.services.store, call.path["name"], version)


@api.post("/api/evals/runs", Access.READER)
async def record_run(call: Call) -> Result:
    artifact = await call.body(RunArtifact)
    run_id = await call.run(runs.record_run, call.services.store, artifact.model_dump())
    return Result({"id": run_id}, status=201)


@api.get("/api/evals/runs", Access.READER)
async def list_runs(call: Call) -> dict[str, Any]:
    suite = call.text_query("suite")
    return {"data": await call.run(runs.list_runs, call.services.store, suite)}


@api.get("/api/evals/runs/{run_id}", Access.READER)
async def get_run(call: Call) -> dict[str, Any]:
    return await call.run(runs.get_run, call.services.store, call.path["run_id"])
