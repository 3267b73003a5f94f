"""Datasets and eval runs over HTTP. CI holds an application key, so reading datasets and
recording runs accept one granted the `evals` scope; creating datasets needs the admin
token."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import ConfigDict, Field, field_validator

from pilothouse.evals import dataset_store as datasets
from pilothouse.evals import runs
from pilothouse.web.auth import Access
from pilothouse.web.endpoint import Api, Body, Call, Query, parse_since
from pilothouse.web.fields import INT32_MAX, Json, Name, Seed, Text
from pilothouse.web.rendering import Result

api = Api()


class PushDataset(Body):
    rows: list[Json] = Field(min_length=1)
    source: Text | None = None


class FromLogs(Body):
    route: Name
    sample: int = Field(default=200, ge=1, le=100_000)
    since: str | None = Field(default=None, max_length=64)
    seed: Seed | None = None

    @field_validator("since")
    @classmethod
    def _since(cls, value: str | None) -> str | None:
        parse_since(value)
        return value


class RunArtifact(Body):
    """What `pilothouse eval run` writes; fields beyond these are kept in the artifact."""

    model_config = ConfigDict(extra="allow", strict=True)
    id: Annotated[Name, Field(max_length=40)]  # the eval_runs key
    suite: Name
    manifest: dict[str, Json]
    summary: dict[str, Json]
    results: dict[str, Json]
    owner: Name | None = None
    passed: bool = False


class RunsQuery(Query):
    suite: Name | None = None


class VersionQuery(Query):
    version: int | None = Field(default=None, ge=1, le=INT32_MAX)


@api.post("/api/datasets/{name}/versions", Access.ADMIN)
async def push_dataset(call: Call, body: PushDataset) -> Result:
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
async def dataset_from_logs(call: Call, body: FromLogs) -> Result:
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


@api.get("/api/datasets", Access.EVALS)
async def list_datasets(call: Call) -> dict[str, Any]:
    return {"data": await call.run(datasets.list_datasets, call.services.store)}


@api.get("/api/datasets/{name}", Access.EVALS)
async def get_dataset(call: Call, query: VersionQuery) -> dict[str, Any]:
    return await call.run(
        datasets.get_version, call.services.store, call.path["name"], query.version
    )


@api.post("/api/evals/runs", Access.EVALS)
async def record_run(call: Call, body: RunArtifact) -> Result:
    artifact = body
    run_id = await call.run(runs.record_run, call.services.store, artifact.model_dump())
    return Result({"id": run_id}, status=201)


@api.get("/api/evals/runs", Access.EVALS)
async def list_runs(call: Call, query: RunsQuery) -> dict[str, Any]:
    return {"data": await call.run(runs.list_runs, call.services.store, query.suite)}


@api.get("/api/evals/runs/{run_id}", Access.EVALS)
async def get_run(call: Call) -> dict[str, Any]:
    return await call.run(runs.get_run, call.services.store, call.path["run_id"])
