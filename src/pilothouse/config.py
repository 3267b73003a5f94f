"""Settings (environment + CLI flags) and the YAML config file (providers, model aliases).

One `Settings` object carries everything a process needs; `load_settings` builds it from
CLI overrides, then `PILOTHOUSE_*` environment variables, then defaults. The config file
is validated in full before anything starts: each fault is reported as `file:line: field`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, HttpUrl, field_validator

from pilothouse import yamlfile

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

    @field_validator("api_key_env")
    @classmethod
    def _env_name(cls, value: str | None) -> str | None:
        if value is not None and (not value or not value.replace("_", "").isalnum()):
            raise ValueError(
                "must be the NAME of an environment variable (letters, digits, _), "
                "not the key itself"
            )
        return value


class Pricing(_Strict):
    """Prices in USD per million tokens."""

    input_per_mtok: float = Field(default=0.0, ge=0)
    output_per_mtok: float = Field(default=0.0, ge=0)
    cached_input_per_mtok: float | None = Field(default=None, ge=0)


class ModelSpec(_Strict):
    """A model alias that clients call: which provider serves it, under which name, what it
    costs, and where it is in its life (a retired model is refused, naming its successor)."""

    provider: str
    model: str = Field(min_length=1)
    pricing: Pricing = Pricing()
    context_window: int | None = Field(default=None, gt=0)
    lifecycle: Literal["preview", "ga", "deprecated", "retired"] = "ga"
    deprecation_date: date | None = None
    retirement_date: date | None = None
    successor: str | None = None


class GatewaySpec(_Strict):
    """Data-path settings: body limit and how long a body may take to arrive, SSE keep-alive
    while waiting for a first token, and how often the store's configuration version is
    polled (the change bus's backstop)."""

    max_body_bytes: int = Field(default=DEFAULT_MAX_BODY_BYTES, gt=0)
    body_read_timeout_seconds: float = Field(default=30.0, gt=0, le=600)
    keepalive_interval_seconds: float = Field(default=5.0, gt=0)
    config_poll_interval_seconds: float = Field(default=0.25, gt=0, le=60)


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


class ConfigFile(_Strict):
    """The whole config file. Later sections (routes, alerts, ...) extend this model."""

    providers: dict[str, ProviderSpec] = {}
    models: dict[str, ModelSpec] = {}
    gateway: GatewaySpec = GatewaySpec()
    request_log: RequestLogSpec = RequestLogSpec()


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
    problems = [
        located.problem(
            ("models", alias, "provider"),
            f"unknown provider {spec.provider!r}; declared providers: "
            f"{', '.join(sorted(config.providers)) or '(none)'}",
        )
        for alias, spec in config.models.items()
        if spec.provider not in config.providers
    ]
    problems += [
        located.problem(
            ("models", alias, "successor"),
            f"unknown model alias {spec.successor!r}; declared aliases: {', '.join(sorted(config.models))}",
        )
        for alias, spec in config.models.items()
        if spec.successor is not None and spec.successor not in config.models
    ]
    if problems:
        raise yamlfile.FileError(problems)
    return config


@dataclass(frozen=True)
class Settings:
    """Everything a Pilothouse process is configured with."""

    data_dir: Path = Path(".pilothouse")
    database_url: str | None = None
    redis_url: str | None = None
    config_path: Path | None = None
    admin_token: str | None = None
    host: str = "127.0.0.1"
    port: int = 8080
    log_level: str = "info"
    config: ConfigFile = field(default_factory=ConfigFile)

    @property
    def effective_database_url(self) -> str:
        """The configured database, or SQLite in the data directory."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'pilothouse.db').resolve()}"


_ENV = {
    "data_dir": "PILOTHOUSE_DATA_DIR",
    "database_url": "PILOTHOUSE_DATABASE_URL",
    "redis_url": "PILOTHOUSE_REDIS_URL",
    "config_path": "PILOTHOUSE_CONFIG",
    "admin_token": "PILOTHOUSE_ADMIN_TOKEN",
    "log_level": "PILOTHOUSE_LOG_LEVEL",
}


def load_settings(**overrides: Any) -> Settings:
    """Build settings: explicit (CLI) values win over `PILOTHOUSE_*` variables over defaults.

    Loads and validates the config file when one is named; raises `yamlfile.FileError`.
    """
    values: dict[str, Any] = {}
    for name, env in _ENV.items():
        if os.environ.get(env):
            values[name] = os.environ[env]
    values.update({k: v for k, v in overrides.items() if v is not None})
    for name in ("data_dir", "config_path"):
        if name in values:
            values[name] = Path(values[name])
    if values.get("config_path"):
        values["config"] = load_config_file(values["config_path"])
    return Settings(**values)
