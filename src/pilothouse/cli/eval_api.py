"""What every eval command shares: the exit statuses, the errors that carry them, the API
as an application (failures sorted into the command's and the infrastructure's), run
artifacts by id or file, and the guard that keeps tracebacks off the terminal."""

from __future__ import annotations

import functools
import os
import sys
import traceback
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import click
import httpx
import orjson

EXIT_PASS, EXIT_FAIL, EXIT_CONFIG, EXIT_INFRA, EXIT_INTERRUPTED = 0, 1, 2, 3, 130


class SuiteProblem(click.ClickException):
    """The suite, dataset or command is wrong; found before any call (exit 2)."""

    exit_code = EXIT_CONFIG


class InfraProblem(click.ClickException):
    """The gateway, a provider, storage or an output file failed (exit 3)."""

    exit_code = EXIT_INFRA


class Interrupted(Exception):
    """Ctrl-C during the calls; the journal keeps what was done."""

    def __init__(self, run_id: str, journal: Path | None):
        super().__init__(run_id)
        self.run_id = run_id
        self.journal = journal


def data_dir() -> Path:
    return Path(os.environ.get("PILOTHOUSE_DATA_DIR", ".pilothouse"))


def cache_dir(chosen: Path | None = None) -> Path:
    """The response cache folder `eval run`, `diff` and `contracts verify` share: `chosen`
    (--cache-dir), else $PILOTHOUSE_EVAL_CACHE_DIR, else eval-cache in the data dir."""
    return chosen or Path(os.environ.get("PILOTHOUSE_EVAL_CACHE_DIR") or data_dir() / "eval-cache")


def journal_path(run_id: str) -> Path:
    return data_dir() / "evals" / f"{run_id}.journal.jsonl"


class EvalApi:
    """The REST API and the gateway as an application (PILOTHOUSE_API_KEY), with failures
    sorted: unreachable or 5xx is the infrastructure's, other refusals are the command's."""

    def __init__(self) -> None:
        self.url = (os.environ.get("PILOTHOUSE_URL") or "http://127.0.0.1:8080").rstrip("/")
        token = os.environ.get("PILOTHOUSE_API_KEY") or os.environ.get("PILOTHOUSE_ADMIN_TOKEN")
        if not token:
            raise SuiteProblem(
                "PILOTHOUSE_API_KEY is not set: an eval calls the gateway as an application. "
                "Create a key with `pilothouse keys create --name ci-evals`"
            )
        self.token = token
        self._client = httpx.Client(
            base_url=self.url, headers={"Authorization": f"Bearer {token}"}, timeout=60.0
        )

    def close(self) -> None:
        self._client.close()

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            response = self._client.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise InfraProblem(
                f"cannot reach Pilothouse at {self.url} ({type(exc).__name__}: {exc}); is "
                "`pilothouse serve` running? (set PILOTHOUSE_URL to point elsewhere)"
            ) from None
        if response.status_code < 400:
            return response.json()
        message = _message(response)
        if response.status_code >= 500 or response.status_code in (408, 429):
            raise InfraProblem(f"{method} {path}: HTTP {response.status_code}: {message}")
        raise SuiteProblem(f"{method} {path}: HTTP {response.status_code}: {message}")

    def get(self, path: str, **params: Any) -> Any:
        return self.request("GET", path, params={k: v for k, v in params.items() if v is not None})

    def post(self, path: str, body: dict[str, Any]) -> Any:
        return self.request(
            "POST", path, content=orjson.dumps(body), headers={"content-type": "application/json"}
        )


def _message(response: httpx.Response) -> str:
    try:
        error = response.json().get("error")
    except (ValueError, AttributeError):
        return response.text[:300]
    if isinstance(error, dict):
        text = str(error.get("message", ""))
        return text + (f" ({error['hint']})" if error.get("hint") else "")
    return str(error)


def load_artifact(ref: str, api: EvalApi | None) -> dict[str, Any]:
    """A run artifact from a file, else from the API by run id."""
    path = Path(ref)
    if path.exists():
        try:
            artifact = orjson.loads(path.read_bytes())
        except (OSError, orjson.JSONDecodeError) as exc:
            raise SuiteProblem(f"{path}: not a run artifact ({exc})") from None
    else:
        if api is None:
            api = EvalApi()
        artifact = api.get(f"/api/evals/runs/{quote(ref)}")
    if not isinstance(artifact, dict) or "manifest" not in artifact:
        raise SuiteProblem(f"{ref}: not a run artifact")
    return artifact


def no_traceback(command: Callable[..., None]) -> Callable[..., None]:
    """Turn anything unexpected into one line and exit 3; the traceback goes to a file."""

    @functools.wraps(command)
    def wrapped(*args: Any, **kwargs: Any) -> None:
        try:
            command(*args, **kwargs)
        except (click.ClickException, click.exceptions.Exit, click.Abort, SystemExit):
            raise
        except Interrupted as exc:
            where = f" (answers so far kept in {exc.journal})" if exc.journal else ""
            say(f"\ninterrupted{where}; continue with --resume {exc.run_id}")
            raise SystemExit(EXIT_INTERRUPTED) from None
        except KeyboardInterrupt:
            say("\ninterrupted")
            raise SystemExit(EXIT_INTERRUPTED) from None
        except Exception as exc:
            log = data_dir() / "evals" / f"crash-{datetime.now(UTC):%Y%m%d%H%M%S}.log"
            try:
                log.parent.mkdir(parents=True, exist_ok=True)
                log.write_text(traceback.format_exc())
                where = f"; details in {log}"
            except OSError:
                where = ""
            say(f"Error: unexpected {type(exc).__name__}: {exc}{where}")
            raise SystemExit(EXIT_INFRA) from None

    return wrapped


def say(message: str) -> None:
    click.echo(message, err=True)


def stderr_is_tty() -> bool:
    return sys.stderr.isatty()
