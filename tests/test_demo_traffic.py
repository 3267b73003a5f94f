"""The demo's traffic (`make run`), accelerated: the demo's config, seed and traffic mix,
in-process, on a clock the traffic moves instead of sleeping, against the simulator with
the demo's two incidents counted in requests instead of seconds. What a user would see
after a few minutes of `make run` is there: requests with several outcomes, a drift on
the rambling route detected and marked, the rate-limited deployment's breaker tripped and
its SLO paging. (tests/test_cli.py starts the real `serve` and checks it sends traffic and
stops cleanly; tests/web/test_dashboard.py shows it in a browser.)"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

import demo_harness
from inprocess import ADMIN_TOKEN, InProcess
from pilothouse.cli.demo import DEMO_CONFIG
from pilothouse.cli.demo_traffic import DemoTraffic
from pilothouse.clock import ManualClock

pytestmark = pytest.mark.anyio
MINUTES = 6
RATE = demo_harness.RATE


@pytest.fixture
async def demo(tmp_path: Path) -> AsyncIterator[tuple[InProcess, DemoTraffic]]:
    clock = ManualClock(time.time() - MINUTES * 60)
    async with InProcess.start(
        tmp_path,
        DEMO_CONFIG.format(port=9),
        clock=clock,
        simulated=True,
        scenario=demo_harness.scenario(),
    ) as gw:
        keys = demo_harness.seed(gw.server, tmp_path, clock)
        await gw.server.refresh()
        traffic = demo_harness.traffic(keys, gw.server, clock, MINUTES)
        await traffic.run(gw.server)
        yield gw, traffic


async def test_a_few_minutes_of_demo_traffic_show_on_every_page_s_data(
    demo: tuple[InProcess, DemoTraffic],
) -> None:
    gw, traffic = demo
    admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    assert sum(traffic.statuses.values()) == MINUTES * 60 * RATE
    rows = await gw.rows(MINUTES * 60 * RATE, timeout_seconds=10)
    # Requests: every route of the demo and a direct model, with several outcomes.
    assert {r["route"] for r in rows} >= {"support-triage", "support-reply", "ticket-summary"}
    assert "claude" in {r["model_alias"] for r in rows if not r["route"]}
    outcomes = Counter(r["outcome"] for r in rows)
    assert outcomes["ok"] > len(rows) / 2 and outcomes["upstream_error"] > 0, outcomes
    assert {r["status_code"] for r in rows} >= {200, 429}
    # Overview: traffic per route from the same log.
    overview = (await gw.client.get("/api/overview?since=1h", headers=admin)).json()["data"]
    assert {o["name"] for o in overview} >= {"support-triage", "support-reply", "ticket-summary"}
    # Fleet: the rate-limited deployment's breaker tripped.
    fleet = (await gw.client.get("/api/fleet", headers=admin)).json()
    [summary] = [a for a in fleet["aliases"] if a["alias"] == "summary"]
    assert summary["deployments"][0]["last_trip_at"] is not None
    assert "rate_limited" in (summary["deployments"][0]["last_trip_reason"] or "")
    # Alerts: the rambling route drifted, and the rate-limited route's SLO paged.
    alerts = (await gw.client.get("/api/alerts?state=all", headers=admin)).json()["data"]
    drifted = {
        (a["signal"], a["direction"]) for a in alerts if a["subject"] == "route:support-reply"
    }
    assert ("length", "up") in drifted or ("hedging", "up") in drifted, alerts
    assert any(a["subject"] == "slo:summary-availability" for a in alerts), alerts
    # Monitoring: the charts' data carries the drift markers, where the drift was detected.
    chart = (await gw.client.get("/api/monitoring/series?since=1h&by=route", headers=admin)).json()
    marked = [m for m in chart["drift"] if m["subject"] == "route:support-reply"]
    assert marked and all(m["alert_id"].startswith("alt_") for m in marked)
    first_point = min(p["at"] for s in chart["data"] for p in s["points"])
    assert all(m["at"] > first_point for m in marked)  # after a baseline, not at the start
