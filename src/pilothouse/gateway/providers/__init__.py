"""Provider adapters, one per upstream API, behind the narrow `Provider` interface."""

from __future__ import annotations

import os

from pilothouse.config import ProviderSpec
from pilothouse.gateway.providers.base import Provider


def build_provider(name: str, spec: ProviderSpec) -> Provider:
    """An adapter for a declared provider; its key is read from the named variable."""
    api_key = os.environ.get(spec.api_key_env) if spec.api_key_env else None
    options = {
        "api_key": api_key,
        "timeout_seconds": spec.timeout_seconds,
        "connect_timeout_seconds": spec.connect_timeout_seconds,
        "max_connections": spec.max_connections,
    }
    if spec.type == "anthropic":
        from pilothouse.gateway.providers.anthropic import AnthropicProvider

        return AnthropicProvider(name, str(spec.base_url), **options)  # type: ignore[arg-type]
    from pilothouse.gateway.providers.openai import OpenAIProvider

    return OpenAIProvider(name, str(spec.base_url), **options)  # type: ignore[arg-type]
