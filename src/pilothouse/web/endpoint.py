"""Declaring admin API endpoints: a data function per endpoint, taking a `Call` (the
request, the services, the caller) and, when it declares them, its parsed `body` and
`query`; it returns data. Authentication, parsing, validation of path parameters and
rendering happen here, once, and the same declarations make the OpenAPI description.

    api = Api()

    @api.post("/api/keys", Access.ADMIN)
    async def create_key(call: Call, body: CreateKey) -> Result: ...

    @api.get("/api/requests", Access.ADMIN)
    async def list_requests(call: Call, query: RequestFilters) -> dict[str, Any]: ...

A body annotated `Model | None` is optional (an empty body reads as `{}`).
"""

from __future__ import annotations

import asyncio
import dataclasses
import re
import types
import typing
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from starlette.datastructures import QueryParams
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Route

from pilothouse import errors
from pilothouse.services import Services
from pilothouse.web.auth import Access, Principal, authorize
from pilothouse.web.rendering import render

M = TypeVar("M", bound=BaseModel)
DataFunction = Callable[..., Awaitable[Any]]

MAX_BODY_BYTES = 32 * 1024 * 1024  # an admin body (a prompt, a dataset, an eval run)


class Body(BaseModel):
    """A request body: unknown fields are refused (a typo would silently do nothing) and
    values are not coerced (`"5"` is not a number)."""

    model_config = ConfigDict(extra="forbid", strict=True)


class Query(BaseModel):
    """Query parameters: text converted to the declared types, bounded by them; unknown
    parameters are ignored (caches and proxies add their own)."""

    model_config = ConfigDict(extra="ignore")


PAGE_LIMIT = 1000


class Page(Query):
    """A page of a list: `limit` items (1-1000, default 1000) after `after`, the previous
    page's `next_after` (absent: the first page)."""

    limit: int = Field(default=PAGE_LIMIT, ge=1, le=PAGE_LIMIT)
    after: str | None = Field(default=None, min_length=1, max_length=200)

    @field_validator("after")
    @classmethod
    def _cursor(cls, value: str | None) -> str | None:
        if value is not None and not value.isprintable():
            raise ValueError("not a cursor: send the previous page's `next_after` as it came")
        return value


FIRST_PAGE = Page()


def paged(data: list[Any], read: int, query: Page, last: str | None) -> dict[str, Any]:
    """A list answer: `data`, and `next_after` (the cursor of the next page, None on the
    last one). `read` is how many items the page read before any filtering; `last`
    the cursor of the last one read."""
    return {"data": data, "next_after": last if read == query.limit else None}


MAX_PATH_PARAM_CHARS = 200
# A path parameter's rule, when it has one: (regular expression, the rule in words).
PathRules = Mapping[str, tuple[str, str]]


CONFIG_VERSION_HEADER = "X-Pilothouse-Config-Version"


