"""Counts over a rolling time window, kept in slices: adding to the current slice is O(1),
a total reads every live slice (20 by default), and a slice older than the window is
reused, so memory is fixed."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from pilothouse.clock import Clock

T = TypeVar("T")

SLICES = 20


class RollingWindow(Generic[T]):
    """The last `window_seconds` of tallies made by `factory`, in `SLICES` slices (so a
    total covers between the window less one slice and the full window)."""

    __slots__ = ("_clock", "_factory", "_slice_seconds", "_stamps", "_tallies", "window_seconds")

    def __init__(self, window_seconds: float, clock: Clock, factory: Callable[[], T]):
        self.window_seconds = window_seconds
        self._slice_seconds = window_seconds / SLICES
        self._clock = clock
        self._factory = factory
        self._stamps = [-1] * SLICES
        self._tallies = [factory() for _ in range(SLICES)]

    def current(self) -> T:
        """The tally of the slice now is in (a fresh one if the slot held an old slice)."""
        stamp = int(self._clock.now() // self._slice_seconds)
        slot = stamp % SLICES
        if self._stamps[slot] != stamp:
            self._stamps[slot] = stamp
            self._tallies[slot] = self._factory()
        return self._tallies[slot]

    def live(self) -> Iterator[T]:
        """Every tally still inside the window."""
        newest = int(self._clock.now() // self._slice_seconds)
        for stamp, tally in zip(self._stamps, self._tallies, strict=True):
            if newest - SLICES < stamp <= newest:
                yield tally
