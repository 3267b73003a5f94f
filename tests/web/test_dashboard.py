"""The dashboard in a real headless Chromium (Debian's, driven by Playwright), over the
demo as `make run` has it after a few minutes (its seed, its traffic with a rate-limit
burst and a drift, its scheduled suite run before and during the drift), accelerated
(tests/demo_harness.py) and served on a real port: every page loads clean, sign-in is
required, actions act, and a form without its CSRF token is refused.

Screenshots of every page go to the test's temporary folder, and to
$PILOTHOUSE_SCREENSHOT_DIR when it is set (that is how docs/images/dashboard is made).
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from demo_harness import ServedDemo
from harness import ADMIN_TOKEN, IN_CI
from pilothouse.clock import ManualClock

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
    "prompt": "/prompts/support-triage",
    "prompt-diff": "/prompts/support-triage/diff?old=1&new=2",
    "routes": "/routes",
    "route": "/routes/support-triage",
    "evals": "/evals",
    "keys": "/keys",
    "key": "/keys/support-app",
    "models": "/models",
    "monitoring": "/monitoring?since=1h",
    "alerts": "/alerts?state=all",
    "fleet": "/fleet",
    "quotas": "/quotas",
}
MINUTES = 12  # of accelerated demo traffic
SUITE = "support-reply-quality"


@dataclass
class Demo:
    url: str
    admin: httpx.Client
    served: ServedDemo
    runs: list[str]  # the scheduled suite's runs: before the drift, during it


def _run_suite(demo: ServedDemo, admin: httpx.Client, after: Any = None) -> str:
    """Let the monitor start the scheduled suite (due now) and wait for the run to end."""
    assert demo.server.monitor is not None
    demo.call(demo.server.monitor.tick())
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        [schedule] = admin.get("/api/evals/schedules").json()["data"]
        if schedule["last_finished_at"] and schedule["last_finished_at"] != after:
            assert schedule["last_run_id"], schedule
            return str(schedule["last_run_id"])
        time.sleep(0.2)
    raise AssertionError("the scheduled suite did not finish a run")


@pytest.fixture(scope="module")
def dashboard(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    data_dir = tmp_path_factory.mktemp("dashboard")
    served = ServedDemo(data_dir, ManualClock(time.time() - MINUTES * 60 - 120)).start()
    admin = httpx.Client(
        base_url=served.url, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}, timeout=30
    )
    try:
        # A second version of the triage prompt, promoted: a diff to show, a release to roll back.
        body = {
            "messages": [
                {"role": "system", "content": "Sort the ticket into billing, shipping or other; "
                 "answer with the queue only, in {{language}}.\n{{> house-style}}"},
                {"role": "user", "content": "{{ticket}}"},
            ],
            "variables": {"ticket": {"required": True}, "language": {"default": "English"}},
        }  # fmt: skip
        assert admin.post("/api/prompts/support-triage/versions", json=body).status_code == 201
        promoted = admin.post(
            "/api/routes/support-triage/promote",
            json={
                "prompt": "support-triage@2",
                "model": "fast",
                "reason": "answer with the queue only",
            },
        )
        assert promoted.status_code == 201, promoted.text
        before = _run_suite(served, admin)  # the suite, before anything happened
        served.run_traffic(MINUTES)
        schedule = admin.get("/api/evals/schedules").json()["data"][0]
        assert admin.post(f"/api/evals/schedules/{SUITE}/run").status_code == 200
        during = _run_suite(served, admin, after=schedule["last_finished_at"])
        yield Demo(served.url, admin, served, [before, during])
    finally:
        admin.close()
        served.stop()


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


def _signed_in(chromium: Any, gw: Demo) -> Any:
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


def test_every_page_needs_sign_in(dashboard: Demo, chromium: Any) -> None:
    page = chromium.new_context().new_page()
    for path in PAGES.values():
        page.goto(dashboard.url + path)
        assert page.url.startswith(dashboard.url + "/login"), path
        assert page.locator("#token").is_visible()
    # What is visible without signing in: the probes and the sign-in page, nothing else.
    assert httpx.get(dashboard.url + "/healthz").status_code == 200
    assert httpx.get(dashboard.url + "/readyz").status_code == 200
    assert httpx.get(dashboard.url + "/api/keys").status_code == 401


def test_a_wrong_token_does_not_sign_in(dashboard: Demo, chromium: Any) -> None:
    page = chromium.new_context().new_page()
    page.goto(dashboard.url + "/login")
    # The field's label is one line (the form's column layout once split it into three),
    # and the button sits under the field, aligned with it.
    label = page.locator("label[for=token]").bounding_box()
    field = page.locator("#token").bounding_box()
    button = page.locator("button[type=submit]").bounding_box()
    line = page.evaluate("parseFloat(getComputedStyle(document.querySelector('label')).lineHeight)")
    assert label["height"] < 1.5 * line, label
    assert button["y"] >= field["y"] + field["height"] and button["x"] == field["x"]
    page.fill("#token", "pha-not-the-token")
    page.click("button[type=submit]")
    assert page.get_by_role("alert").inner_text() == "That is not the admin token."
    page.goto(dashboard.url + "/keys")
    assert page.url.startswith(dashboard.url + "/login")


def test_every_page_loads_with_no_console_error_and_no_failed_request(
    dashboard: Demo, chromium: Any, tmp_path: Path
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
    pages["eval-run"] = f"/evals/{dashboard.runs[-1]}"
    pages["alert"] = "/alerts/" + _alert(dashboard, "slo:summary-availability")["id"]
    for name, path in pages.items():
        response = page.goto(dashboard.url + path)
        assert response is not None and response.status == 200, (name, response and response.status)
        assert page.locator("main h1").count() == 1, name
        for folder in _screenshot_dirs(tmp_path):
            page.screenshot(path=str(folder / f"{name}.png"), full_page=True)
    assert problems == []
    # The pages show what the API says (they are views of it, not a second source).
    page.goto(dashboard.url + "/quotas")
    policy = page.locator("tr", has_text="support-daily-usd").inner_text()
    limits = next(
        q
        for q in dashboard.admin.get("/api/quotas").json()["data"]
        if q["name"] == "support-daily-usd"
    )
    # A cost limit reads in dollars, as the answers' headers and the CLI say it.
    assert f"${limits['soft_limit']:,.2f}" in policy and f"${limits['hard_limit']:,.2f}" in policy
    # A key's page: the team quota it spends against, as GET /api/keys/{key}/usage says.
    usage = dashboard.admin.get("/api/keys/support-app/usage").json()
    standing = next(q for q in usage["quotas"] if q["quota"] == "support-daily-usd")
    page.goto(dashboard.url + "/keys/support-app")
    row = page.locator("tr", has_text="support-daily-usd").inner_text()
    assert "team:support" in row or "support" in row
    assert f"${standing['hard_limit']:,.2f}" in row, row
    page.goto(dashboard.url + "/routes/support-triage")
    active = dashboard.admin.get("/api/routes/support-triage").json()["active"]["id"]
    assert active in page.locator(".card").first.inner_text()


def test_the_demo_s_incidents_show_where_on_call_looks(dashboard: Demo, chromium: Any) -> None:
    page = _signed_in(chromium, dashboard)
    # Monitoring: the drift the monitor detected is marked on the output-signal charts.
    page.goto(dashboard.url + "/monitoring?since=1h")
    markers = page.locator("svg .marker")
    assert markers.count() >= 1
    assert any("support-reply" in text for text in markers.all_text_contents())
    assert "route:support-reply" in page.locator("main").inner_text()
    # Fleet: the rate-limited deployment's breaker tripped.
    page.goto(dashboard.url + "/fleet")
    row = page.locator("table").first.locator("tr", has_text="claude-haiku-4-5")
    assert "rate_limited" in row.inner_text()
    assert page.locator("tr", has_text="breaker_opened").count() >= 1
    # Evals: the run during the drift, compared with the one before it, regressed.
    page.goto(dashboard.url + "/evals")
    assert "regressed" in page.locator("table").first.inner_text()
    page.goto(dashboard.url + f"/evals/{dashboard.runs[-1]}")
    comparison = page.locator("#comparison").inner_text()
    assert dashboard.runs[0] in page.locator("h2", has_text="Compared with").inner_text()
    assert "length" in comparison
    failed = page.locator("#cases tr[data-failed=yes]")
    assert failed.count() >= 1 and "words, max is 80" in failed.first.inner_text()


def _alert(demo: Demo, subject: str) -> dict[str, Any]:
    alerts = demo.admin.get("/api/alerts", params={"state": "all"}).json()["data"]
    return next(a for a in alerts if a["subject"] == subject)


def test_the_rollback_action_rolls_back(dashboard: Demo, chromium: Any) -> None:
    before = dashboard.admin.get("/api/routes/support-triage/history").json()["data"]
    previous = before[0]["previous_release_id"]
    page = _signed_in(chromium, dashboard)
    page.goto(dashboard.url + "/routes/support-triage")
    page.fill("input[aria-label='rollback reason']", "v2 answers with one word")
    page.once("dialog", lambda dialog: dialog.accept())
    with page.expect_navigation():
        page.click("#rollback")
    assert "rolled back to" in page.get_by_role("status").inner_text()
    route = dashboard.admin.get("/api/routes/support-triage").json()
    assert route["active"]["id"] == previous
    latest = dashboard.admin.get("/api/routes/support-triage/history").json()["data"][0]
    assert (latest["kind"], latest["actor"], latest["reason"]) == (
        "rollback",
        "dashboard",
        "v2 answers with one word",
    )


def test_a_form_post_without_its_csrf_token_is_refused(dashboard: Demo, chromium: Any) -> None:
    page = _signed_in(chromium, dashboard)
    active = dashboard.admin.get("/api/routes/support-triage").json()["active"]["id"]
    # The browser's own request context carries the session cookie, but no token.
    response = page.request.post(
        dashboard.url + "/routes/support-triage/rollback", form={"reason": "forged"}
    )
    assert response.status == 403
    forged = page.request.post(
        dashboard.url + "/keys/anything/disable", form={"reason": "x", "csrf": "0" * 64}
    )
    assert forged.status == 403
    assert dashboard.admin.get("/api/routes/support-triage").json()["active"]["id"] == active


def test_an_alert_acknowledged_on_its_page_keeps_the_reason_in_its_history(
    dashboard: Demo, chromium: Any
) -> None:
    alert = _alert(dashboard, "slo:summary-availability")
    assert (alert["kind"], alert["severity"], alert["owner"]) == ("slo_burn", "page", "insights")
    page = _signed_in(chromium, dashboard)
    page.goto(dashboard.url + "/alerts")
    with page.expect_navigation():
        page.click(f"a[href='/alerts/{alert['id']}']")
    page.select_option("#disposition", "regression")
    page.fill("#reason", "the summary provider rate-limited us; raised our tier")
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
        "the summary provider rate-limited us; raised our tier",
    )
    assert (
        "the summary provider rate-limited us; raised our tier"
        in page.locator("table").last.inner_text()
    )


MARKUP = '<img src=x onerror="window.__pwned=1"><script>window.__pwned=2</script>'


def test_what_a_client_sends_is_shown_as_text_never_run(dashboard: Demo, chromium: Any) -> None:
    # Anyone with an API key writes into the request log what the admin later reads: an
    # end user, a model name, a request id, an error echoing them. On the dashboard they
    # are text; none of it runs in the admin's signed-in browser.
    created = dashboard.admin.post("/api/keys", json={"name": "markup-probe", "user": None})
    assert created.status_code == 201, created.text
    key = created.json()
    auth = {"Authorization": f"Bearer {key['secret']}", "X-Client-Request-Id": MARKUP}
    chat = {"messages": [{"role": "user", "content": MARKUP}], "user": MARKUP}
    with httpx.Client(base_url=dashboard.url, headers=auth, timeout=30) as client:
        assert (
            client.post("/v1/chat/completions", json={**chat, "model": "fast"}).status_code == 200
        )
        assert (
            client.post("/v1/chat/completions", json={**chat, "model": MARKUP}).status_code == 404
        )
    deadline = time.monotonic() + 10
    rows: list[dict[str, Any]] = []
    while len(rows) < 2 and time.monotonic() < deadline:
        rows = dashboard.admin.get("/api/requests", params={"key": key["id"]}).json()["data"]
        time.sleep(0.1)
    assert len(rows) == 2 and {r["user"] for r in rows} == {MARKUP}
    page = _signed_in(chromium, dashboard)
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    shown = [
        f"/requests?key={key['id']}",
        *(f"/requests/{row['id']}" for row in rows),
        "/keys/markup-probe",
        "/",
    ]
    for path in [*shown, "/monitoring?since=1h&by=model_alias"]:
        response = page.goto(dashboard.url + path)
        assert response is not None and response.status == 200, path
        assert page.evaluate("window.__pwned") is None, path
        assert page.locator("img[src=x], main script").count() == 0, path
        if path in shown:  # and there, as the text it is
            assert MARKUP in page.locator("main").inner_text(), path
    assert errors == []
