"""The scheduler's decisions on the in-process tier with a clock the test moves and a
scripted runner: one run at a time per suite, failures and errors alerted to the owner and
cleared by a pass, staleness when runs stop finishing. (tests/evals/test_eval_schedule.py
runs real suites through the real child process.)"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from inprocess import InProcess
from pilothouse.clock import ManualClock
from pilothouse.monitor.scheduler import EvalScheduler, Outcome

pytestmark = pytest.mark.anyio

SUITE = """\
name: triage
owner: support
target: {prompt: triage@1, model: fast}
dataset: {name: triage-cases, version: 1}
scorers:
  - {type: contains, value: billing}
"""


class Runner:
    """Answers each run with the next outcome; a run waits until released when `hold`."""

    def __init__(self, *outcomes: Outcome, hold: bool = False):
        self.outcomes = list(outcomes)
        self.calls: list[tuple[str, str | None]] = []
        self.release = asyncio.Event()
        if not hold:
            self.release.set()

    async def __call__(self, schedule: Mapping[str, Any], baseline: str | None) -> Outcome:
        self.calls.append((schedule["suite"], baseline))
        await self.release.wait()
        return self.outcomes.pop(0)


@pytest.fixture
async def gw(tmp_path: Path) -> AsyncIterator[tuple[InProcess, ManualClock, EvalScheduler]]:
    clock = ManualClock(time.time())
    async with InProcess.start(tmp_path, clock=clock) as gw:
        pushed = await gw.client.post(
            "/api/datasets/triage-cases/versions",
            json={"rows": [{"variables": {"ticket": "refund"}}]},
            headers=gw.admin,
        )
        assert pushed.status_code == 201, pushed.text
        monitor = gw.server.monitor
        assert monitor is not None and monitor.scheduler is not None
        yield gw, clock, monitor.scheduler


async def schedule(gw: InProcess, every_seconds: int = 3600) -> None:
    made = await gw.client.post(
        "/api/evals/schedules",
        json={"suite": SUITE, "every_seconds": every_seconds},
        headers=gw.admin,
    )
    assert made.status_code == 201, made.text
    assert made.json()["owner"] == "support"


async def settle(scheduler: EvalScheduler) -> None:
    for _ in range(200):
        if not scheduler.running:
            return
        await asyncio.sleep(0.01)


async def suite_alerts(gw: InProcess) -> list[dict[str, Any]]:
    listed = await gw.client.get("/api/alerts?state=all", headers=gw.admin)
    return [a for a in listed.json()["data"] if a["subject"] == "suite:triage"]


async def test_a_failing_run_alerts_the_owner_and_the_next_pass_clears_it(
    gw: tuple[InProcess, ManualClock, EvalScheduler],
) -> None:
    server, clock, scheduler = gw
    runner = Runner(
        Outcome("passed", "run-1", "gate passed"),
        Outcome("failed", "run-2", "label_in: 40% < 90%\ngate FAILED"),
        Outcome("passed", "run-3", "gate passed"),
    )
    scheduler.runner = runner
    await schedule(server)
    assert await scheduler.tick() == []
    await settle(scheduler)
    assert await scheduler.tick() == [], "not due again for an hour"
    clock.advance(3600)
    await scheduler.tick()
    await settle(scheduler)
    [raised] = await scheduler.tick()
    assert (raised["kind"], raised["owner"]) == ("eval_failed", "support")
    assert raised["summary"] == "scheduled suite triage failed its gate: gate FAILED"
    # The second run compared against the last passing one.
    assert runner.calls == [("triage", None), ("triage", "run-1")]
    clock.advance(3600)
    await scheduler.tick()
    await settle(scheduler)
    [alert] = await suite_alerts(server)
    assert alert["state"] == "resolved", "the pass cleared it"
    assert runner.calls[-1] == ("triage", "run-1")


async def test_one_run_at_a_time_and_a_suite_that_stops_finishing_goes_stale(
    gw: tuple[InProcess, ManualClock, EvalScheduler],
) -> None:
    server, clock, scheduler = gw
    runner = Runner(Outcome("passed", "run-1", "ok"), Outcome("passed", "run-2", "ok"), hold=True)
    scheduler.runner = runner
    await schedule(server, every_seconds=600)
    await scheduler.tick()
    await asyncio.sleep(0.05)
    clock.advance(600)  # due again, but the first run still holds it
    await scheduler.tick()
    await asyncio.sleep(0.05)
    assert len(runner.calls) == 1
    clock.advance(601)  # over 20 minutes with no finished run: twice the schedule
    [stale] = await scheduler.tick()
    assert (stale["kind"], stale["owner"]) == ("eval_stale", "support")
    assert "has never finished a run" in stale["summary"]
    listed = (await server.client.get("/api/evals/schedules", headers=server.admin)).json()
    assert listed["data"][0]["stale"] is True and listed["data"][0]["running"] is True
    runner.release.set()
    await settle(scheduler)
    await scheduler.tick()  # overdue: the next run starts at once, and finishes
    await settle(scheduler)
    assert [c[1] for c in runner.calls] == [None, "run-1"]
    [alert] = await suite_alerts(server)
    assert (alert["kind"], alert["state"]) == ("eval_stale", "resolved")


async def test_a_run_that_cannot_run_is_an_error_alert_not_a_quality_failure(
    gw: tuple[InProcess, ManualClock, EvalScheduler],
) -> None:
    server, _, scheduler = gw
    scheduler.runner = Runner(Outcome("infra", None, "3 of 10 calls failed: HTTP 503"))
    await schedule(server)
    await scheduler.tick()
    await settle(scheduler)
    [raised] = await scheduler.tick()
    assert raised["kind"] == "eval_error"
    assert "could not run (infra)" in raised["summary"]
    removed = await server.client.delete("/api/evals/schedules/triage", headers=server.admin)
    assert removed.status_code == 200
    again = await server.client.delete("/api/evals/schedules/triage", headers=server.admin)
    assert again.status_code == 404


async def test_doctor_lists_every_route_provider_and_suite_with_no_owner(
    gw: tuple[InProcess, ManualClock, EvalScheduler],
) -> None:
    server, _, _ = gw
    pushed = await server.client.post(
        "/api/prompts/hello/versions",
        json={"messages": [{"role": "user", "content": "hi"}]},
        headers=server.admin,
    )
    assert pushed.status_code == 201, pushed.text
    for route, owner in (("owned", "support"), ("orphan", None)):
        body = {"prompt": "hello@1", "model": "fast", **({"owner": owner} if owner else {})}
        made = await server.client.post(
            f"/api/routes/{route}/promote", json=body, headers=server.admin
        )
        assert made.status_code == 201, made.text
    unowned_suite = SUITE.replace("owner: support\n", "").replace(
        "name: triage\n", "name: nightly\n"
    )
    made = await server.client.post(
        "/api/evals/schedules",
        json={"suite": unowned_suite, "every_seconds": 3600},
        headers=server.admin,
    )
    assert made.status_code == 201, made.text
    await schedule(server)  # triage, owned by support
    doctor = (await server.client.get("/api/doctor", headers=server.admin)).json()
    unowned = {(u["kind"], u["name"]) for u in doctor["unowned"]}
    assert ("route", "orphan") in unowned and ("route", "owned") not in unowned
    assert ("suite", "nightly") in unowned and ("suite", "triage") not in unowned
    assert {name for kind, name in unowned if kind == "provider"} == {"sim", "claude-api"}


async def test_a_dataset_version_the_store_cannot_hold_is_refused_not_a_server_error(
    gw: tuple[InProcess, ManualClock, EvalScheduler],
) -> None:
    server, _, _ = gw
    for version in ('"abc"', "-1", "99999999999999999999", "1.5", "true"):
        suite = SUITE.replace("version: 1}", f"version: {version}}}")
        made = await server.client.post(
            "/api/evals/schedules",
            json={"suite": suite, "every_seconds": 3600},
            headers=server.admin,
        )
        assert made.status_code == 400, (version, made.text)
        assert "dataset version must be a whole number" in made.json()["error"]["message"]
