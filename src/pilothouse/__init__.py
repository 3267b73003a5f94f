"""Pilothouse: the control room for LLM features in production."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any

try:
    __version__ = version("pilothouse")
except PackageNotFoundError:  # running from a source tree without an install
    __version__ = "0.0.0"

if TYPE_CHECKING:
    from pilothouse.sdk import AsyncClient, Client, Prompt, PromptUnavailable

__all__ = ["AsyncClient", "Client", "Prompt", "PromptUnavailable", "__version__"]
_SDK_NAMES = frozenset({"AsyncClient", "Client", "Prompt", "PromptUnavailable"})


def __getattr__(name: str) -> Any:
    """`from pilothouse import Client` loads the SDK only when asked for (it is light, but
    the server never needs it)."""
    if name in _SDK_NAMES:
        from pilothouse import sdk

        return getattr(sdk, name)
    raise AttributeError(f"module 'pilothouse' has no attribute {name!r}")
