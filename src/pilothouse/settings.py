"""Settings (environment + CLI flags): one `Settings` object carries everything a process
needs; `load_settings` builds it from CLI overrides, then `PILOTHOUSE_*` environment
variables, then defaults, and loads the config file (`config.py`) when one is named.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pilothouse.config import ConfigFile, load_config_file


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


class SettingsError(ValueError):
    """A setting that cannot be used (an environment variable's value); says which."""


_ENV = {
    "host": "PILOTHOUSE_HOST",
    "port": "PILOTHOUSE_PORT",
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
    port = values.get("port")
    if isinstance(port, str):  # from PILOTHOUSE_PORT (the --port flag is checked by click)
        if not (port.isascii() and port.isdigit() and int(port) <= 65535):
            raise SettingsError(f"PILOTHOUSE_PORT must be a port number (0-65535), not {port!r}")
        values["port"] = int(port)
    if values.get("config_path"):
        values["config"] = load_config_file(values["config_path"])
    return Settings(**values)
