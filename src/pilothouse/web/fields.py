"""Field types for request bodies and query strings: bounded, printable, storable on every
supported database (PostgreSQL refuses a NUL byte in text; its INTEGER is 32-bit)."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator, Field

from pilothouse.registry import names

INT32_MAX = 2**31 - 1
INT64_MAX = 2**63 - 1


def _no_nul(value: str) -> str:
    if "\x00" in value:
        raise ValueError("must not contain a NUL byte")
    return value


def _printable(value: str) -> str:
    if not value.isprintable():
        raise ValueError("must be printable text (no control characters)")
    return value


def _no_nul_anywhere(value: Any) -> Any:
    """Refuse a NUL byte in any string inside a JSON value (stored as text somewhere)."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            _no_nul(item)
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return value


# A name or label a person chose: one line, printable, short.
Name = Annotated[str, Field(min_length=1, max_length=200), AfterValidator(_printable)]
# A prompt, fragment, label or route name (registry/names.py): one pattern everywhere.
Ident = Annotated[str, Field(pattern=names.NAME_PATTERN, max_length=names.MAX_NAME_CHARS)]


def _not_digits(value: str) -> str:
    if value.isdigit():
        raise ValueError("a label is not only digits (digits are a version)")
    return value


Label = Annotated[Ident, AfterValidator(_not_digits)]
# Free text such as a reason or a note: any length up to 10,000 characters, no NUL.
Text = Annotated[str, Field(max_length=10_000), AfterValidator(_no_nul)]
# A model's answer: up to 1,000,000 characters (possibly none), no NUL.
LongText = Annotated[str, Field(max_length=1_000_000), AfterValidator(_no_nul)]
# A whole file's text (a suite): up to 1,000,000 characters, no NUL.
FileText = Annotated[str, Field(min_length=1, max_length=1_000_000), AfterValidator(_no_nul)]
# A 32-bit count or version, as the databases store them.
Count = Annotated[int, Field(ge=0, le=INT32_MAX)]
Seed = Annotated[int, Field(ge=-INT64_MAX, le=INT64_MAX)]
# Any JSON value whose strings carry no NUL byte.
Json = Annotated[Any, BeforeValidator(_no_nul_anywhere)]
