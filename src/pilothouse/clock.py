"""The time every time-based decision reads (fleet windows and breakers, monitors, SLO
windows, schedules): wall-clock seconds, so an `open until` or a `due at` means the same
on every instance. Tests move a `ManualClock` instead of sleeping."""

from __future__ import annotations

import time


class Clock:
    """Wall-clock seconds (epoch)."""

    def now(self) -> float:
        return time.time()


class ManualClock(Clock):
    """A clock that moves only when told (tests)."""

    def __init__(self, start: float = 1_000_000.0):
        self.value = start

    def now(self) -> float:
        return self.value

    def advance(self, seconds: float) -> None:
        self.value += seconds
