"""The SDK's engine, shared by `Client` and `AsyncClient`: the in-memory cache, first
loads (registry, then disk copy, then code fallback), revalidation and registry health.
The threads that keep it fresh are in `listener.py`."""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
import weakref
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import httpx

from pilothouse.sdk.connection import RegistryConnection, error_text, payload_of
from pilothouse.sdk.disk import DEFAULT_CACHE_DIR, DiskCache
from pilothouse.sdk.events import Key, affected_keys, carried_prompt
from pilothouse.sdk.listener import Listener
from pilothouse.sdk.prompt import Prompt, PromptUnavailable

log = logging.getLogger("pilothouse.sdk")

DEFAULT_URL = "http://127.0.0.1:8080"
SKIP_AFTER_FAILURE = 5.0  # first loads skip the registry this long after it failed

Fallback = str | Sequence[Mapping[str, Any]]
OnChange = Callable[[str, str | None, int, int], None]

STAT_NAMES = (
    "fetches",  # first loads that reached the server
    "disk_serves",  # first loads answered from the disk cache
    "fallback_serves",  # first loads answered with the code fallback
    "refreshes",  # conditional GETs made by the background thread
    "event_installs",  # entries updated from a label-move event's payload (no GET)
    "not_modified",  # ... answered 304
    "updates",  # entries that changed (a new version, or new fragments)
    "events",  # SSE events received
    "stream_connects",
    "stream_errors",
    "polls",  # backstop polls (each revalidates every cached entry)
    "refresh_errors",  # failed refreshes and first loads (network or server error)
    "stale_serves",  # calls served from cache while the registry is failing
    "labels_missing",  # cached labels that the registry no longer has
)


class _Entry:
    __slots__ = ("confirmed", "etag", "payload", "prompt")

    def __init__(
        self, prompt: Prompt, payload: dict[str, Any] | None, etag: str | None, confirmed: bool
    ):
        self.prompt = prompt  # the copy served from memory
        self.payload = payload  # the last good server payload (None for a fallback)
        self.etag = etag
        self.confirmed = confirmed  # the server gave or validated this copy in this process


class _Skipped(Exception):
    """The registry failed moments ago: a first load goes straight to disk or fallback."""


class _ServerError(Exception):
    """The registry answered, but not usefully (5xx, 401, unparseable...)."""


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def _ref(label: str | None, version: int | None) -> str:
    return f"version {version}" if version is not None else f"label {label}"


