"""`pilothouse simulate`: run the provider simulator."""

from __future__ import annotations

from pathlib import Path

import click


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to bind.")
@click.option("--port", default=9100, show_default=True, type=int, help="Port to listen on.")
@click.option(
    "--scenario",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="Scenario YAML: scripted replies, latency profiles, fault rates, drift phases.",
)
def simulate(host: str, port: int, scenario: Path | None) -> None:
    """Run an OpenAI- and Anthropic-compatible LLM provider simulator."""
    from pilothouse.simulator.server import run

    run(host=host, port=port, scenario_path=scenario)
