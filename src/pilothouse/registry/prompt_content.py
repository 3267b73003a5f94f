"""What a prompt version is made of, its canonical form and hash, and the checks on it."""

from __future__ import annotations

import hashlib
from typing import Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from pilothouse import errors
from pilothouse.registry import templates

MAX_CONTENT_BYTES = 512 * 1024  # one version's canonical JSON: a prompt, not a corpus


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class MessageSpec(_Strict):
    role: Literal["system", "developer", "user", "assistant"]
    content: str


class VariableSpec(_Strict):
    required: bool | None = None
    default: Any = None
    description: str | None = None


class PromptContent(_Strict):
    """What a version is: chat messages (or a fragment's text), variables, tools, format."""

    messages: list[MessageSpec] | None = Field(default=None, min_length=1)
    text: str | None = None
    variables: dict[str, VariableSpec] = {}
    tools: list[dict[str, Any]] | None = None
    response_format: dict[str, Any] | None = None

    @model_validator(mode="after")
    def _messages_or_text(self) -> PromptContent:
        if (self.messages is None) == (self.text is None):
            raise ValueError(
                "a prompt has `messages` (a chat prompt) or `text` (a fragment), not both"
            )
        return self

    def canonical(self) -> dict[str, Any]:
        """The form that is hashed and stored: defaults made explicit, no descriptions."""
        declared = templates.parse_variables(
            {
                n: v.model_dump(exclude_unset=True, exclude={"description"})
                for n, v in self.variables.items()
            }
        )
        variables = {
            name: {"required": True}
            if var.required
            else {"required": False, "default": var.default}
            for name, var in sorted(declared.items())
        }
        out: dict[str, Any] = {"variables": variables}
        if self.messages is not None:
            out["messages"] = [m.model_dump() for m in self.messages]
        else:
            out["text"] = self.text
        if self.tools:  # `tools: []` means no tools: normalised away, not forwarded
            out["tools"] = self.tools
        if self.response_format is not None:
            out["response_format"] = self.response_format
        return out

    def texts(self) -> list[tuple[tuple[str | int, ...], str]]:
        """(location, template text) for every template in the content."""
        if self.messages is not None:
            return [(("messages", i, "content"), m.content) for i, m in enumerate(self.messages)]
        return [(("text",), self.text or "")]


def content_hash(canonical: dict[str, Any]) -> str:
    return hashlib.sha256(orjson.dumps(canonical, option=orjson.OPT_SORT_KEYS)).hexdigest()


def template_problems(content: PromptContent) -> list[tuple[tuple[str | int, ...], str]]:
    """Faults a store cannot see: bad tags, placeholders nobody declared."""
    problems: list[tuple[tuple[str | int, ...], str]] = []
    declared = set(content.variables)
    for loc, text in content.texts():
        try:
            templates.check_syntax(text)
        except templates.TemplateError as exc:
            problems.append((loc, str(exc)))
            continue
        if content.messages is not None:  # a fragment's placeholders belong to its includers
            undeclared = sorted(templates.placeholders(text) - declared)
            if undeclared:
                problems.append(
                    (
                        loc,
                        f"uses undeclared variables {', '.join(undeclared)}: declare them under `variables`",
                    )
                )
    return problems


def parse_content(body: dict[str, Any]) -> PromptContent:
    """Validate API input; InvalidRequest names the field at fault."""
    try:
        content = PromptContent.model_validate(body)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"]) or "(body)"
        raise errors.InvalidRequest(
            f"{field}: {str(first['msg']).removeprefix('Value error, ')}", param=field
        ) from None
    size = len(orjson.dumps(content.canonical()))
    if size > MAX_CONTENT_BYTES:
        raise errors.InvalidRequest(
            f"this version is {size} bytes as JSON; a prompt version may be at most "
            f"{MAX_CONTENT_BYTES} bytes"
        )
    problems = template_problems(content)
    if problems:
        loc, message = problems[0]
        field = ".".join(map(str, loc))
        raise errors.InvalidRequest(f"{field}: {message}", param=field)
    return content
