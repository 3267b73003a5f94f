"""The request headers the gateway reads, parsed once into a frozen value.

Nothing here becomes a key or an identity: the caller's request id is kept as a label
(bounded, printable), the row's id is always made by the gateway.
"""

from __future__ import annotations

from dataclasses import dataclass

from pilothouse.gateway.http_io import Scope

MAX_CLIENT_ID_CHARS = 128
MAX_LABEL_CHARS = 64


def _label(value: bytes, limit: int) -> str | None:
    """Printable ASCII, cut to `limit`; None when nothing printable is left."""
    text = value[:limit].decode("ascii", "replace")
    kept = "".join(ch for ch in text if " " <= ch <= "~").strip()
    return kept or None


@dataclass(frozen=True, slots=True)
class RequestHeaders:
    authorization: bytes | None = None
    api_key: bytes | None = None  # x-api-key: how the anthropic SDK sends its key
    content_length: int | None = None
    client_request_id: str | None = None  # X-Request-Id / X-Client-Request-Id, as a label
    session: str | None = None  # X-Pilothouse-Session: the canary split's sticky id
    arm: str | None = None  # X-Pilothouse-Release: pin a route's active or canary release
    source: str | None = None  # X-Pilothouse-Source: "eval" marks the eval runner's calls
    eval_run_id: str | None = None  # X-Pilothouse-Eval-Run

    @classmethod
    def of(cls, scope: Scope) -> RequestHeaders:
        authorization = api_key = client_id = session = arm = source = eval_run = None
        content_length: int | None = None
        for name, value in scope["headers"]:
            if name == b"authorization":
                authorization = value
            elif name == b"x-api-key":
                api_key = value
            elif name == b"content-length":
                content_length = int(value) if value.isdigit() and len(value) < 19 else None
            elif name in (b"x-request-id", b"x-client-request-id"):
                client_id = _label(value, MAX_CLIENT_ID_CHARS)
            elif name == b"x-pilothouse-session":
                session = value.decode("latin-1")
            elif name == b"x-pilothouse-release":
                arm = value.decode("latin-1")
            elif name == b"x-pilothouse-source":
                source = _label(value, MAX_LABEL_CHARS)
            elif name == b"x-pilothouse-eval-run":
                eval_run = _label(value, MAX_LABEL_CHARS)
        return cls(
            authorization, api_key, content_length, client_id, session, arm, source, eval_run
        )
