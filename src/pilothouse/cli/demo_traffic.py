"""The demo's traffic: a few requests a second through the gateway, sent the way the
demo's applications would send them, so `make run` opens onto a dashboard with something
true on every page.

It runs only in demo mode (`serve` with no provider configured; `serve --no-demo-traffic`
turns it off), inside the server's process, as a companion of the server: every request
goes through the server's own ASGI app, so it takes the real gateway path
(authentication, routes and their releases, quotas, the fleet with its breakers, the
request log, output signals, rollups) without a socket. Nothing here decides an outcome:
the incidents are the simulator's (demo_scenario.yaml), and what the monitors make of
them is theirs.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx

log = logging.getLogger("pilothouse.demo")
Pace = Callable[[float], Awaitable[None]]
BASE_URL = "http://demo-traffic"


def _not_ours(record: logging.LogRecord) -> bool:
    """httpx logs every request at info: not the demo's own (the request log has them)."""
    return BASE_URL not in record.getMessage()


logging.getLogger("httpx").addFilter(_not_ours)

# The demo's two applications, each with a key of its own (cli/demo.py makes them).
SUPPORT_APP = "support-app"  # team support: sorts tickets and drafts replies
INSIGHTS_JOB = "insights-job"  # team insights: summarises tickets, asks questions

TICKETS = (
    "I was charged twice for my March invoice.",
    "The parcel tracking page says delivered but nothing arrived.",
    "How do I change the email address on my account?",
    "Can I get a refund for the annual plan I cancelled yesterday?",
    "The mobile app logs me out every few minutes.",
    "My order #4417 is stuck in 'processing' since Monday.",
    "Please add a second admin to our team workspace.",
    "The invoice shows the wrong VAT number for our company.",
    "Exports to CSV are missing the last column.",
    "Where can I download last year's receipts?",
    "Your courier left the box in the rain and the screen is broken.",
    "Is there a discount for non-profit organisations?",
    "Password reset emails never reach my inbox.",
    "I want to cancel my subscription before the next renewal.",
    "The shipping estimate changed from 2 days to 3 weeks.",
    "Two-factor codes from the app are rejected at sign-in.",
)
QUESTIONS = (
    "Summarise this week's most common support topics in three bullet points.",
    "Which of our shipping partners had the most delays?",
    "Draft a short status note about slower replies this afternoon.",
    "What should a good first reply to an angry customer contain?",
)


@dataclass(frozen=True, slots=True)
class Call:
    """One request of the mix: which demo key sends it, where, with what body."""

    key: str
    path: str
    body: dict[str, Any]


def next_call(rng: random.Random) -> Call:
    """A request drawn from the demo's mix: 40 % `route:support-triage`, 30 %
    `route:support-reply` (both from the support app), 20 % `route:ticket-summary`, 7 %
    direct questions to `claude`, 3 % embeddings (the insights job); 70 % of the chat
    calls stream."""
    roll, ticket = rng.random(), rng.choice(TICKETS)
    if roll < 0.97:
        if roll < 0.4:
            key, model = SUPPORT_APP, "route:support-triage"
        elif roll < 0.7:
            key, model = SUPPORT_APP, "route:support-reply"
        elif roll < 0.9:
            key, model = INSIGHTS_JOB, "route:ticket-summary"
        else:
            key, model = INSIGHTS_JOB, "claude"
        body: dict[str, Any] = {"model": model, "stream": rng.random() < 0.7}
        if model.startswith("route:"):
            body.update(messages=[], pilothouse={"variables": {"ticket": ticket}})
        else:
            body.update(
                messages=[{"role": "user", "content": rng.choice(QUESTIONS)}], max_tokens=200
            )
        return Call(key, "/v1/chat/completions", body)
    return Call(INSIGHTS_JOB, "/v1/embeddings", {"model": "embed", "input": ticket})


@dataclass
class DemoTraffic:
    """Sends the mix at `rate_per_second` on average (Poisson arrivals), at most
    `max_in_flight` at once (a slow gateway slows it down, never piles it up), until
    stopped or, with `requests`, after that many. `keys` maps SUPPORT_APP and
    INSIGHTS_JOB to their secrets. `pace` waits between two requests (tests move a clock
    instead of sleeping). `statuses` counts the answers by HTTP status."""

    keys: Mapping[str, str]
    rate_per_second: float = 3.0
    seed: int | None = None
    max_in_flight: int = 16
    requests: int | None = None
    timeout_seconds: float = 60.0
    pace: Pace | None = None
    statuses: Counter[int] = field(default_factory=Counter)

    def __post_init__(self) -> None:
        if not 0 < self.rate_per_second <= 50:
            raise ValueError("rate_per_second must be above 0 and at most 50")
        self._stopped = asyncio.Event()
        self._rng = random.Random(self.seed)

    def stop(self) -> None:
        """Send nothing more; the requests in flight finish."""
        self._stopped.set()

    async def run(self, app: Any) -> None:
        """Send the mix through `app` (the server, as an ASGI app) until stopped."""
        log.info(
            "demo traffic: ~%g requests/s through the gateway (serve --no-demo-traffic turns "
            "it off)",
            self.rate_per_second,
        )
        slots = asyncio.Semaphore(self.max_in_flight)
        in_flight: set[asyncio.Task[None]] = set()
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url=BASE_URL) as client:
            sent = 0
            try:
                while not self._stopped.is_set() and (
                    self.requests is None or sent < self.requests
                ):
                    await slots.acquire()
                    if self._stopped.is_set():
                        slots.release()
                        break
                    task = asyncio.create_task(self._send(client, next_call(self._rng), slots))
                    in_flight.add(task)
                    task.add_done_callback(in_flight.discard)
                    sent += 1
                    await (self.pace or self._sleep)(self._rng.expovariate(self.rate_per_second))
                if in_flight:
                    await asyncio.wait(set(in_flight))
            finally:
                for task in in_flight:  # cancelled (the server stopped waiting): cut them
                    task.cancel()
                await asyncio.gather(*in_flight, return_exceptions=True)

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopped.wait(), timeout=seconds)

    async def _send(self, client: httpx.AsyncClient, call: Call, slots: asyncio.Semaphore) -> None:
        try:
            headers = {"Authorization": f"Bearer {self.keys[call.key]}"}
            async with asyncio.timeout(self.timeout_seconds):
                response = await client.post(call.path, json=call.body, headers=headers)
            self.statuses[response.status_code] += 1
        except Exception as exc:  # the gateway records what happened; the demo goes on
            self.statuses[0] += 1
            log.debug("demo request to %s failed: %s", call.path, exc)
        finally:
            slots.release()
