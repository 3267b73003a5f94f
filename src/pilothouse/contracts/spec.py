"""Contract files (`contracts/<name>.yaml`): what a consumer team relies on in a prompt's
or a route's output, on which sample inputs, and how often it must hold.

```yaml
name: billing-router          # unique per consumer and prompt (or route)
consumer: billing             # the team that relies on it
prompt: triage                # or `route: support-triage` (no model or params then)
model: fast                   # prompt contracts: the model alias the samples run on
params: {temperature: 0}
samples:                      # inline rows, as in a dataset ...
  - {id: refund, variables: {ticket: "Refund my annual plan"}}
# samples: {dataset: triage, version: 3}   # ... or a stored dataset version
tolerance: {min_pass_rate: 0.98, repeats: 3}
expect:
  json_schema: {type: object, required: [label]}
  labels: {path: label, allowed: [billing, bug, question]}
  required_phrases: ["queue"]
  forbidden_phrases: ["I cannot"]
  patterns: ['^\\{']          # or {pattern: ..., flags: i}
  forbidden_patterns: ["(?i)as an ai"]
  length: {min_chars: 2, max_chars: 400}
```

The same rules hold for a file (`load_file`: every fault as `file:line: field: problem`)
and for the API's JSON (`parse`: InvalidRequest naming the field).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import orjson
from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    ValidationError,
    model_validator,
)

from pilothouse import errors, yamlfile
from pilothouse.contracts import checks
from pilothouse.evals.datasets import cases, check_row
from pilothouse.registry import names
from pilothouse.releases.params import check_params
from pilothouse.yamlfile import FileError, Location

MAX_SAMPLES = 500
MAX_REPEATS = 10
NamePattern = Annotated[str, Field(pattern=names.NAME_PATTERN)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class LabelsAt(_Strict):
    path: str = Field(min_length=1, max_length=200)
    allowed: list[Any] = Field(min_length=1, max_length=1000)


class PatternSpec(_Strict):
    pattern: str = Field(min_length=1, max_length=2000)
    flags: str = ""


class LengthBounds(_Strict):
    min_chars: int | None = Field(default=None, ge=0)
    max_chars: int | None = Field(default=None, ge=0)
    min_words: int | None = Field(default=None, ge=0)
    max_words: int | None = Field(default=None, ge=0)


Phrase = Annotated[str, Field(min_length=1, max_length=2000)]
# Fields that take one of two shapes say which by the value's type, so an error is about
# the shape given (pydantic would otherwise report it against both); the tags are left
# out of the field names errors show.
TAGS = frozenset({"inline", "stored", "text", "object", "boolean"})


def _tag(object_tag: str, other: str) -> Discriminator:
    return Discriminator(lambda value: object_tag if isinstance(value, dict) else other)


Pattern = Annotated[
    Annotated[PatternSpec, Tag("object")] | Annotated[str, Tag("text")], _tag("object", "text")
]
Schema = Annotated[
    Annotated[dict[str, Any], Tag("object")] | Annotated[bool, Tag("boolean")],
    _tag("object", "boolean"),
]


class Expectations(_Strict):
    json_schema: Schema | None = None
    labels: LabelsAt | None = None
    required_phrases: list[Phrase] | None = Field(default=None, max_length=100)
    forbidden_phrases: list[Phrase] | None = Field(default=None, max_length=100)
    patterns: list[Pattern] | None = Field(default=None, max_length=100)
    forbidden_patterns: list[Pattern] | None = Field(default=None, max_length=100)
    length: LengthBounds | None = None

    @model_validator(mode="after")
    def _something(self) -> Expectations:
        if not any(getattr(self, name) for name in checks.EXPECTATIONS) and not isinstance(
            self.json_schema, dict | bool
        ):
            raise ValueError(
                "expect at least one of: " + ", ".join(checks.EXPECTATIONS) + " (see docs)"
            )
        return self

    def canonical(self) -> dict[str, Any]:
        """The expectations as stored and hashed: patterns always {pattern, flags}."""
        out = self.model_dump(
            exclude_none=True, exclude={"json_schema", "patterns", "forbidden_patterns"}
        )
        if self.json_schema is not None:
            out["json_schema"] = self.json_schema
        for key in ("patterns", "forbidden_patterns"):
            given = getattr(self, key)
            if given is not None:
                out[key] = [
                    {"pattern": p, "flags": ""} if isinstance(p, str) else p.model_dump()
                    for p in given
                ]
        return out


class StoredSamples(_Strict):
    dataset: NamePattern
    version: int = Field(ge=1, le=2**31 - 1)


Samples = Annotated[
    Annotated[StoredSamples, Tag("stored")]
    | Annotated[list[dict[str, Any]], Tag("inline"), Field(min_length=1, max_length=MAX_SAMPLES)],
    _tag("stored", "inline"),
]


class Tolerance(_Strict):
    min_pass_rate: float = Field(default=1.0, ge=0, le=1)
    repeats: int = Field(default=1, ge=1, le=MAX_REPEATS)


class ContractFile(_Strict):
    name: NamePattern
    consumer: NamePattern
    description: str | None = Field(default=None, max_length=2000)
    prompt: NamePattern | None = None
    route: NamePattern | None = None
    model: str | None = Field(default=None, min_length=1, max_length=200)
    params: dict[str, Any] = {}
    samples: Samples
    tolerance: Tolerance = Tolerance()
    expect: Expectations

    @model_validator(mode="after")
    def _subject(self) -> ContractFile:
        if (self.prompt is None) == (self.route is None):
            raise ValueError("a contract is on a `prompt` or on a `route`: give exactly one")
        if self.prompt is not None and self.model is None:
            raise ValueError(
                "a prompt contract needs `model`: the alias its samples run on (a prompt "
                "version has no model of its own)"
            )
        if self.route is not None and (self.model is not None or self.params):
            raise ValueError(
                "a route's release fixes the model and parameters: `model` and `params` are "
                "for prompt contracts"
            )
        return self


@dataclass(frozen=True)
class Contract:
    """A checked contract: what it is on, and its canonical spec and hash."""

    kind: str  # prompt | route
    subject: str
    consumer: str
    name: str
    spec: dict[str, Any]
    spec_hash: str

    @property
    def ref(self) -> str:
        return f"{self.consumer}/{self.name}"


def problems(model: ContractFile) -> list[tuple[Location, str]]:
    """Faults pydantic cannot see: parameters, sample rows, expectations the scorers refuse."""
    found: list[tuple[Location, str]] = []
    try:
        check_params(model.params)
    except errors.InvalidRequest as exc:
        found.append((("params",), exc.message))
    if isinstance(model.samples, list):
        for index, row in enumerate(model.samples):
            problem = check_row(row) or (
                None if "expected" not in row else "contract samples take no `expected`"
            )
            if problem:
                found.append((("samples", index), problem))
        if not found:
            try:
                cases(model.samples, [f"samples[{i}]" for i in range(len(model.samples))])
            except FileError as exc:
                found += [(("samples",), p) for p in exc.problems]
    try:
        checks.build(model.expect.canonical())
    except checks.CheckError as exc:
        found.append((exc.loc, exc.message))
    return found


def _contract(model: ContractFile) -> Contract:
    spec = model.model_dump(exclude_none=True, exclude={"expect", "samples"})
    spec["expect"] = model.expect.canonical()
    samples = model.samples
    spec["samples"] = samples.model_dump() if isinstance(samples, StoredSamples) else samples
    digest = hashlib.sha256(orjson.dumps(spec, option=orjson.OPT_SORT_KEYS)).hexdigest()
    kind = "prompt" if model.prompt is not None else "route"
    subject = model.prompt if model.prompt is not None else model.route
    assert subject is not None
    return Contract(kind, subject, model.consumer, model.name, spec, digest)


def parse(data: Any) -> Contract:
    """A contract from the API's JSON; InvalidRequest names the first field at fault."""
    if not isinstance(data, dict):
        raise errors.InvalidRequest("a contract is a JSON object (see docs/contracts.md)")
    try:
        model = ContractFile.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        raise _invalid(_field(first["loc"]), yamlfile.describe(first)) from None
    found = problems(model)
    if found:
        raise _invalid(*found[0])
    return _contract(model)


def _field(loc: Any) -> Location:
    return tuple(part for part in loc if part not in TAGS)


def _invalid(loc: Location, message: str) -> errors.InvalidRequest:
    field = yamlfile.dotted(loc) or "(body)"
    return errors.InvalidRequest(f"{field}: {message}", param=field)


def load_file(path: Path) -> Contract:
    """A contract file; FileError lists every fault as `file:line: field: problem`."""
    located = yamlfile.load(path)
    if not isinstance(located.data, dict):
        raise FileError(
            [located.problem((), "expected a mapping: name, consumer, prompt, samples, expect")]
        )
    try:
        model = ContractFile.model_validate(located.data)
    except ValidationError as exc:
        raise FileError(
            [located.problem(_field(e["loc"]), yamlfile.describe(e)) for e in exc.errors()]
        ) from None
    found = problems(model)
    if found:
        raise FileError([located.problem(loc, message) for loc, message in found])
    return _contract(model)
