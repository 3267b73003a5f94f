"""The request headers the gateway reads, parsed once into a frozen value."""

from __future__ import annotations

import re
from dataclasses import dataclass

from pilothouse.gateway.http_io import Scope

_REQUEST_ID = re.compile(rb"^[A-Za-z0-9._:-]{1,64}$")


@dataclass(frozen=True, slots=True)
class RequestHeaders:
    authorization: bytes | None = None
    content_length: int | None = None
    client_request_id: str | None = None  # the caller's X-Request-Id, when well-formed
    session: str | None = None  # X-Pilothouse-Session: the canary split's sticky id
    arm: str | None = None  # X-Pilothouse-Release: pin a route's active or canary release

    @classmethod
    def of(cls, scope: Scope) -> RequestHeaders:
        authorization = request_id = session = arm = None
        content_length: int | None = None
        for name, value in scope["headers"]:
            if name == b"authorization":
                authorization = value
            elif name == b"content-length":
                content_length = int(value) if value.isdigit() else None
            elif name == b"x-request-id" and _REQUEST_ID.match(value):
                request_id = value.decode()
            elif name == b"x-pilothouse-session":
                session = value.decode("latin-1")
            elif name == b"x-pilothouse-release":
                arm = value.decode("latin-1")
        return cls(authorization, content_length, request_id, session, arm)