class _Core:
    def __init__(
        self,
        base_url: str | None,
        api_key: str | None,
        cache_dir: str | os.PathLike[str] | None,
        strict: bool,
        poll_interval_seconds: float,
        timeout_seconds: float,
        on_change: OnChange | None,
    ):
        self.base_url = (base_url or os.environ.get("PILOTHOUSE_URL") or DEFAULT_URL).rstrip("/")
        api_key = api_key if api_key is not None else os.environ.get("PILOTHOUSE_API_KEY")
        cache_root = cache_dir or os.environ.get("PILOTHOUSE_PROMPT_CACHE") or DEFAULT_CACHE_DIR
        self.disk = DiskCache(Path(cache_root), self.base_url)
        self.strict = strict
        self.poll_interval = float(poll_interval_seconds)
        self.on_change = on_change
        self.registry = RegistryConnection(self.base_url, api_key, timeout_seconds)

        # The fast path reads `prompts` without the lock (a dict lookup is atomic); every
        # write to `prompts` or `entries` happens under the lock.
        self.prompts: dict[Key, Prompt] = {}
        self.entries: dict[Key, _Entry] = {}
        self.lock = threading.Lock()
        self._load_locks: dict[Key, threading.Lock] = {}
        self._refresh_lock = threading.Lock()
        self.stats: dict[str, int] = dict.fromkeys(STAT_NAMES, 0)
        self.missing_labels: set[tuple[str, str]] = set()
        self.outage = False
        self._failed_at = 0.0
        self._failure = ""
        self.closed = False
        self.listener = Listener(self, self.poll_interval)
        _LIVE.add(self)

    def after_fork_in_child(self) -> None:
        """A client made before a fork (gunicorn --preload, multiprocessing) keeps working
        in the child: the parent's threads did not come along, its locks may be held by
        them, and its pooled connections are the parent's. Keep the cache (the same dict,
        which the fast path holds), start over with everything else."""
        if self.closed:
            return
        self.lock = threading.Lock()
        self._load_locks = {}
        self._refresh_lock = threading.Lock()
        self.registry = self.registry.reopened()
        self.listener = Listener(self, self.poll_interval)
        self.listener.start()

    # ---- the call path -------------------------------------------------------------

    def load(self, key: Key, fallback: Fallback | None) -> Prompt:
        """Slow path: the first call for `key` (or a concurrent one waiting for it)."""
        _, label, version = key
        if label is not None and version is not None:
            raise ValueError("get_prompt: give label or version, not both")
        if self.closed:
            raise RuntimeError("this Pilothouse client is closed")
        with self.lock:
            load_lock = self._load_locks.setdefault(key, threading.Lock())
        with load_lock:
            cached = self.prompts.get(key)
            if cached is not None:
                return cached
            try:
                return self._load(key, fallback)
            finally:
                self.listener.start()

    def _load(self, key: Key, fallback: Fallback | None) -> Prompt:
        name, label, version = key
        tried: list[str] = []
        not_found = False
        try:
            since_failure = time.monotonic() - self._failed_at
            if self.outage and since_failure < SKIP_AFTER_FAILURE:
                # Do not make every first call wait for a registry that just failed (a
                # black-holed host costs `timeout_seconds` per call); the background thread
                # revalidates whatever this serves as soon as the registry answers.
                raise _Skipped(f"skipped, it failed {since_failure:.1f} s ago ({self._failure})")
            response = self.registry.get_prompt(name, label, version, etag=None)
            if response.status_code == 200:
                payload, etag = payload_of(response)
                prompt = Prompt.from_payload(payload, label=label, source="server")
                self.server_ok()
                self.stats["fetches"] += 1
                self._store(key, _Entry(prompt.with_source("memory"), payload, etag, True))
                self.disk.save(name, label, version, payload, etag)
                return prompt
            if response.status_code == 404:
                self.server_ok()
                not_found = True
                tried.append(f"registry {self.base_url}: not found ({error_text(response)})")
            else:
                raise _ServerError(f"HTTP {response.status_code} ({error_text(response)})")
        except _Skipped as exc:
            tried.append(f"registry {self.base_url}: {exc}")
        except (httpx.HTTPError, _ServerError, ValueError, KeyError, TypeError) as exc:
            self.stats["refresh_errors"] += 1
            self._server_failed(_describe(exc))
            tried.append(f"registry {self.base_url}: {_describe(exc)}")

        record = self.disk.load(name, label, version)
        path = self.disk.path(name, label, version)
        if record is not None:
            try:
                prompt = Prompt.from_payload(record["payload"], label=label, source="disk")
            except (KeyError, TypeError, ValueError) as exc:
                tried.append(f"disk cache {path}: unusable ({_describe(exc)})")
            else:
                self.stats["disk_serves"] += 1
                etag = record.get("etag") if isinstance(record.get("etag"), str) else None
                self._store(key, _Entry(prompt, record["payload"], etag, False))
                log.warning(
                    "pilothouse: serving prompt %s from the disk cache (%s); the registry "
                    "could not supply it: %s",
                    prompt.ref,
                    path,
                    "; ".join(tried),
                )
                if not_found and label is not None:
                    self._label_missing(name, label)
                return prompt
        else:
            tried.append(f"disk cache {path}: no copy")

        if fallback is not None and not self.strict:
            prompt = Prompt.from_fallback(name, label, fallback)
            self.stats["fallback_serves"] += 1
            self._store(key, _Entry(prompt, None, None, False))
            log.warning(
                "pilothouse: serving the code fallback for prompt %s@%s; tried: %s",
                name,
                label if label is not None else version,
                "; ".join(tried),
            )
            return prompt
        tried.append(
            "code fallback: none given" if fallback is None else "code fallback: refused (strict)"
        )
        raise PromptUnavailable(name, _ref(label, version), tried)

    # ---- cache -------------------------------------------------------------------------

    def _store(self, key: Key, entry: _Entry) -> _Entry | None:
        """Put an entry in place; returns the one it replaced."""
        with self.lock:
            old = self.entries.get(key)
            self.entries[key] = entry
            self.prompts[key] = entry.prompt
        return old

    def _install(self, key: Key, payload: dict[str, Any], etag: str | None) -> None:
        """A good copy from the registry: swap it in, save it, report a change. The label
        is known to exist again before the copy can be read (a reader that sees the new
        version never sees the label reported missing)."""
        name, label, version = key
        prompt = Prompt.from_payload(payload, label=label, source="memory")
        self._label_present(key)
        old = self._store(key, _Entry(prompt, payload, etag, True))
        self.disk.save(name, label, version, payload, etag)
        if old is None or not _changed(old.prompt, prompt):
            return
        self.stats["updates"] += 1
        log.info(
            "pilothouse: prompt %s changed: version %s -> %s",
            prompt.ref,
            old.prompt.version,
            prompt.version,
        )
        if self.on_change is not None:
            try:
                self.on_change(name, label, old.prompt.version, prompt.version)
            except Exception:
                log.exception("pilothouse: the on_change callback failed")

    def refresh(self, key: Key) -> bool:
        """Revalidate one cached entry; on any failure keep the copy we have. False when the
        registry could not be reached at all."""
        # One refresh at a time (stream and poll threads): an older answer must never be
        # installed over a newer one.
        with self._refresh_lock:
            return self._refresh(key)

    def _refresh(self, key: Key) -> bool:
        entry = self.entries.get(key)
        if entry is None or (key[2] is not None and entry.confirmed):
            return True  # a version fetched from the registry never changes
        self.stats["refreshes"] += 1
        etag = entry.etag if entry.payload is not None else None
        try:
            response = self.registry.get_prompt(*key, etag)
            status = response.status_code
            if status == 304 and entry.payload is not None:
                self.stats["not_modified"] += 1
                self.server_ok()
                self._label_present(key)
                if not entry.confirmed:  # a disk copy the registry just validated
                    prompt = Prompt.from_payload(entry.payload, label=key[1], source="memory")
                    self._store(key, _Entry(prompt, entry.payload, entry.etag, True))
                return True
            if status == 200:
                payload, new_etag = payload_of(response)
                self.server_ok()
                self._install(key, payload, new_etag)
                return True
            if status == 404:
                self.server_ok()
                if key[1] is not None and entry.payload is not None:
                    self._label_missing(key[0], key[1])
                return True
            raise _ServerError(f"HTTP {status} ({error_text(response)})")
        except (httpx.HTTPError, _ServerError, ValueError, KeyError, TypeError) as exc:
            self.stats["refresh_errors"] += 1
            self._server_failed(_describe(exc))
            return not isinstance(exc, httpx.TransportError)

    def refresh_all(self, *, only_unconfirmed: bool = False) -> None:
        """Revalidate every entry; stop at the first that cannot reach the registry (a
        black-holed host would otherwise cost `timeout_seconds` per entry)."""
        for key, entry in list(self.entries.items()):
            if self.closed:
                return
            if (not only_unconfirmed or not entry.confirmed) and not self.refresh(key):
                return

    # ---- health ----------------------------------------------------------------------

    def server_ok(self) -> None:
        if self.outage:
            self.outage = False
            log.warning("pilothouse: prompt registry %s is answering again", self.base_url)

    def _server_failed(self, why: str) -> None:
        self._failed_at = time.monotonic()
        self._failure = why
        if not self.outage:
            self.outage = True
            log.warning(
                "pilothouse: prompt registry %s is failing (%s); serving the last good copies "
                "until it answers again",
                self.base_url,
                why,
            )

    def _label_missing(self, name: str, label: str) -> None:
        with self.lock:
            if (name, label) in self.missing_labels:
                return
            self.missing_labels.add((name, label))
        self.stats["labels_missing"] += 1
        log.warning(
            "pilothouse: label %r of prompt %r no longer exists in the registry; "
            "still serving the last good copy",
            label,
            name,
        )

    def _label_present(self, key: Key) -> None:
        name, label, _ = key
        if label is not None and (name, label) in self.missing_labels:
            with self.lock:
                self.missing_labels.discard((name, label))
            log.warning("pilothouse: label %r of prompt %r exists again", label, name)

    # ---- events ------------------------------------------------------------------------

    def handle_event(self, data: Mapping[str, Any]) -> None:
        """One `prompt` event: refresh the entries it affects. An entry on a moved label
        takes the prompt the event carries (no fetch); anything else is fetched again (an
        includer's own version did not move, but its ETag covers its fragments)."""
        self.stats["events"] += 1
        name, label = data.get("name"), data.get("label")
        if not isinstance(name, str):
            return
        for key in affected_keys(self.entries, name, label if isinstance(label, str) else None):
            carried = carried_prompt(data, key)
            if carried is None or not self._install_carried(key, *carried):
                self.refresh(key)

    def _install_carried(self, key: Key, payload: dict[str, Any], etag: str) -> bool:
        with self._refresh_lock:  # in order with the fetches of the poll thread
            try:
                self._install(key, payload, etag)
            except (KeyError, TypeError, ValueError):
                return False  # not a prompt after all: fetched instead
        self.stats["event_installs"] += 1
        self.server_ok()
        return True

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self.listener.close()
        with contextlib.suppress(Exception):
            self.registry.close()


_LIVE: weakref.WeakSet[_Core] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for core in list(_LIVE):
        core.after_fork_in_child()


os.register_at_fork(after_in_child=_after_fork_in_child)


def _changed(old: Prompt, new: Prompt) -> bool:
    if old.version != new.version or old.hash != new.hash or old.source == "fallback":
        return True
    return {r: f.hash for r, f in old.fragments.items()} != {
        r: f.hash for r, f in new.fragments.items()
    }
