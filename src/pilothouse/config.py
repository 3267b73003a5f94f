"""The YAML config file (providers, model aliases, gateway, monitoring, ...): its schema and
`load_config_file`, which reports every fault as `file:line: field` before anything starts.
A process's settings around it (environment, flags) are `settings.py`'s."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, HttpUrl, field_validator, model_validator

from pilothouse import yamlfile
from pilothouse.registry import names

DEFAULT_MAX_BODY_BYTES = 8 * 1024 * 1024


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ProviderSpec(_Strict):
    """One upstream LLM API. `api_key_env` names the variable holding the key."""

    type: Literal["openai", "anthropic"]
    base_url: HttpUrl
    api_key_env: str | None = None
    timeout_seconds: float = Field(default=120.0, gt=0)
    connect_timeout_seconds: float = Field(default=5.0, gt=0)
    max_connections: int = Field(default=256, ge=1)
    owner: str | None = None  # who is told when a deployment on this provider degrades

    @field_validator("api_key_env")
    @classmethod
    def _env_name(cls, value: str | None) -> str | None:
        return _env_var_name(value)


def _env_var_name(value: str | None) -> str | None:
    """A field that names an environment variable holding a secret, never the secret."""
    if value is not None and (not value or not value.replace("_", "").isalnum()):
        raise ValueError(
            "must be the NAME of an environment variable (letters, digits, _), not the key itself"
        )
    return value


class Pricing(_Strict):
    """Prices in USD per million tokens."""

    input_per_mtok: float = Field(default=0.0, ge=0)
    output_per_mtok: float = Field(default=0.0, ge=0)
    cached_input_per_mtok: float | None = Field(default=None, ge=0)


class DeploymentSpec(_Strict):
    """One provider model serving an alias. `priority`: lower is tried first (strategy
    `priority`); `weight`: share of traffic (strategy `weighted`); `timeout_seconds` bounds
    one attempt (the whole answer, or a stream's first content); `pricing` defaults to the
    alias's."""

    provider: str
    model: str = Field(min_length=1)
    priority: int = Field(default=1, ge=0)
    weight: int = Field(default=1, ge=0)
    timeout_seconds: float | None = Field(default=None, gt=0)
    pricing: Pricing | None = None


class ModelSpec(_Strict):
    """A model alias that clients call: which provider serves it, under which name, what it
    costs, and where it is in its life (a retired model is refused, naming its successor).

    Served by one provider model (`provider` + `model`) or by several (`deployments`, with
    a `strategy`); with `deployments`, `provider` and `model` name the first one listed.
    """

    provider: str
    model: str = Field(min_length=1)
    pricing: Pricing = Pricing()
    deployments: tuple[DeploymentSpec, ...] = ()
    strategy: Literal["priority", "weighted", "least_latency"] = "priority"
    max_attempts: int | None = Field(default=None, ge=1, le=10)  # else fleet.max_attempts
    deadline_seconds: float | None = Field(default=None, gt=0)  # else fleet.deadline_seconds
    context_window: int | None = Field(default=None, gt=0)
    lifecycle: Literal["preview", "ga", "deprecated", "retired"] = "ga"
    deprecation_date: date | None = None
    retirement_date: date | None = None
    successor: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _one_form(cls, data: Any) -> Any:
        if not isinstance(data, dict) or "deployments" not in data:
            return data
        if "provider" in data or "model" in data:
            raise ValueError(
                "give either `provider` + `model` (one deployment) or `deployments` (a list), "
                "not both"
            )
        listed = data["deployments"]
        if not isinstance(listed, list) or not listed:
            raise ValueError("`deployments` must be a non-empty list of {provider, model, ...}")
        # `provider` and `model` name the first deployment; a fault in it is reported there.
        first = listed[0] if isinstance(listed[0], dict) else {}
        named = {k: first[k] for k in ("provider", "model") if isinstance(first.get(k), str)}
        return {**data, "provider": "-", "model": "-", **named}

    @model_validator(mode="after")
    def _some_weight(self) -> ModelSpec:
        if self.strategy == "weighted" and not any(d.weight for d in self.deployment_specs()):
            raise ValueError("strategy `weighted` needs at least one deployment with weight > 0")
        return self

    def deployment_specs(self) -> tuple[DeploymentSpec, ...]:
        """The deployments serving this alias (the single form as a list of one), each
        with its pricing resolved."""
        listed = self.deployments or (DeploymentSpec(provider=self.provider, model=self.model),)
        return tuple(
            d if d.pricing is not None else d.model_copy(update={"pricing": self.pricing})
            for d in listed
        )


class BreakerSpec(_Strict):
    """When a deployment's circuit opens: at `failure_ratio` of at least `min_requests`
    calls within `window_seconds`; it stays open `cooldown_seconds`, doubled on each trip
    that follows soon after the last (up to `max_cooldown_seconds`), or longer when the
    provider's Retry-After says so; then `half_open_probes` calls test it."""

    window_seconds: float = Field(default=60.0, gt=0, le=3600)
    min_requests: int = Field(default=5, ge=1)
    failure_ratio: float = Field(default=0.5, gt=0, le=1)
    cooldown_seconds: float = Field(default=10.0, gt=0)
    max_cooldown_seconds: float = Field(default=300.0, gt=0)
    half_open_probes: int = Field(default=1, ge=1)
    degraded_ratio: float = Field(default=0.2, gt=0, le=1)  # raises a "degraded" event


class FleetSpec(_Strict):
    """Failover for every alias: at most `max_attempts` deployments per request, no new
    attempt after `deadline_seconds` (None: no overall deadline), and the breaker."""

    max_attempts: int = Field(default=3, ge=1, le=10)
    deadline_seconds: float | None = Field(default=None, gt=0)
    breaker: BreakerSpec = BreakerSpec()
    compare_min_samples: int = Field(default=30, ge=5)  # per deployment, for the comparison


class GatewaySpec(_Strict):
    """Data-path settings: body limit and how long a body may take to arrive, SSE keep-alive
    while waiting for a first token, how often the store's configuration version is polled
    (the change bus's backstop) and how often the snapshot is checked against a full load."""

    max_body_bytes: int = Field(default=DEFAULT_MAX_BODY_BYTES, gt=0)
    body_read_timeout_seconds: float = Field(default=30.0, gt=0, le=600)
    keepalive_interval_seconds: float = Field(default=5.0, gt=0)
    config_poll_interval_seconds: float = Field(default=0.25, gt=0, le=60)
    # A full load compared with the served snapshot (0: never); drift is logged and counted.
    config_check_interval_seconds: float = Field(default=300.0, ge=0, le=86400)


class RequestLogSpec(_Strict):
    """The request log's journal (docs/gateway.md, "Durability of the request log"): an
    accepted row is on local disk within `journal_interval_ms`; fsync every
    `journal_fsync_interval_seconds` (0: on every write); at most `journal_max_bytes` on
    disk (past it, new rows are dropped and counted); the database is loaded every
    `load_interval_seconds`."""

    journal_interval_ms: float = Field(default=20.0, ge=1, le=1000)
    journal_fsync_interval_seconds: float = Field(default=1.0, ge=0, le=60)
    journal_max_bytes: int = Field(default=1 << 30, ge=1 << 20)
    load_interval_seconds: float = Field(default=0.25, gt=0, le=60)


class SLOSpec(_Strict):
    """An SLO declared in the config file (monitor/slo.py says what each field means).
    Give exactly one subject: `route`, `model` or `team`."""

    name: str = Field(min_length=1, max_length=100)
    route: str | None = None
    model: str | None = None
    team: str | None = None
    sli: Literal["ttft", "availability", "signal"]
    threshold_ms: int | None = None
    signal: str | None = None
    objective: float = Field(gt=0, lt=1)
    period_days: int = Field(default=30, ge=1, le=400)
    min_events: int = Field(default=100, ge=1)
    owner: str | None = None


class DriftSpec(_Strict):
    """Drift detection (monitor/drift.py): windows in minutes and days, so a demo or a
    test can run them in minutes."""

    current_minutes: int = Field(default=60, ge=1, le=10080)
    baseline_days: float = Field(default=7.0, gt=0, le=90)
    seasonal: bool = True
    min_samples: int = Field(default=50, ge=5)
    alpha: float = Field(default=0.001, gt=0, lt=0.5)
    min_rate_change: float = Field(default=0.02, ge=0, le=1)
    min_median_change: float = Field(default=0.2, ge=0)


class SpendWatchSpec(_Strict):
    """The spend watch (monitor/spend.py): each key's cost and tokens per minute against its
    own baseline (a daily profile and a recent average), a model it never used, bursts.
    Above `ratio` times the baseline *and* `floor_usd_per_minute`, the key is suspended
    (`action: suspend`) or only alerted (`action: alert`, or the key in `alert_only_keys`)."""

    enabled: bool = True
    action: Literal["suspend", "alert"] = "suspend"
    window_minutes: int = Field(default=5, ge=1, le=60)
    ratio: float = Field(default=10.0, gt=1)
    floor_usd_per_minute: float = Field(default=0.5, ge=0)
    baseline_days: int = Field(default=7, ge=1, le=60)
    min_history_hours: float = Field(default=24.0, ge=0)
    alert_only_keys: list[str] = []


class MonitoringSpec(_Strict):
    """What watches the traffic: how often the monitors evaluate, retention, drift, alert
    notification grouping, and SLOs declared here (more can be added through the API)."""

    evaluate_interval_seconds: float = Field(default=30.0, gt=0, le=3600)
    raw_retention_days: int = Field(default=30, ge=1)
    rollup_retention_days: int = Field(default=400, ge=1)
    drift: DriftSpec = DriftSpec()
    group_wait_seconds: float = Field(default=30.0, ge=0, le=3600)
    repeat_interval_seconds: float = Field(default=4 * 3600.0, ge=60)
    slos: list[SLOSpec] = []
    spend_watch: SpendWatchSpec = SpendWatchSpec()


class WebhookSpec(_Strict):
    """One webhook receiver (notify/webhooks.py): the events it subscribes to (shell-style
    patterns such as `alert.*` or `alert.page.payments`), its body format, and the name of
    the environment variable holding its HMAC secret."""

    name: str = Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_.-]+$")
    url: HttpUrl
    events: list[str] = Field(default=["alert.*"], min_length=1)
    format: Literal["json", "slack"] = "json"
    secret_env: str | None = None
    timeout_seconds: float = Field(default=5.0, gt=0, le=60)
    max_attempts: int = Field(default=6, ge=1, le=20)

    @field_validator("secret_env")
    @classmethod
    def _env_name(cls, value: str | None) -> str | None:
        return _env_var_name(value)


