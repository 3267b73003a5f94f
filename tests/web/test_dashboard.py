"""The dashboard in a real headless Chromium (Debian's, driven by Playwright), against a real
gateway process with real traffic: every page loads clean, sign-in is required, actions
act, and a form without its CSRF token is refused.

Screenshots of every page go to the test's temporary folder, and to
$PILOTHOUSE_SCREENSHOT_DIR when it is set (that is how docs/images/dashboard is made).
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from harness import ADMIN_TOKEN, IN_CI, Gateway, Simulator, gateway_config, start_gateway

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
PAGES = {
    "overview": "/",
    "requests": "/requests",
    "prompts": "/prompts",
    "prompt": "/prompts/triage",
    "prompt-diff": "/prompts/triage/diff?old=1&new=2",
    "routes": "/routes",
    "route": "/routes/support",
    "evals": "/evals",
    "eval-run": "/evals/run-dashboard-1",
    "keys": "/keys",
    "models": "/models",
    "monitoring": "/monitoring?since=1h",
    "alerts": "/alerts?state=all",
    "fleet": "/fleet",
    "quotas": "/quotas",
}


@pytest.fixture(scope="module")
def dashboard(simulator: Simulator, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    data_dir = tmp_path_factory.mktemp("dashboard")
    config = gateway_config(simulator) + "monitoring: {evaluate_interval_seconds: 0.5}\n"
    gw = start_gateway(config, f"sqlite:///{data_dir / 'p.db'}", data_dir)
    admin = gw.admin
    # Every f-500 call fails: an availability SLO on it pages once there is traffic.
    slo = {"name": "f500-up", "model": "f-500", "sli": "availability", "objective": 0.99,
           "min_events": 2, "owner": "platform"}  # fmt: skip
    assert admin.post("/api/slos", json=slo).status_code == 201
    quota = {"subject_kind": "team", "subject": "*", "dimension": "cost", "window": "day",
             "soft_limit": 5, "hard_limit": 10, "degrade_to": "fast"}  # fmt: skip
    assert admin.put("/api/quotas/team-daily-usd", json=quota).status_code == 201
    for text in (
        "Triage this ticket: {{ticket}}",
        "Triage this ticket kindly.\nTicket: {{ticket}}",
    ):
        body = {"messages": [{"role": "system", "content": text}], "variables": {"ticket": {}}}
        assert admin.post("/api/prompts/triage/versions", json=body).status_code == 201
    for version, model in ((1, "fast"), (2, "smart")):
        response = admin.post(
            "/api/routes/support/promote",
            json={"prompt": f"triage@{version}", "model": model, "reason": f"v{version}"},
        )
        assert response.status_code == 201, response.text
    key = gw.create_key(name="dashboard")
    with httpx.Client(base_url=gw.url, headers={"Authorization": f"Bearer {key}"}) as app:
        for i in range(4):
            variables = {"ticket": f"printer {i} is on fire"}
            app.post(
                "/v1/chat/completions",
                json={
                    "model": "route:support",
                    "messages": [],
                    "pilothouse": {"variables": variables},
                },
            )
            app.post(
                "/v1/chat/completions",
                json={"model": "f-500", "messages": [{"role": "user", "content": "x"}]},
            )
    run = {
        "id": "run-dashboard-1",
        "suite": "triage-quality",
        "owner": "support-team",
        "passed": True,
        "manifest": {"suite_hash": "abc"},
        "summary": {
            "scorers": {
                "label": {
                    "pass_rate": 0.9,
                    "pass_rate_ci95": [0.7, 0.97],
                    "scored": 10,
                    "cases": 10,
                    "mean": None,
                    "ok": True,
                }
            }
        },
        "results": {
            "cases": [
                {"id": "c1", "output": "queue: billing", "scores": {"label": {"passed": True}}}
            ]
        },
    }
    assert admin.post("/api/evals/runs", json=run).status_code == 201
    gw.log_rows(8)
    deadline = time.monotonic() + 30
    while not admin.get("/api/alerts").json()["data"]:
        assert time.monotonic() < deadline, "the SLO alert did not fire"
        time.sleep(0.2)
    yield gw
    gw.stop()


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    if not CHROMIUM.exists():
        message = "browser tests need Debian's chromium (`apt-get install -y chromium`)"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


def _signed_in(chromium: Any, gw: Gateway) -> Any:
    context = chromium.new_context(viewport={"width": 1280, "height": 860})
    page = context.new_page()
    page.goto(gw.url + "/login")
    page.fill("#token", ADMIN_TOKEN)
    with page.expect_navigation():
        page.click("button[type=submit]")
    assert page.url == gw.url + "/", page.url
    return page


def _screenshot_dirs(tmp_path: Path) -> list[Path]:
    dirs = [tmp_path]
    if os.environ.get("PILOTHOUSE_SCREENSHOT_DIR"):
        dirs.append(Path(os.environ["PILOTHOUSE_SCREENSHOT_DIR"]))
    for folder in dirs:
        folder.mkdir(parents=True, exist_ok=True)
    return dirs


def test_every_page_needs_sign_in(dashboard: Gateway, chromium: Any) -> None:
    page = chromium.new_context().new_page()
    for path in PAGES.values():
        page.goto(dashboard.url + path)
        assert page.url.startswith(dashboard.url + "/login"), path
        assert page.locator("#token").is_visible()
    # What is visible without signing in: the probes and the sign-in page, nothing else.
    assert httpx.get(dashboard.url + "/healthz").status_code == 200
    assert httpx.get(dashboard.url + "/readyz").status_code == 200
    assert httpx.get(dashboard.url + "/api/keys").status_code == 401


def test_a_wrong_token_does_not_sign_in(dashboard: Gateway, chromium: Any) -> None:
    page = chromium.new_context().new_page()
    page.goto(dashboard.url + "/login")
    page.fill("#token", "pha-not-the-token")
    page.click("button[type=submit]")
    assert page.get_by_role("alert").inner_text() == "That is not the admin token."
    page.goto(dashboard.url + "/keys")
    assert page.url.startswith(dashboard.url + "/login")


def test_every_page_loads_with_no_console_error_and_no_failed_request(
    dashboard: Gateway, chromium: Any, tmp_path: Path
) -> None:
    page = _signed_in(chromium, dashboard)
    problems: list[str] = []
    page.on(
        "console",
        lambda m: problems.append(f"console {m.type}: {m.text}") if m.type == "error" else None,
    )
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    page.on("requestfailed", lambda r: problems.append(f"failed: {r.url}"))
    page.on(
        "response", lambda r: problems.append(f"{r.status}: {r.url}") if r.status >= 400 else None
    )
    pages = dict(PAGES)
    page.goto(dashboard.url + "/requests")
    pages["request"] = page.locator("table a").first.get_attribute("href")
    for name, path in pages.items():
        response = page.goto(dashboard.url + path)
        assert response is not None and response.status == 200, (name, response and response.status)
        assert page.locator("main h1").count() == 1, name
        for folder in _screenshot_dirs(tmp_path):
            page.screenshot(path=str(folder / f"{name}.png"), full_page=True)
    assert problems == []
    page.goto(dashboard.url + "/quotas")
    assert "team-daily-usd" in page.locator("table").first.inner_text()
    # The pages show what the API says (they are views of it, not a second source).
    page.goto(dashboard.url + "/routes/support")
    active = dashboard.admin.get("/api/routes").json()["data"][0]["active"]["id"]
    assert active in page.locator(".card").first.inner_text()


def test_the_rollback_action_rolls_back(dashboard: Gateway, chromium: Any) -> None:
    before = dashboard.admin.get("/api/routes/support/history").json()["data"]
    previous = before[0]["previous_release_id"]
    page = _signed_in(chromium, dashboard)
    page.goto(dashboard.url + "/routes/support")
    page.fill("input[aria-label='rollback reason']", "v2 hedges too much")
    page.once("dialog", lambda dialog: dialog.accept())
    with page.expect_navigation():
        page.click("#rollback")
    assert "rolled back to" in page.get_by_role("status").inner_text()
    route = dashboard.admin.get("/api/routes").json()["data"][0]
    assert route["active"]["id"] == previous
    latest = dashboard.admin.get("/api/routes/support/history").json()["data"][0]
    assert (latest["kind"], latest["actor"], latest["reason"]) == (
        "rollback",
        "dashboard",
        "v2 hedges too much",
    )


def test_a_form_post_without_its_csrf_token_is_refused(dashboard: Gateway, chromium: Any) -> None:
    page = _signed_in(chromium, dashboard)
    active = dashboard.admin.get("/api/routes").json()["data"][0]["active"]["id"]
    # The browser's own request context carries the session cookie, but no token.
    response = page.request.post(
        dashboard.url + "/routes/support/rollback", form={"reason": "forged"}
    )
    assert response.status == 403
    forged = page.request.post(
        dashboard.url + "/keys/anything/disable", form={"reason": "x", "csrf": "0" * 64}
    )
    assert forged.status == 403
    assert dashboard.admin.get("/api/routes").json()["data"][0]["active"]["id"] == active


def test_an_alert_acknowledged_on_its_page_keeps_the_reason_in_its_history(
    dashboard: Gateway, chromium: Any
) -> None:
    [alert] = dashboard.admin.get("/api/alerts").json()["data"]
    assert (alert["kind"], alert["subject"], alert["severity"]) == (
        "slo_burn",
        "slo:f500-up",
        "page",
    )
    page = _signed_in(chromium, dashboard)
    page.goto(dashboard.url + "/alerts")
    with page.expect_navigation():
        page.click(f"a[href='/alerts/{alert['id']}']")
    page.select_option("#disposition", "regression")
    page.fill("#reason", "f-500 is down; paging its provider")
    with page.expect_navigation():
        page.click("button[value=acknowledge]")
    assert "acknowledged (regression)" in page.get_by_role("status").inner_text()
    history = dashboard.admin.get(f"/api/alerts/{alert['id']}").json()
    assert history["state"] == "acknowledged"
    last = history["events"][-1]
    assert (last["kind"], last["actor"], last["disposition"], last["reason"]) == (
        "acknowledged",
        "dashboard",
        "regression",
        "f-500 is down; paging its provider",
    )
    assert "f-500 is down; paging its provider" in page.locator("table").last.inner_text()
