"""Progress of a run on stderr: a redrawn bar on a terminal, periodic lines in CI logs.

Both show the calls to the targets and the scoring (judging) of the cases, which overlap.
"""

from __future__ import annotations

import time
from typing import TextIO

from pilothouse.evals.runner import ProgressState


class ProgressPrinter:
    """Call with a ProgressState after each step; `finish` ends the display.

    `bar`: redraw one line in place (a terminal), at most every 0.1 s. Otherwise print a
    line every `every_seconds`, and when the calls and when the scoring complete.
    """

    def __init__(self, stream: TextIO, *, bar: bool, every_seconds: float = 10.0, label: str = ""):
        self._stream = stream
        self._bar = bar
        self._every = every_seconds
        self._label = label
        self._last = time.monotonic()
        self._calls_reported = False
        self._drawn = False

    def __call__(self, state: ProgressState) -> None:
        now = time.monotonic()
        calls_complete = state.calls_done == state.calls_total
        scored_complete = state.scored_done == state.scored_total
        if self._bar:
            if now - self._last >= 0.1 or (calls_complete and scored_complete):
                self._last = now
                self._stream.write("\r" + self._bar_line(state, now))
                self._stream.flush()
                self._drawn = True
            return
        milestone = calls_complete and not self._calls_reported
        if milestone:
            self._calls_reported = True
        if milestone or scored_complete or now - self._last >= self._every:
            self._last = now
            self._stream.write(self._text(state, now) + "\n")
            self._stream.flush()

    def finish(self) -> None:
        if self._bar and self._drawn:
            self._stream.write("\n")
            self._stream.flush()

    def _bar_line(self, state: ProgressState, now: float) -> str:
        width = 24
        share = state.calls_done / state.calls_total if state.calls_total else 1.0
        filled = int(width * share)
        return (
            f"  [{'#' * filled}{'.' * (width - filled)}] calls {state.calls_done}/"
            f"{state.calls_total}, scored {state.scored_done}/{state.scored_total} "
            f"({now - state.started:.0f} s) "
        )

    def _text(self, state: ProgressState, now: float) -> str:
        return (
            f"{self._label}calls {state.calls_done}/{state.calls_total}, "
            f"scored {state.scored_done}/{state.scored_total} cases "
            f"({now - state.started:.0f} s)"
        )