class NotificationsSpec(_Strict):
    """Where notifications go: webhooks, each retried with backoff and recorded."""

    webhooks: list[WebhookSpec] = []

    @field_validator("webhooks")
    @classmethod
    def _unique(cls, value: list[WebhookSpec]) -> list[WebhookSpec]:
        names = [w.name for w in value]
        if len(set(names)) != len(names):
            raise ValueError("webhook names must be unique")
        if any(n.startswith(CHANGELOG_WEBHOOK_PREFIX) for n in names):
            # Deliveries to changelog subscriptions are recorded under these names.
            raise ValueError(f"webhook names starting {CHANGELOG_WEBHOOK_PREFIX!r} are reserved")
        return value


CHANGELOG_WEBHOOK_PREFIX = "changelog."


class GatingSuite(_Strict):
    """An eval suite whose latest stored run on the exact candidate must have passed before
    the prompt's protected labels move (`prompt`) or the route's releases are promoted
    (`route`). Give exactly one of the two."""

    suite: str = Field(min_length=1, max_length=200)
    prompt: str | None = Field(default=None, min_length=1, max_length=200)
    route: str | None = Field(default=None, min_length=1, max_length=200)

    @model_validator(mode="after")
    def _one_subject(self) -> GatingSuite:
        if (self.prompt is None) == (self.route is None):
            raise ValueError("give `prompt` or `route` (what the suite gates), exactly one")
        return self


