"""Pilothouse: the control room for LLM features in production."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pilothouse.sdk import AsyncClient, Client, Prompt, PromptUnavailable

    __version__: str

__all__ = ["AsyncClient", "Client", "Prompt", "PromptUnavailable", "__version__"]
_SDK_NAMES = frozenset({"AsyncClient", "Client", "Prompt", "PromptUnavailable"})


def __getattr__(name: str) -> Any:
    """`from pilothouse import Client` loads the SDK only when asked for (it is light, but
    the server never needs it); `__version__` reads the installed metadata only when asked
    for (importlib.metadata costs the CLI ~30 ms at every start)."""
    if name in _SDK_NAMES:
        from pilothouse import sdk

        return getattr(sdk, name)
    if name == "__version__":
        from importlib.metadata import PackageNotFoundError, version

        try:
            found = version("pilothouse")
        except PackageNotFoundError:  # running from a source tree without an install
            found = "0.0.0"
        globals()["__version__"] = found
        return found
    raise AttributeError(f"module 'pilothouse' has no attribute {name!r}")
