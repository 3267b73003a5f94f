"""The `pilothouse` command line: one module per command group, imported only when used,
so `pilothouse --help` and the commands that call the API import neither the server's
stack nor scipy (`bench/cli_startup.py` measures it). Each command's one-line help is
written here, so listing the commands imports none of them."""

from __future__ import annotations

import importlib
from typing import Any

import click

# name: (module:attribute, one-line help shown by `pilothouse --help`)
COMMANDS = {
    "admin": ("pilothouse.cli.admin:admin", "The deployment's admin token: rotate, reset."),
    "alerts": (
        "pilothouse.cli.monitoring:alerts",
        "Alerts: list them, acknowledge or resolve them with a disposition and a reason.",
    ),
    "can-i-promote": (
        "pilothouse.cli.gate:can_i_promote",
        "Would the promotion gate let a prompt version or a release through? (exit 0 yes, 1 no)",
    ),
    "changelog": (
        "pilothouse.cli.changelog:changelog",
        "What changed in a prompt's or route's behaviour; subscribe a webhook to be told.",
    ),
    "contracts": (
        "pilothouse.cli.contracts:contracts",
        "Consumer contracts on a prompt's or route's output: add, list, verify, remove.",
    ),
    "datasets": (
        "pilothouse.cli.datasets:datasets",
        "Eval datasets: push files, sample real traffic, export for labelling, list versions.",
    ),
    "db": (
        "pilothouse.cli.db:db",
        "Database schema: status and upgrades (serve upgrades automatically).",
    ),
    "diff": (
        "pilothouse.cli.diff:diff",
        "Behaviour diff of two prompt versions, or a route's canary, over a dataset.",
    ),
    "deps": (
        "pilothouse.cli.deps:deps",
        "Who depends on a prompt: routes and versions, includers, contracts, gating suites.",
    ),
    "doctor": (
        "pilothouse.cli.models:doctor",
        "Retiring models routes still use, and routes, providers and suites with no owner.",
    ),
    "eval": (
        "pilothouse.cli.evals:eval_",
        "Eval-as-code: run suites as CI gates or on a schedule, list and compare runs.",
    ),
    "fleet": (
        "pilothouse.cli.fleet:fleet",
        "The provider fleet: each deployment's breaker, health and failures.",
    ),
    "keys": ("pilothouse.cli.keys:keys", "Manage API keys (the gateway's client credentials)."),
    "logs": ("pilothouse.cli.logs:logs", "Show recent gateway requests, newest first."),
    "models": (
        "pilothouse.cli.models:models",
        "The model catalog: aliases, providers, prices, lifecycle.",
    ),
    "prompts": (
        "pilothouse.cli.prompts:prompts",
        "The prompt registry: versions, labels, history; prompts as files.",
    ),
    "quotas": (
        "pilothouse.cli.quotas:quotas",
        "Quota policies: requests, tokens or USD per key, user or team, soft and hard limits.",
    ),
    "releases": (
        "pilothouse.cli.releases:releases",
        "What each route serves: show, promote, canary, roll back, history.",
    ),
    "serve": (
        "pilothouse.cli.serve:serve",
        "Serve the gateway (/v1), the admin API (/api), the dashboard (/), /healthz, /readyz "
        "and /metrics.",
    ),
    "slo": (
        "pilothouse.cli.monitoring:slo",
        "Service-level objectives: budget left and burn rate per window.",
    ),
    "simulate": (
        "pilothouse.cli.simulate:simulate",
        "Run an OpenAI- and Anthropic-compatible LLM provider simulator.",
    ),
}
# Packages only the `server` extra installs (the `evals` extra: aiohttp and scipy).
_EXTRAS = {
    "aiohttp": "evals",
    "scipy": "evals",
    "sqlalchemy": "server",
    "alembic": "server",
    "psycopg": "server",
    "starlette": "server",
    "uvicorn": "server",
    "redis": "server",
    "prometheus_client": "server",
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = COMMANDS.get(cmd_name)
        if target is None:
            return None
        module, _, attribute = target[0].partition(":")
        command: click.Command = getattr(importlib.import_module(module), attribute)
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, help_text) for name, (_, help_text) in sorted(COMMANDS.items())]
        with formatter.section("Commands"):
            formatter.write_dl(rows)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except ModuleNotFoundError as exc:
            extra = _EXTRAS.get((exc.name or "").partition(".")[0])
            if extra is None:
                raise
            raise click.ClickException(
                f"this command needs {exc.name}, which the light install leaves out: "
                f"pip install 'pilothouse[{extra}]'"
            ) from None


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="pilothouse", prog_name="pilothouse")
def main() -> None:
    """Pilothouse: the control room for LLM features in production."""