class PromotionSpec(_Strict):
    """The promotion gate (docs/contracts.md): moving one of `protected_labels` of a prompt,
    or promoting a route's release, needs every active contract on it and every suite
    listed here for it to pass on that exact version; otherwise it is refused unless
    forced with a reason."""

    protected_labels: list[str] = Field(default=["production"], max_length=50)
    suites: list[GatingSuite] = Field(default=[], max_length=1000)

    @field_validator("protected_labels")
    @classmethod
    def _labels(cls, value: list[str]) -> list[str]:
        for label in value:
            names.check_label(label)
        return value

    def suites_for(self, kind: str, name: str) -> list[str]:
        """The gating suites of prompt or route `name`, in the order listed."""
        found = [s.suite for s in self.suites if getattr(s, kind, None) == name]
        return list(dict.fromkeys(found))


class ResponsesSpec(_Strict):
    """Responses the gateway stores (`store`, `previous_response_id`, `GET /v1/responses/
    {id}`): kept only for keys with the `responses:store` scope and routes with
    `store_responses` on, and deleted `retention_days` after they were made (a lookup
    never finds an older one; the monitor's hourly retention job deletes it)."""

    retention_days: float = Field(default=30.0, gt=0, le=3650)


class ConfigFile(_Strict):
    """The whole config file. Later sections (routes, alerts, ...) extend this model."""

    providers: dict[str, ProviderSpec] = {}
    models: dict[str, ModelSpec] = {}
    gateway: GatewaySpec = GatewaySpec()
    request_log: RequestLogSpec = RequestLogSpec()
    fleet: FleetSpec = FleetSpec()
    monitoring: MonitoringSpec = MonitoringSpec()
    notifications: NotificationsSpec = NotificationsSpec()
    promotion: PromotionSpec = PromotionSpec()
    responses: ResponsesSpec = ResponsesSpec()


