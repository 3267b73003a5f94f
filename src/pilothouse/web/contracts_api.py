"""Contracts, their verifications, the promotion gate's answer and the dependency map over
HTTP. Adding and removing contracts needs the admin token; reading them, recording a
verification and asking the gate take a key with the `evals` scope (CI does them)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from pilothouse import errors
from pilothouse.contracts import can_promote, register, spec, verification
from pilothouse.registry import dependency_map, names
from pilothouse.web.auth import Access
from pilothouse.web.endpoint import Api, Body, Call, Query
from pilothouse.web.fields import Count, Ident, Json, Label, LongText, Name, Text
from pilothouse.web.rendering import Result

api = Api(
    {
        "contract_id": (r"^ctr_[0-9a-f]{1,32}$", "a contract id such as ctr_1a2b3c4d5e6f"),
        "name": (names.NAME_PATTERN, names.NAME_RULE),
    }
)
MAX_SAMPLES = spec.MAX_SAMPLES


class Subject(Query):
    prompt: Ident | None = None
    route: Ident | None = None

    def which(self) -> tuple[str, str]:
        if (self.prompt is None) == (self.route is None):
            raise errors.InvalidRequest("give `prompt` or `route`, exactly one")
        return ("prompt", self.prompt) if self.prompt else ("route", str(self.route))


class Removal(Body):
    reason: Text | None = None


class OutputBody(Body):
    """One answer as the eval runner recorded it."""

    text: LongText | None = None
    tool_calls: list[dict[str, Json]] | None = None
    finish_reason: Name | None = None
    latency_ms: float = Field(default=0.0, ge=0)
    cost_usd: float | None = Field(default=None, ge=0)
    prompt_tokens: Count = 0
    completion_tokens: Count = 0
    model: Name | None = None
    error: LongText | None = None
    error_kind: Literal["infra", "refused"] | None = None
    refusal: LongText | None = None


class SampleBody(Body):
    id: Name
    outputs: list[OutputBody] = Field(min_length=1, max_length=spec.MAX_REPEATS)


class VerifiedSubject(Body):
    prompt: Name | None = Field(default=None, description="NAME@VERSION")
    route: Ident | None = None
    release: Literal["active", "canary"] | None = None
    model: Name | None = None
    params: dict[str, Json] | None = Field(default=None, max_length=20)


class VerificationBody(Body):
    """What `pilothouse contracts verify` ran: on what (`subject`, and the runner's record
    of its `target`), for which revision of the contract, and every output per sample."""

    subject: VerifiedSubject
    spec_hash: str = Field(pattern=r"^[0-9a-f]{64}$")
    run_id: Name | None = None
    target: dict[str, Json]
    samples: list[SampleBody] = Field(min_length=1, max_length=MAX_SAMPLES)


class PromotionQuestion(Body):
    """Could this be promoted now? A prompt version to a label, or a release to a route:
    its running canary (`from_canary`), or the one `prompt`, `model`, `params` would make."""

    prompt: Name | None = Field(default=None, description="NAME@VERSION or NAME@LABEL")
    label: Label | None = None
    route: Ident | None = None
    from_canary: bool = False
    model: Name | None = None
    params: dict[str, Json] | None = Field(default=None, max_length=20)

    @model_validator(mode="after")
    def _one_question(self) -> PromotionQuestion:
        if self.route is None and (
            self.prompt is None or self.from_canary or self.model or self.params
        ):
            raise ValueError(
                "ask about a prompt (`prompt`, `label`) or a route (`route` with "
                "`from_canary`, or with `prompt` and `model`)"
            )
        if self.route is not None and self.label is not None:
            raise ValueError("`label` is for prompts; a route's release has no label")
        if self.route is not None and self.from_canary == bool(self.prompt or self.model):
            raise ValueError("for a route give `from_canary: true`, or `prompt` and `model`")
        return self


@api.post("/api/contracts", Access.ADMIN, doc_body=spec.ContractFile)
async def add_contract(call: Call) -> Result:
    """Add a contract (pending until it first passes); the same contract again is left as
    it is, a changed one is pending again."""
    contract = spec.parse(await call.json_object())
    added = await call.run(
        register.add,
        call.services.store,
        contract,
        actor=call.actor,
        models=call.services.config.models,
    )
    return Result(added, status=201 if added["outcome"] == "created" else 200)


@api.get("/api/contracts", Access.EVALS)
async def list_contracts(call: Call, query: Subject) -> dict[str, Any]:
    """The contracts on a prompt (`?prompt=`) or a route (`?route=`), each with its status
    and last verification."""
    kind, name = query.which()
    data = await call.run(register.list_contracts, call.services.store, kind, name)
    return {"data": data}


@api.get("/api/contracts/{contract_id}", Access.EVALS)
async def get_contract(call: Call) -> dict[str, Any]:
    return await call.run(register.get, call.services.store, call.path["contract_id"])


@api.delete("/api/contracts/{contract_id}", Access.ADMIN)
async def remove_contract(call: Call, body: Removal | None) -> dict[str, Any]:
    return await call.run(
        register.remove,
        call.services.store,
        call.path["contract_id"],
        actor=call.actor,
        reason=body.reason if body else None,
    )


@api.post("/api/contracts/{contract_id}/verifications", Access.EVALS)
async def record_verification(call: Call, body: VerificationBody) -> Result:
    """Judge the outputs a verification got against the contract and store the verdict (a
    first pass makes a pending contract active)."""
    submitted = body.model_dump()
    submitted["subject"] = body.subject.model_dump(exclude_none=True)
    submitted["samples"] = [
        {"id": s.id, "outputs": [o.model_dump(exclude_none=True) for o in s.outputs]}
        for s in body.samples
    ]
    result = await call.run(
        verification.record,
        call.services.store,
        call.path["contract_id"],
        submitted,
        actor=call.actor,
    )
    return Result(result, status=201)


@api.post("/api/can-i-promote", Access.EVALS)
async def can_i_promote(call: Call, body: PromotionQuestion) -> dict[str, Any]:
    """The promotion gate's answer (`allowed`) with its reasons, changing nothing."""
    services = call.services
    if body.route is None:
        assert body.prompt is not None
        return await call.run(
            can_promote.prompt_label,
            services.store,
            services.config.promotion,
            body.prompt,
            body.label or "production",
        )
    return await call.run(
        can_promote.route_release,
        services.store,
        services.config.promotion,
        services.config.models,
        body.route,
        from_canary=body.from_canary,
        prompt=body.prompt,
        model=body.model,
        params=body.params or {},
    )


@api.get("/api/prompts/{name}/dependencies", Access.ROUTES)
async def dependencies(call: Call) -> dict[str, Any]:
    """Who depends on a prompt: its labels, the routes whose releases serve it or include
    it as a fragment (which versions), the prompts that include it, and the consumers
    holding contracts on it and on those routes."""
    return await call.run(
        dependency_map.dependency_map,
        call.services.store,
        call.path["name"],
        call.services.config.promotion,
    )
