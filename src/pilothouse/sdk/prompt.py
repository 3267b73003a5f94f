"""The `Prompt` an application gets from the SDK, and the error for a prompt it cannot get."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

from pilothouse.registry import templates

Source = Literal["server", "memory", "disk", "fallback"]


class PromptUnavailable(RuntimeError):
    """Neither the registry, nor the disk cache, nor a code fallback could supply a prompt."""

    def __init__(self, name: str, ref: str, tried: Sequence[str]):
        self.name = name
        self.ref = ref
        self.tried = list(tried)
        super().__init__(f"prompt {name!r} ({ref}) is unavailable; tried: " + "; ".join(tried))


class Prompt:
    """One version of a prompt as the registry served it (or the disk cache, or a fallback).

    Immutable by convention: the SDK hands the same object to every caller until a newer
    version replaces it in the cache, so never change its fields.
    """

    __slots__ = (
        "_parsed_variables",
        "created_at",
        "fragments",
        "fragments_used",
        "hash",
        "label",
        "labels",
        "messages",
        "name",
        "note",
        "response_format",
        "source",
        "text",
        "tools",
        "variables",
        "version",
    )

    def __init__(
        self,
        *,
        name: str,
        version: int,
        hash: str,
        label: str | None,
        messages: list[dict[str, Any]] | None,
        text: str | None = None,
        variables: Mapping[str, Any] | None = None,
        tools: list[Any] | None = None,
        response_format: dict[str, Any] | None = None,
        fragments: Mapping[str, templates.Fragment] | None = None,
        labels: Sequence[str] = (),
        created_at: str | None = None,
        note: str | None = None,
        source: Source = "server",
        parsed_variables: dict[str, templates.Variable] | None = None,
    ):
        self.name = name
        self.version = version
        self.hash = hash
        self.label = label
        self.messages = messages
        self.text = text
        self.variables: dict[str, Any] = dict(variables or {})
        self.tools = tools
        self.response_format = response_format
        self.fragments: dict[str, templates.Fragment] = dict(fragments or {})
        self.labels: list[str] = list(labels)
        self.created_at = created_at
        self.note = note
        self.source: Source = source
        self.fragments_used: dict[str, int] = {}
        self._parsed_variables = (
            parsed_variables
            if parsed_variables is not None
            else templates.parse_variables(self.variables)
        )

    @classmethod
    def from_payload(
        cls, payload: Mapping[str, Any], *, label: str | None, source: Source
    ) -> Prompt:
        """Build from the JSON of `GET /api/prompts/{name}` (raises KeyError/TypeError/ValueError)."""
        fragments = {
            ref: templates.Fragment(
                name=str(f["name"]), version=int(f["version"]), hash=str(f["hash"]), text=f["text"]
            )
            for ref, f in (payload.get("fragments") or {}).items()
        }
        messages = payload.get("messages")
        text = payload.get("text")
        if messages is None and not isinstance(text, str):
            raise ValueError("the prompt has neither messages nor text")
        return cls(
            name=str(payload["name"]),
            version=int(payload["version"]),
            hash=str(payload["hash"]),
            label=label,
            messages=[dict(m) for m in messages] if messages is not None else None,
            text=text,
            variables=payload.get("variables") or {},
            tools=payload.get("tools"),
            response_format=payload.get("response_format"),
            fragments=fragments,
            labels=payload.get("labels") or [],
            created_at=payload.get("created_at"),
            note=payload.get("note"),
            source=source,
        )

    @classmethod
    def from_fallback(
        cls, name: str, label: str | None, fallback: str | Sequence[Mapping[str, Any]]
    ) -> Prompt:
        """A code fallback: a string (one user message) or a list of messages; version 0.

        Its variables are its placeholders, all required; values it does not use are ignored,
        so the code that renders the registry's prompt can render the fallback unchanged.
        """
        if isinstance(fallback, str):
            messages = [{"role": "user", "content": fallback}]
        else:
            messages = [dict(m) for m in fallback]
        names: set[str] = set()
        for message in messages:
            content = message.get("content")
            if isinstance(content, str):
                names |= templates.placeholders(content)
        return cls(
            name=name,
            version=0,
            hash="",
            label=label,
            messages=messages,
            variables={n: {"required": True} for n in sorted(names)},
            source="fallback",
        )

    def with_source(self, source: Source) -> Prompt:
        return Prompt(
            name=self.name,
            version=self.version,
            hash=self.hash,
            label=self.label,
            messages=self.messages,
            text=self.text,
            variables=self.variables,
            tools=self.tools,
            response_format=self.response_format,
            fragments=self.fragments,
            labels=self.labels,
            created_at=self.created_at,
            note=self.note,
            source=source,
            parsed_variables=self._parsed_variables,
        )

    @property
    def ref(self) -> str:
        """`name@label` or `name@version`, for messages."""
        return f"{self.name}@{self.label if self.label is not None else self.version}"

    def render_with_info(self, **values: Any) -> templates.Rendered:
        """Render locally: the messages plus which fragment versions were included.

        Raises `templates.RenderError` naming missing and unknown variables, or
        `templates.TemplateError` for an include the prompt does not carry.
        """
        if self.source == "fallback":
            values = {k: v for k, v in values.items() if k in self._parsed_variables}
        messages = (
            self.messages
            if self.messages is not None
            else [{"role": "user", "content": self.text or ""}]
        )
        rendered = templates.render(
            self.name, messages, self._parsed_variables, values, self.fragments
        )
        self.fragments_used = rendered.fragments
        return rendered

    def render(self, **values: Any) -> list[dict[str, Any]]:
        """The chat messages with variables filled in and fragments included."""
        return self.render_with_info(**values).messages

    def __repr__(self) -> str:
        return f"<Prompt {self.ref} v{self.version} hash={self.hash[:12]} source={self.source}>"
