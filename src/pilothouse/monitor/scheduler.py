"""Scheduled eval suites: the server runs each suite on its schedule, tells its owner when a
run fails, and raises a staleness alert for a suite that has not finished a run for longer
than its schedule allows.

A run is the command CI runs, `python -m pilothouse eval run suite.yaml --no-cache`, in a
child process against this server's own `/v1` with a key of its own (`evals` scope): the
same gate, the same exit statuses, the run stored like any other; never answered from the
response cache (a scheduled run is there to see what changed on the providers' side). With a passing run on record it runs
with `--baseline <that run>`, so a significant drop against it fails the gate too.

- At most one run per suite at a time: a run claims its suite in the store until it ends
  (or `RUN_HOLD_SECONDS`, should the process die mid-run: then it runs again).
- Survives restarts: the next run's time is in the store, not in memory.
- Shared mode: only the instance holding the monitor's lease starts runs.

Alerts (owner: the suite's): `eval_failed` on exit 1 (quality), `eval_error` on 2 (the
suite or its dataset is wrong), 3 (infrastructure) or a crash; both cleared by the next
pass. `eval_stale` when no run has finished within twice the schedule (at least the
schedule plus `STALE_GRACE_SECONDS`).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import sys
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson

from pilothouse.clock import Clock
from pilothouse.monitor import alerts
from pilothouse.monitor.alerts import Condition
from pilothouse.policy import keys as key_policy
from pilothouse.store import Store
from pilothouse.store import schedules as rows

log = logging.getLogger("pilothouse.monitor")
RUN_HOLD_SECONDS = 3600.0
STALE_GRACE_SECONDS = 300.0
MESSAGE_CHARS = 2000
# eval run's exit statuses (docs/evals.md)
STATUS_OF_EXIT = {0: "passed", 1: "failed", 2: "invalid", 3: "infra"}


@dataclass(frozen=True, slots=True)
class Outcome:
    status: str  # passed | failed | invalid | infra | crashed
    run_id: str | None
    message: str


Runner = Callable[[Mapping[str, Any], "str | None"], Awaitable[Outcome]]


def _utc(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


def stale_after(every_seconds: int) -> timedelta:
    return timedelta(seconds=max(2 * every_seconds, every_seconds + STALE_GRACE_SECONDS))


class EvalScheduler:
    def __init__(self, store: Store, *, clock: Clock, runner: Runner | None):
        self.store = store
        self.clock = clock
        self.runner = runner  # None: this process cannot run suites (nothing is started)
        self.running: dict[str, asyncio.Task[None]] = {}
        self._raised: list[dict[str, Any]] = []  # by finished runs, for the next tick

    async def tick(self) -> list[dict[str, Any]]:
        """Start what is due; raise and clear staleness. The alerts it raised."""
        now = _utc(self.clock.now())
        if self.runner is not None:
            for schedule in await asyncio.to_thread(self._claim_due, now):
                task = asyncio.create_task(self._run(schedule), name=f"eval {schedule['suite']}")
                self.running[schedule["suite"]] = task
        raised, self._raised = self._raised, []
        return raised + await asyncio.to_thread(self.staleness, now)

    async def close(self) -> None:
        for task in list(self.running.values()):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def _claim_due(self, now: datetime) -> list[dict[str, Any]]:
        claimed = []
        with self.store.begin() as conn:
            for schedule in rows.due(conn, now):
                if schedule["suite"] in self.running:
                    continue
                if rows.claim(
                    conn, schedule["suite"], now, now + timedelta(seconds=RUN_HOLD_SECONDS)
                ):
                    claimed.append(schedule)
        return claimed

    async def _run(self, schedule: Mapping[str, Any]) -> None:
        assert self.runner is not None
        suite = schedule["suite"]
        try:
            try:
                outcome = await self.runner(schedule, schedule["last_passing_run_id"])
            except asyncio.CancelledError:
                # The server is stopping: free the suite so the next start runs it again.
                await asyncio.to_thread(self._release, suite)
                raise
            except Exception as exc:  # the runner itself broke: recorded, never silent
                log.exception("scheduled eval %s could not run", suite)
                outcome = Outcome("crashed", None, f"{type(exc).__name__}: {exc}")
            alert = await asyncio.to_thread(self.finished, suite, outcome)
            if alert is not None:
                self._raised.append(alert)
        finally:
            self.running.pop(suite, None)

    def _release(self, suite: str) -> None:
        with self.store.begin() as conn:
            rows.change(conn, suite, running_until=None)

    def finished(self, suite: str, outcome: Outcome) -> dict[str, Any] | None:
        """Record a run's outcome, set the next run, raise or clear the suite's alerts; the
        alert when a new one was opened."""
        now = _utc(self.clock.now())
        with self.store.begin() as conn:
            schedule = rows.get(conn, suite)
            if schedule is None:
                return None  # unscheduled while it ran
            every = timedelta(seconds=schedule["every_seconds"])
            started = schedule["last_started_at"] or now
            fields: dict[str, Any] = {
                "running_until": None,
                "last_finished_at": now,
                "last_status": outcome.status,
                "last_run_id": outcome.run_id,
                "last_message": outcome.message[-MESSAGE_CHARS:],
                "next_run_at": max(started + every, now),
            }
            if outcome.status == "passed" and outcome.run_id:
                fields["last_passing_run_id"] = outcome.run_id
            rows.change(conn, suite, **fields)
        owner = schedule["owner"]
        subject = f"suite:{suite}"
        failed = Condition("eval_failed", subject, "gate", "down", "ticket", "", owner)
        error = Condition("eval_error", subject, "run", "none", "ticket", "", owner)
        alerts.clear(self.store, f"eval_stale|{subject}|run|none", now)
        if outcome.status == "passed":
            alerts.clear(self.store, failed.signature, now)
            alerts.clear(self.store, error.signature, now)
            return None
        condition = failed if outcome.status == "failed" else error
        what = (
            "failed its gate" if outcome.status == "failed" else f"could not run ({outcome.status})"
        )
        summary = f"scheduled suite {suite} {what}: {last_line(outcome.message)}"
        details = {
            "run_id": outcome.run_id,
            "status": outcome.status,
            "output": outcome.message[-MESSAGE_CHARS:],
        }
        alert, new = alerts.raise_alert(
            self.store, dataclasses.replace(condition, summary=summary, details=details), now
        )
        return alert if new else None

    def staleness(self, now: datetime) -> list[dict[str, Any]]:
        raised = []
        with self.store.connect() as conn:
            schedules = rows.listing(conn)
        for schedule in schedules:
            subject = f"suite:{schedule['suite']}"
            since = schedule["last_finished_at"] or schedule["created_at"]
            limit = stale_after(schedule["every_seconds"])
            if now - since <= limit:
                alerts.clear(self.store, f"eval_stale|{subject}|run|none", now)
                continue
            ran = (
                "has never finished a run"
                if schedule["last_finished_at"] is None
                else (f"last finished a run {_ago(now - since)} ago")
            )
            summary = (
                f"scheduled suite {schedule['suite']} {ran}; it runs every "
                f"{_ago(timedelta(seconds=schedule['every_seconds']))}"
            )
            alert, new = alerts.raise_alert(
                self.store,
                Condition(
                    "eval_stale", subject, "run", "none", "ticket", summary, schedule["owner"]
                ),
                now,
            )
            if new:
                raised.append(alert)
        return raised


def last_line(text: str) -> str:
    """What a run said last: its verdict (`eval run` ends with the artifact's path, which
    says nothing of how it went), or its last error."""
    lines = [
        line
        for line in text.strip().splitlines()
        if line.strip() and not line.startswith("artifact: ")
    ]
    return lines[-1][:300] if lines else "(no output)"


def _ago(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.3g}{unit}"
    return f"{seconds}s"


class SubprocessRunner:
    """Runs a suite as CI does: `python -m pilothouse eval run` in a child process, in a
    folder of the data dir, against `base_url` with the key `secret()` returns."""

    def __init__(
        self,
        base_url: str,
        secret: Callable[[], Awaitable[str]],
        work_dir: Path,
        *,
        timeout_seconds: float = RUN_HOLD_SECONDS - 60,
    ):
        self.base_url = base_url
        self.secret = secret
        self.work_dir = work_dir
        self.timeout_seconds = timeout_seconds

    async def __call__(self, schedule: Mapping[str, Any], baseline: str | None) -> Outcome:
        folder = self.work_dir / schedule["suite"]
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "suite.yaml").write_text(schedule["suite_text"])
        output = folder / "run.json"
        output.unlink(missing_ok=True)
        # --no-cache: a scheduled run is there to see what changed on the providers' side,
        # which answers replayed from the response cache would hide.
        command = [sys.executable, "-m", "pilothouse", "eval", "run", "suite.yaml", "--no-cache"]
        command += ["--output", output.name]
        if baseline:
            command += ["--baseline", baseline]
        env = {k: v for k, v in os.environ.items() if not k.startswith("PILOTHOUSE_")}
        secret = await self.secret()
        env.update(PILOTHOUSE_URL=self.base_url, PILOTHOUSE_API_KEY=secret)
        process = await asyncio.create_subprocess_exec(
            *command,
            cwd=folder,
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        try:
            printed, _ = await asyncio.wait_for(process.communicate(), self.timeout_seconds)
        except TimeoutError:
            process.kill()
            await process.wait()
            return Outcome("crashed", None, f"the run took longer than {self.timeout_seconds:g} s")
        except asyncio.CancelledError:
            process.kill()
            await process.wait()
            raise
        text = printed.decode(errors="replace")
        run_id = None
        if output.exists():
            with contextlib.suppress(ValueError, OSError):
                run_id = orjson.loads(output.read_bytes()).get("id")
        code = process.returncode
        status = STATUS_OF_EXIT.get(code, "crashed") if code is not None else "crashed"
        return Outcome(status, run_id, text)


def scheduler_key(store: Store, data_dir: Path) -> tuple[str, bool]:
    """(secret, made now) of this data dir's scheduler key (scope `evals`), made on first
    use and kept in `DATA_DIR/eval-scheduler-key` (mode 600). A key an admin disabled or
    deleted is replaced by a new one."""
    path = data_dir / "eval-scheduler-key"
    if path.exists():
        secret = path.read_text().strip()
        usable = {k.prefix for k in key_policy.list_keys(store) if not k.disabled}
        if secret[: len(key_policy.SECRET_PREFIX) + 6] in usable:
            return secret, False
    _, secret = key_policy.create_key(
        store, name="eval-scheduler", user="eval-scheduler", scopes=["evals"], actor="scheduler"
    )
    data_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(secret + "\n")
    return secret, True
