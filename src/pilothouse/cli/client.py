"""The CLI's client of the control-plane REST API (PILOTHOUSE_URL, PILOTHOUSE_ADMIN_TOKEN).

Built on the standard library's `urllib.request` rather than httpx: a command makes one or
two calls, and importing httpx was a third of the CLI's start-up (bench/cli_startup.py).
Proxies from the environment and HTTPS work as with any urllib client.
"""

from __future__ import annotations

import json
import os
import socket
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

import click

TIMEOUT_SECONDS = 30.0
CONFIG_VERSION_HEADER = "X-Pilothouse-Config-Version"
APPLIED_WAIT_SECONDS = 10  # how long a write waits to see its change served


class ApiError(click.ClickException):
    """A call the API refused (`status`: its HTTP status) or that never got an answer
    (`status` None); exit status 1, unless a command maps it to one of its own."""

    def __init__(self, message: str, status: int | None = None):
        super().__init__(message)
        self.status = status


class ApiClient:
    def __init__(self, url: str | None = None, token: str | None = None):
        self.url = (url or os.environ.get("PILOTHOUSE_URL") or "http://127.0.0.1:8080").rstrip("/")
        self.token = token or os.environ.get("PILOTHOUSE_ADMIN_TOKEN")
        self.headers: dict[str, str] = {}
        self.applied_version: int | None = None  # the last write's, once served

    def request(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, Any] | None = None,
        json: Any = None,
    ) -> Any:
        """Call the API; raise a ClickException that says what went wrong and what to do.
        A write that changed the configuration (its answer carries the configuration
        version) returns once the instance serves that version, and says so on stderr."""
        if not self.token:
            raise click.ClickException(
                "PILOTHOUSE_ADMIN_TOKEN is not set: export the admin token that "
                "`pilothouse serve` printed on its first start (or the one you configured)"
            )
        url = self.url + path
        if params:
            url += "?" + urllib.parse.urlencode({k: v for k, v in params.items() if v is not None})
        headers = {
            **self.headers,
            "Authorization": f"Bearer {self.token}",
            "Accept": "application/json",
        }
        data = None
        if json is not None:
            data = _dumps(json)
            headers["Content-Type"] = "application/json"
        request = urllib.request.Request(url, data=data, headers=headers, method=method)
        try:
            with urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS) as response:
                result = _loads(response.read())
                version = response.headers.get(CONFIG_VERSION_HEADER)
        except urllib.error.HTTPError as exc:
            raise ApiError(_refusal(exc), exc.code) from None
        except (TimeoutError, urllib.error.URLError, ConnectionError) as exc:
            reason = getattr(exc, "reason", exc)
            if isinstance(reason, ConnectionRefusedError | socket.gaierror):
                raise ApiError(
                    f"cannot reach Pilothouse at {self.url}: is `pilothouse serve` running? "
                    "(set PILOTHOUSE_URL to point elsewhere)"
                ) from None
            raise ApiError(f"request to {self.url}{path} failed: {reason}") from None
        if version and version.isdigit():
            self._wait_applied(int(version))
        return result

    def _wait_applied(self, version: int) -> None:
        """Wait until the instance serves `version` (GET /api/config/version) and say so."""
        try:
            state = self.get("/api/config/version", min=version, wait=APPLIED_WAIT_SECONDS)
        except click.ClickException as exc:  # an older server, or it went away: the write stands
            click.echo(f"configuration version {version} written (not confirmed: {exc})", err=True)
            return
        if isinstance(state, dict) and state.get("reached"):
            self.applied_version = version
            click.echo(f"configuration version {version} applied on {self.url}", err=True)
        else:
            click.echo(
                f"configuration version {version} written but not yet served by {self.url} "
                f"after {APPLIED_WAIT_SECONDS} s; it applies when that instance catches up",
                err=True,
            )

    def get(self, path: str, **params: Any) -> Any:
        return self.request("GET", path, params={k: v for k, v in params.items() if v is not None})

    def get_all(self, path: str, **params: Any) -> list[Any]:
        """Every item of a paginated list (`data`), following `next_after` page by page."""
        items: list[Any] = []
        after = None
        while True:
            page = self.get(path, **params, after=after)
            items.extend(page["data"])
            after = page.get("next_after")
            if not after:
                return items

    def post(self, path: str, body: dict[str, Any] | None = None) -> Any:
        return self.request("POST", path, json=body or {})


def _dumps(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False).encode()


def _loads(raw: bytes) -> Any:
    try:
        return json.loads(raw) if raw.strip() else None
    except ValueError:
        return None


def _refusal(exc: urllib.error.HTTPError) -> str:
    """`status: message (hint)` from our error shape, else the start of the body."""
    raw = exc.read()
    body = _loads(raw)
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict):
        message = str(error.get("message", ""))
        if error.get("hint"):
            message += f" ({error['hint']})"
    else:
        message = raw[:300].decode(errors="replace")
    return f"{exc.code}: {message}"
