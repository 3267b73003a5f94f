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
@click.option(
    "--stop-when-stdin-closes",
    is_flag=True,
    hidden=True,  # for a parent process (the demo): the simulator goes when the parent does
    help="Shut down when standard input reaches end of file.",
)
def simulate(host: str, port: int, scenario: Path | None, stop_when_stdin_closes: bool) -> None:
    """Run an OpenAI- and Anthropic-compatible LLM provider simulator."""
    from pilothouse.simulator.server import run

    run(
        host=host,
        port=port,
        scenario_path=scenario,
        stop_when_stdin_closes=stop_when_stdin_closes,
    )
