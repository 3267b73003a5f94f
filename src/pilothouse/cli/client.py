"""The CLI's client of the control-plane REST API (PILOTHOUSE_URL, PILOTHOUSE_ADMIN_TOKEN)."""

from __future__ import annotations

import os
from typing import Any

import click
import httpx


class ApiClient:
    def __init__(self, url: str | None = None, token: str | None = None):
        self.url = (url or os.environ.get("PILOTHOUSE_URL") or "http://127.0.0.1:8080").rstrip("/")
        self.token = token or os.environ.get("PILOTHOUSE_ADMIN_TOKEN")
        self.headers: dict[str, str] = {}

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        """Call the API; raise a ClickException that says what went wrong and what to do."""
        if not self.token:
            raise click.ClickException(
                "PILOTHOUSE_ADMIN_TOKEN is not set: export the admin token that "
                "`pilothouse serve` printed on its first start (or the one you configured)"
            )
        headers = {**self.headers, "Authorization": f"Bearer {self.token}"}
        try:
            response = httpx.request(
                method, self.url + path, headers=headers, timeout=30.0, **kwargs
            )
        except httpx.ConnectError:
            raise click.ClickException(
                f"cannot reach Pilothouse at {self.url}: is `pilothouse serve` running? "
                "(set PILOTHOUSE_URL to point elsewhere)"
            ) from None
        except httpx.HTTPError as exc:
            raise click.ClickException(f"request to {self.url}{path} failed: {exc}") from None
        try:
            body = response.json()
        except ValueError:
            body = None
        if response.status_code >= 400:
            error = (body or {}).get("error") if isinstance(body, dict) else None
            if isinstance(error, dict):
                message = error.get("message", "")
                if error.get("hint"):
                    message += f" ({error['hint']})"
            else:
                message = response.text[:300]
            raise click.ClickException(f"{response.status_code}: {message}")
        return body

    def get(self, path: str, **params: Any) -> Any:
        return self.request("GET", path, params={k: v for k, v in params.items() if v is not None})

    def post(self, path: str, body: dict[str, Any] | None = None) -> Any:
        return self.request("POST", path, json=body or {})
