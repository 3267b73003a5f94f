"""The `pilothouse` command line: one module per command group, imported only when used,
so `pilothouse keys list` does not pay for the server's imports."""

from __future__ import annotations

import importlib

import click

from pilothouse import __version__

COMMANDS = {
    "serve": "pilothouse.cli.serve:serve",
    "simulate": "pilothouse.cli.simulate:simulate",
    "keys": "pilothouse.cli.keys:keys",
    "prompts": "pilothouse.cli.prompts:prompts",
    "logs": "pilothouse.cli.logs:logs",
    "db": "pilothouse.cli.db:db",
    "releases": "pilothouse.cli.releases:releases",
    "models": "pilothouse.cli.models:models",
    "doctor": "pilothouse.cli.models:doctor",
    "eval": "pilothouse.cli.evals:eval_",
    "datasets": "pilothouse.cli.datasets:datasets",
    "fleet": "pilothouse.cli.fleet:fleet",
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = COMMANDS.get(cmd_name)
        if target is None:
            return None
        module, _, attribute = target.partition(":")
        command: click.Command = getattr(importlib.import_module(module), attribute)
        return command


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="pilothouse")
def main() -> None:
    """Pilothouse: the control room for LLM features in production."""
