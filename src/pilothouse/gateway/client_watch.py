"""Noticing that a client went away, so the call made for it is cancelled (and its
request recorded as the client's leaving, with what it cost)."""

from __future__ import annotations

import asyncio

from pilothouse.gateway.http_io import Receive, wait_for_disconnect


class ClientWatch:
    """While alive, cancels the task that made it when the client disconnects.

    With `after_seconds`, the watching starts only once that much time has passed: a call
    that answers sooner costs a timer, not a task (the fast path of a plain request)."""

    __slots__ = ("_receive", "_task", "_timer", "_watcher", "gone")

    def __init__(self, receive: Receive, after_seconds: float = 0.0):
        self.gone = False
        task = asyncio.current_task()
        assert task is not None
        self._task = task
        self._receive = receive
        self._watcher: asyncio.Future[None] | None = None
        self._timer: asyncio.TimerHandle | None = None
        if after_seconds > 0:
            self._timer = asyncio.get_running_loop().call_later(after_seconds, self._watch)
        else:
            self._watch()

    def _watch(self) -> None:
        self._timer = None
        self._watcher = asyncio.ensure_future(wait_for_disconnect(self._receive))
        self._watcher.add_done_callback(self._left)

    def _left(self, watcher: asyncio.Future[None]) -> None:
        if not watcher.cancelled():
            self.gone = True
            self._task.cancel()

    def detach(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        if self._watcher is not None:
            self._watcher.remove_done_callback(self._left)
            self._watcher.cancel()


# A plain request that has not answered within this starts watching for its client leaving.
WATCH_AFTER_SECONDS = 0.25
