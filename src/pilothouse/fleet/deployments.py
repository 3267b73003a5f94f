"""Model aliases and the deployments that serve them.

An alias is what clients call (`fast`); a deployment is one provider model that can serve
it (provider `openai`, model `gpt-4o-mini`, its pricing and weight). The request log and
the cost always take the deployment that actually answered.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from pilothouse.config import ConfigFile, ModelSpec, Pricing, ProviderSpec
from pilothouse.providers import build_provider
from pilothouse.providers.transport import Transport
from pilothouse.providers.types import Provider

# Makes the transport for a provider; None means the real HTTP client.
TransportFor = Callable[[str, ProviderSpec], Transport | None]


@dataclass(frozen=True, slots=True)
class Deployment:
    """One provider model that can serve an alias."""

    provider_name: str
    provider: Provider
    provider_model: str
    pricing: Pricing
    weight: int = 1

    @property
    def id(self) -> str:
        return f"{self.provider_name}/{self.provider_model}"


@dataclass(frozen=True, slots=True)
class ModelAlias:
    """A model alias clients call, with the deployments that serve it (at least one)."""

    alias: str
    spec: ModelSpec
    deployments: tuple[Deployment, ...]

    @property
    def primary(self) -> Deployment:
        return self.deployments[0]


def build_aliases(
    config: ConfigFile, transport_for: TransportFor | None = None
) -> dict[str, ModelAlias]:
    """Every declared alias with its deployments; one adapter per declared provider, shared
    by every deployment that uses it."""
    providers = {
        name: build_provider(
            name, spec, transport=transport_for(name, spec) if transport_for else None
        )
        for name, spec in config.providers.items()
    }
    return {
        alias: ModelAlias(
            alias=alias,
            spec=spec,
            deployments=(
                Deployment(
                    provider_name=spec.provider,
                    provider=providers[spec.provider],
                    provider_model=spec.model,
                    pricing=spec.pricing,
                ),
            ),
        )
        for alias, spec in config.models.items()
    }


async def close_providers(aliases: Mapping[str, ModelAlias]) -> None:
    """Close each provider's connection pool once."""
    closed: set[int] = set()
    for alias in aliases.values():
        for deployment in alias.deployments:
            if id(deployment.provider) not in closed:
                closed.add(id(deployment.provider))
                await deployment.provider.close()
