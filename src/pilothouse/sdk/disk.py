"""The on-disk copy of every prompt the SDK fetched: what a cold start uses when the
registry is down. One JSON file per (prompt, label | version), written atomically."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

log = logging.getLogger("pilothouse.sdk")

DEFAULT_CACHE_DIR = Path("~/.cache/pilothouse/prompts")


def server_slug(base_url: str) -> str:
    """A directory name per registry, so two registries never serve each other's prompts."""
    parts = urlsplit(base_url)
    raw = (parts.netloc or base_url) + parts.path.rstrip("/")
    return re.sub(r"[^A-Za-z0-9._-]+", "_", raw).strip("_") or "default"


class DiskCache:
    def __init__(self, root: Path, base_url: str):
        self.dir = root.expanduser() / server_slug(base_url)

    def path(self, name: str, label: str | None, version: int | None) -> Path:
        ref = f"v{version}" if version is not None else f"l-{quote(label or '', safe='')}"
        return self.dir / f"{quote(name, safe='')}@{ref}.json"

    def load(self, name: str, label: str | None, version: int | None) -> dict[str, Any] | None:
        """The saved record `{"payload", "etag", "saved_at"}`, or None (missing or unreadable)."""
        path = self.path(name, label, version)
        try:
            record = json.loads(path.read_bytes())
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            log.warning("pilothouse: ignoring unreadable prompt cache file %s: %s", path, exc)
            return None
        if not isinstance(record, dict) or not isinstance(record.get("payload"), dict):
            log.warning("pilothouse: ignoring malformed prompt cache file %s", path)
            return None
        return record

    def save(
        self,
        name: str,
        label: str | None,
        version: int | None,
        payload: dict[str, Any],
        etag: str | None,
    ) -> None:
        """Write temp file, fsync, os.replace: readers see the old copy or the new, never half."""
        path = self.path(name, label, version)
        data = json.dumps(
            {"payload": payload, "etag": etag, "saved_at": time.time()}, ensure_ascii=False
        ).encode()
        tmp_name = None
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
            fd, tmp_name = tempfile.mkstemp(dir=self.dir, prefix=".tmp-", suffix=".json")
            with os.fdopen(fd, "wb") as tmp:
                tmp.write(data)
                tmp.flush()
                os.fsync(tmp.fileno())
            os.replace(tmp_name, path)
            tmp_name = None
        except OSError as exc:
            log.warning("pilothouse: cannot write prompt cache file %s: %s", path, exc)
        finally:
            if tmp_name is not None:
                with contextlib.suppress(OSError):
                    os.unlink(tmp_name)
