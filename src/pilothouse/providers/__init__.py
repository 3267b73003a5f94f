"""Provider adapters: one transport, one codec per upstream API, and the shared stream
loop, behind the narrow `Provider` interface (`types.py`).

Used by the gateway's request path and by the fleet; they know nothing of either.
"""

from __future__ import annotations

import os

from pilothouse.config import ProviderSpec
from pilothouse.providers.adapter import HttpProvider
from pilothouse.providers.anthropic_codec import AnthropicCodec
from pilothouse.providers.openai_codec import OpenAICodec
from pilothouse.providers.transport import HttpTransport, Transport


def build_provider(
    name: str, spec: ProviderSpec, *, transport: Transport | None = None
) -> HttpProvider:
    """An adapter for a declared provider; its key is read from the named variable.

    `transport` replaces the real HTTP client (the in-process tests script one)."""
    api_key = os.environ.get(spec.api_key_env) if spec.api_key_env else None
    codec: AnthropicCodec | OpenAICodec
    if spec.type == "anthropic":
        codec = AnthropicCodec(str(spec.base_url))
        headers = AnthropicCodec.headers(api_key)
    else:
        codec = OpenAICodec(str(spec.base_url))
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    if transport is None:
        transport = HttpTransport(
            name,
            timeout_seconds=spec.timeout_seconds,
            connect_timeout_seconds=spec.connect_timeout_seconds,
            max_connections=spec.max_connections,
            headers=headers,
        )
    return HttpProvider(name, codec, transport)
