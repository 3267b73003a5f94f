"""Model aliases and the deployments that serve them.

An alias is what clients call (`fast`); a deployment is one provider model that can serve
it (provider `openai`, model `gpt-4o-mini`, its pricing, priority, weight and timeout). A
deployment's health and breaker are shared by every alias it serves; its output signals
are kept per alias (peers are compared within an alias). The request log and the cost
always take the deployment that actually answered.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from pilothouse.clock import Clock
from pilothouse.config import ConfigFile, ModelSpec, Pricing, ProviderSpec
from pilothouse.fleet.compare import OutputSignals
from pilothouse.fleet.events import FleetEvents
from pilothouse.fleet.health import DeploymentHealth
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
    health: DeploymentHealth
    signals: OutputSignals
    weight: int = 1
    priority: int = 1
    timeout_seconds: float | None = None

    @property
    def id(self) -> str:
        return f"{self.provider_name}/{self.provider_model}"


@dataclass(frozen=True, slots=True)
class ModelAlias:
    """A model alias clients call, with the deployments that serve it (at least one),
    listed by priority (lower first, then as written)."""

    alias: str
    spec: ModelSpec
    deployments: tuple[Deployment, ...]
    strategy: str = "priority"
    max_attempts: int = 3
    deadline_seconds: float | None = None
    priority_ties: bool = False  # two deployments share a priority (shuffled by weight)

    @property
    def primary(self) -> Deployment:
        return self.deployments[0]


def build_aliases(
    config: ConfigFile,
    transport_for: TransportFor | None = None,
    *,
    clock: Clock | None = None,
    fleet_events: FleetEvents | None = None,
) -> dict[str, ModelAlias]:
    """Every declared alias with its deployments; one adapter per declared provider and one
    health (window and breaker) per provider model, shared by every alias that uses them."""
    clock = clock or Clock()
    fleet_events = fleet_events or FleetEvents()
    fleet = config.fleet
    providers = {
        name: build_provider(
            name, spec, transport=transport_for(name, spec) if transport_for else None
        )
        for name, spec in config.providers.items()
    }
    healths: dict[str, DeploymentHealth] = {}

    def health_of(provider: str, model: str) -> DeploymentHealth:
        key = f"{provider}/{model}"
        if key not in healths:
            owner = config.providers[provider].owner
            healths[key] = DeploymentHealth(
                key, provider, owner, fleet.breaker, clock, fleet_events
            )
        return healths[key]

    aliases = {}
    for alias, spec in config.models.items():
        listed = sorted(spec.deployment_specs(), key=lambda d: d.priority)  # stable
        deployments = tuple(
            Deployment(
                provider_name=d.provider,
                provider=providers[d.provider],
                provider_model=d.model,
                pricing=d.pricing or spec.pricing,
                health=health_of(d.provider, d.model),
                signals=OutputSignals(fleet.breaker.window_seconds, clock),
                weight=d.weight,
                priority=d.priority,
                timeout_seconds=d.timeout_seconds,
            )
            for d in listed
        )
        aliases[alias] = ModelAlias(
            alias=alias,
            spec=spec,
            deployments=deployments,
            strategy=spec.strategy,
            max_attempts=spec.max_attempts or fleet.max_attempts,
            deadline_seconds=spec.deadline_seconds or fleet.deadline_seconds,
            priority_ties=len({d.priority for d in deployments}) < len(deployments),
        )
    return aliases


async def close_providers(aliases: Mapping[str, ModelAlias]) -> None:
    """Close each provider's connection pool once."""
    closed: set[int] = set()
    for alias in aliases.values():
        for deployment in alias.deployments:
            if id(deployment.provider) not in closed:
                closed.add(id(deployment.provider))
                await deployment.provider.close()