def load_config_file(path: str | Path) -> ConfigFile:
    """Read and validate a config file.

    Raises `yamlfile.FileError` listing every fault as `file:line: field: problem`,
    including references to undeclared providers.
    """
    located = yamlfile.load(path)
    if located.data is None:
        return ConfigFile()
    if not isinstance(located.data, dict):
        raise yamlfile.FileError(
            [located.problem((), "expected a mapping with `providers:` and `models:`")]
        )
    config = located.validate(ConfigFile)
    declared = ", ".join(sorted(config.providers)) or "(none)"
    problems = []
    for alias, spec in config.models.items():
        places = (
            [
                (("models", alias, "deployments", i, "provider"), d)
                for i, d in enumerate(spec.deployments)
            ]
            if spec.deployments
            else [(("models", alias, "provider"), spec)]
        )
        problems += [
            located.problem(
                where, f"unknown provider {d.provider!r}; declared providers: {declared}"
            )
            for where, d in places
            if d.provider not in config.providers
        ]
        seen = [(d.provider, d.model) for d in spec.deployments]
        if len(set(seen)) != len(seen):
            problems.append(
                located.problem(
                    ("models", alias, "deployments"),
                    "the same provider and model are listed twice; list each deployment once",
                )
            )
    problems += [
        located.problem(
            ("models", alias, "successor"),
            f"unknown model alias {spec.successor!r}; declared aliases: {', '.join(sorted(config.models))}",
        )
        for alias, spec in config.models.items()
        if spec.successor is not None and spec.successor not in config.models
    ]
    problems += _slo_problems(config, located)
    if problems:
        raise yamlfile.FileError(problems)
    return config


def _slo_problems(config: ConfigFile, located: yamlfile.LocatedYaml) -> list[str]:
    from pilothouse.monitor.slo import SLOError, from_spec  # the SLO's own rules, once

    problems = []
    for index, spec in enumerate(config.monitoring.slos):
        try:
            from_spec(spec)
        except SLOError as exc:
            problems.append(located.problem(("monitoring", "slos", index), str(exc)))
    return problems