@dataclass(slots=True)
class Call:
    request: Request
    services: Services
    principal: Principal | None
    # Set by `announce`: the configuration version that includes this call's write, sent
    # back as the X-Pilothouse-Config-Version header.
    config_version: int | None = None

    async def announce(self) -> int:
        """This call's write committed: apply it here (read-your-writes), tell the other
        instances, and answer with the configuration version that includes it."""
        self.config_version = await self.services.announce()
        return self.config_version

    @property
    def path(self) -> Mapping[str, str]:
        return self.request.path_params

    @property
    def query(self) -> QueryParams:
        return self.request.query_params

    @property
    def actor(self) -> str:
        return self.principal.actor if self.principal else "anonymous"

    async def run(self, function: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
        return await self.services.run(function, *args, **kwargs)

    async def body(self, model: type[M], *, optional: bool = False) -> M:
        """The JSON body parsed into `model`; InvalidRequest names the field at fault.
        With `optional`, an empty body reads as `{}`."""
        return parse(model, await self.json_object(optional=optional))

    async def json_object(self, *, optional: bool = False) -> dict[str, Any]:
        """The body as a JSON object (size- and time-limited)."""
        raw = await read_limited(
            self.request, self.services.config.gateway.body_read_timeout_seconds
        )
        if not raw.strip():
            if optional:
                return {}
            raise errors.InvalidRequest("the request body is empty; send a JSON object")
        try:
            data = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise errors.InvalidRequest(f"the request body is not valid JSON: {exc}") from None
        if not isinstance(data, dict):
            raise errors.InvalidRequest(
                f"the request body must be a JSON object, got {type(data).__name__}"
            )
        return data


def parse(model: type[M], data: Any, *, where: str = "body") -> M:
    """`data` validated as `model`; the one mapping of validation errors to ours."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"]) or f"({where})"
        message = str(first["msg"]).removeprefix("Value error, ")
        if first["type"] == "extra_forbidden":
            known = ", ".join(sorted(model.model_fields))
            message = f"unknown field; this endpoint takes {known}"
        kind = "query parameter " if where == "query" else ""
        raise errors.InvalidRequest(f"{kind}`{field}`: {message}", param=field) from None


async def read_limited(request: Request, timeout_seconds: float) -> bytes:
    """The body, refusing one over MAX_BODY_BYTES and one that takes longer than
    `timeout_seconds` to arrive (a slow client, or a Content-Length longer than the body)."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise _too_large(int(declared))
    parts: list[bytes] = []
    size = 0
    try:
        async with asyncio.timeout(timeout_seconds):
            async for chunk in request.stream():
                size += len(chunk)
                if size > MAX_BODY_BYTES:
                    raise _too_large(size)
                parts.append(chunk)
    except TimeoutError:
        raise errors.RequestTimeout(
            f"the request body did not arrive within {timeout_seconds:g} s ({size} bytes read)",
            hint="check Content-Length matches the body",
        ) from None
    except ClientDisconnect:
        raise errors.InvalidRequest("the client disconnected before sending the body") from None
    return b"".join(parts)


def _too_large(size: int) -> errors.PayloadTooLarge:
    return errors.PayloadTooLarge(
        f"request body is {size} bytes; the admin API takes at most {MAX_BODY_BYTES} bytes"
    )


_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
MAX_LOOKBACK = timedelta(days=3660)


def parse_since(value: str | None, name: str = "since") -> datetime | None:
    """An ISO time, or a duration back from now: 30s, 15m, 2h, 7d (up to ten years)."""
    if not value:
        return None
    amount, unit = value[:-1], value[-1:]
    if unit in _UNITS and amount.isascii() and amount.isdigit() and len(amount) <= 9:
        back = timedelta(seconds=int(amount) * _UNITS[unit])
        return datetime.now(UTC) - min(back, MAX_LOOKBACK)
    return parse_time(value, name)


def parse_time(value: Any, name: str) -> datetime | None:
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > 64:
        raise errors.InvalidRequest(f"`{name}` must be an ISO date or datetime", param=name)
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise errors.InvalidRequest(
            f"`{name}` must be an ISO date or datetime such as 2027-01-31 or a duration "
            f"such as 15m, 2h, 7d; got {value!r}",
            param=name,
        ) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


@dataclass(frozen=True)
class Operation:
    """One endpoint as declared: what the OpenAPI description is made from."""

    method: str
    path: str
    access: Access
    function: DataFunction
    body: type[BaseModel] | None
    body_optional: bool
    query: type[BaseModel] | None
    doc_body: type[BaseModel] | None = None  # a body the function reads itself, for the docs
    path_rules: PathRules = dataclasses.field(default_factory=dict)


class Api:
    """The endpoints of one API module, as Starlette routes and as declared operations."""

    def __init__(self, path_rules: PathRules | None = None) -> None:
        self.routes: list[Route] = []
        self.operations: list[Operation] = []
        self.path_rules = dict(path_rules or {})  # for every endpoint of this module

    def endpoint(
        self, method: str, path: str, access: Access, *, doc_body: type[BaseModel] | None = None
    ) -> Callable[[DataFunction], DataFunction]:
        def register(function: DataFunction) -> DataFunction:
            operation = _operation(method, path, access, function, doc_body)
            operation = dataclasses.replace(operation, path_rules=self.path_rules)
            compiled = {n: (re.compile(p), rule) for n, (p, rule) in self.path_rules.items()}

            async def handle(request: Request) -> Response:
                services: Services = request.app.state.services
                principal = authorize(request, services, access)
                _check_path(request.path_params, compiled)
                call = Call(request, services, principal)
                kwargs: dict[str, Any] = {}
                if operation.body is not None:
                    kwargs["body"] = await call.body(
                        operation.body, optional=operation.body_optional
                    )
                if operation.query is not None:
                    kwargs["query"] = parse(
                        operation.query, dict(request.query_params), where="query"
                    )
                response = render(request, await function(call, **kwargs))
                if call.config_version is not None:
                    response.headers[CONFIG_VERSION_HEADER] = str(call.config_version)
                return response

            handle.__name__ = function.__name__
            handle.__doc__ = function.__doc__
            self.routes.append(Route(path, handle, methods=[method], name=function.__name__))
            self.operations.append(operation)
            return function

        return register

    def get(self, path: str, access: Access) -> Callable[[DataFunction], DataFunction]:
        return self.endpoint("GET", path, access)

    def post(
        self, path: str, access: Access, *, doc_body: type[BaseModel] | None = None
    ) -> Callable[[DataFunction], DataFunction]:
        return self.endpoint("POST", path, access, doc_body=doc_body)

    def put(self, path: str, access: Access) -> Callable[[DataFunction], DataFunction]:
        return self.endpoint("PUT", path, access)

    def delete(self, path: str, access: Access) -> Callable[[DataFunction], DataFunction]:
        return self.endpoint("DELETE", path, access)


def _operation(
    method: str,
    path: str,
    access: Access,
    function: DataFunction,
    doc_body: type[BaseModel] | None,
) -> Operation:
    hints = typing.get_type_hints(function)
    body, optional = hints.get("body"), False
    if isinstance(body, types.UnionType):
        members = [m for m in typing.get_args(body) if m is not type(None)]
        body, optional = members[0], True
    return Operation(method, path, access, function, body, optional, hints.get("query"), doc_body)


def _check_path(
    params: Mapping[str, str], rules: Mapping[str, tuple[re.Pattern[str], str]]
) -> None:
    for name, value in params.items():
        if len(value) > MAX_PATH_PARAM_CHARS or not value.isprintable():
            raise errors.InvalidRequest(
                f"`{name}` in the path must be printable text of at most "
                f"{MAX_PATH_PARAM_CHARS} characters",
                param=name,
            )
        rule = rules.get(name)
        if rule is not None and not rule[0].fullmatch(value):
            raise errors.InvalidRequest(
                f"`{name}` in the path is {value[:60]!r}; it must be {rule[1]}", param=name
            )
