"""Quota benchmark: what a quota check costs per request, and what quotas cost a gateway.

1. The check alone, in this process: `QuotaGate.admit` + `settle` for a request quota and
   a cost quota on one key, N times, with the in-process backend and with Redis (one Lua
   script each way on loopback); the same loop without the gate is subtracted.
2. One `pilothouse serve` pinned to TARGET_CPU, a fixed nginx upstream and wrk on
   LOADGEN_CPU: wrk c32 with a key that has a request quota and a cost quota (limits far
   away, so every request is checked, reserved and reconciled) and with a key that has
   none, in interleaved rounds in the same run; then the same on a gateway whose
   counters are in Redis (PILOTHOUSE_REDIS_URL). With QUOTA_ALT_SRC, other builds (each
   a src/ tree) run beside this one, their rounds interleaved with its rounds, to
   compare a change with what it replaces in one run.

    bash bench/setup.sh && .venv/bin/python bench/quotas.py   # about 4 min on a quiet machine

Knobs: QUOTA_ROUNDS (3), QUOTA_DUR_S (10), QUOTA_MICRO_N (20000), QUOTA_REDIS_URL
(redis://127.0.0.1:6379/0; empty: skip Redis), QUOTA_ALT_SRC (name=/path/src,...),
TARGET_CPU (1), LOADGEN_CPU (0), QUIET_WAIT_S (120). Prints a Markdown table; raw JSON
goes to bench/results/.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import secrets
import signal
import statistics
import sys
import time
import urllib.request
from typing import Any

import payloads

import harness
from harness import HOST, LOADGEN_CPU, TARGET_CPU, Proc, Target, log

ROUNDS = int(os.environ.get("QUOTA_ROUNDS", "3"))
BUILDS: list[tuple[str, str | None]] = [("this", None)] + [
    (spec.split("=", 1)[0], spec.split("=", 1)[1])
    for spec in os.environ.get("QUOTA_ALT_SRC", "").split(",")
    if "=" in spec
]
DUR_S = int(os.environ.get("QUOTA_DUR_S", "10"))
MICRO_N = int(os.environ.get("QUOTA_MICRO_N", "20000"))
REDIS_URL = os.environ.get("QUOTA_REDIS_URL", "redis://127.0.0.1:6379/0")
PORT_JSON, PORT_GW = 19281, 19291
ADMIN = "bench-admin-token"


# ---------------------------------------------------------------------- 1. the check


async def micro(backend_name: str) -> dict[str, float]:
    from pilothouse.clock import Clock
    from pilothouse.policy.quota_backends import InProcessBackend, RedisBackend
    from pilothouse.policy.quota_gate import QuotaGate, UsageBound
    from pilothouse.policy.quotas import QuotaPolicy

    run = secrets.token_hex(4)
    backend: Any = InProcessBackend() if backend_name == "in-process" else RedisBackend(REDIS_URL)
    gate = QuotaGate(backend, clock=Clock())
    common = {"subject_kind": "key", "subject": "k", "on_backend_down": "open", "created_by": "b"}
    rpm = QuotaPolicy.from_row(
        {
            **common,
            "name": f"rpm-{run}",
            "dimension": "requests",
            "window": "minute",
            "hard_limit": 1e9,
        }
    )
    usd = QuotaPolicy.from_row(
        {**common, "name": f"usd-{run}", "dimension": "cost", "window": "day", "hard_limit": 1e6}
    )
    applicable = [(rpm, "key:k"), (usd, "key:k")]
    bound = UsageBound(120, 32, 200_000)

    async def nothing() -> None:
        return None

    reserve, both, empty = [], [], []
    for index in range(MICRO_N + 1000):
        t0 = time.perf_counter_ns()
        admission = await gate.admit(applicable, bound)
        t1 = time.perf_counter_ns()
        assert admission is not None
        await gate.settle(admission, used_anything=True, tokens=140, cost_usd=0.00004)
        t2 = time.perf_counter_ns()
        await nothing()
        await nothing()
        t3 = time.perf_counter_ns()
        if index >= 1000:  # warm-up
            reserve.append(t1 - t0)
            both.append(t2 - t0)
            empty.append(t3 - t2)
    await backend.close()
    loop_ns = statistics.median(empty)
    return {
        "reserve_p50_us": (statistics.median(reserve) - loop_ns / 2) / 1000,
        "check_p50_us": (statistics.median(both) - loop_ns) / 1000,
        "check_mean_us": (statistics.fmean(both) - statistics.fmean(empty)) / 1000,
        "check_p99_us": (sorted(both)[int(len(both) * 0.99)] - loop_ns) / 1000,
    }


# ---------------------------------------------------------------------- 2. the gateway

CONFIG = f"""
providers:
  up: {{type: openai, base_url: "http://{HOST}:{PORT_JSON}/v1"}}
models:
  single: {{provider: up, model: {payloads.MODEL_JSON}, pricing: {{input_per_mtok: 1, output_per_mtok: 2}}}}
"""


def nginx_conf(run_dir: str) -> str:
    tmp = os.path.join(run_dir, "nginx-tmp")
    os.makedirs(tmp, exist_ok=True)
    conf = f"""
worker_processes 1; daemon off; pid {run_dir}/nginx.pid; error_log {run_dir}/nginx.err warn;
events {{ worker_connections 4096; }}
http {{
  access_log off; server_tokens off; tcp_nodelay on;
  keepalive_timeout 300s; keepalive_requests 100000000;
  client_body_temp_path {tmp}/b; proxy_temp_path {tmp}/p; fastcgi_temp_path {tmp}/f;
  uwsgi_temp_path {tmp}/u; scgi_temp_path {tmp}/s; client_body_buffer_size 64k;
  server {{
    listen {HOST}:{PORT_JSON} backlog=4096;
    location = /v1/chat/completions {{
      default_type application/json; return 200 {harness._nginx_str(payloads.completion())};
    }}
  }}
}}
"""
    path = os.path.join(run_dir, "nginx.conf")
    with open(path, "w") as f:
        f.write(conf)
    return path


def api(method: str, path: str, body: dict[str, Any], port: int = PORT_GW) -> dict[str, Any]:
    request = urllib.request.Request(
        f"http://{HOST}:{port}{path}",
        data=json.dumps(body).encode(),
        method=method,
        headers={"Authorization": f"Bearer {ADMIN}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return dict(json.loads(response.read()))


def start_gateway(
    run_dir: str, name: str, redis: str | None, port: int = PORT_GW, src: str | None = None
) -> tuple[Proc, dict[str, str]]:
    data = os.path.join(run_dir, f"gw-{name}")
    os.makedirs(data, exist_ok=True)
    cfg = os.path.join(run_dir, "quotas.yaml")
    with open(cfg, "w") as f:
        f.write(CONFIG)
    argv = [harness.PILOTHOUSE_BIN, "serve", "--config", cfg, "--data-dir", data]
    argv += ["--host", HOST, "--port", str(port)]
    env = {"PILOTHOUSE_ADMIN_TOKEN": ADMIN, "PILOTHOUSE_REDIS_URL": redis or ""}
    if src:
        env["PYTHONPATH"] = src  # ahead of the editable install
    proc = Proc(
        f"pilothouse-{name}", argv, TARGET_CPU, os.path.join(run_dir, f"{name}.log"), env=env
    )
    deadline = time.time() + 120
    while not harness.port_open(port):
        if time.time() > deadline or not proc.alive():
            sys.exit(f"the gateway did not start: {proc.tail()}")
        time.sleep(0.2)
    time.sleep(1)
    secrets_by_key = {
        k: api("POST", "/api/keys", {"name": k}, port)["secret"] for k in ("plain", "quota")
    }
    run = secrets.token_hex(4)
    for dimension, window, limit in (("requests", "minute", 1e9), ("cost", "day", 1e6)):
        api(
            "PUT",
            f"/api/quotas/{dimension}-{run}",
            {
                "subject_kind": "key",
                "subject": "quota",
                "dimension": dimension,
                "window": window,
                "hard_limit": limit,
            },
            port,
        )
    return proc, secrets_by_key


def wrk(
    run_dir: str, secret: str, seconds: int, port: int = PORT_GW, proc: Proc | None = None
) -> dict[str, Any]:
    path = os.path.join(run_dir, "body.json")
    with open(path, "wb") as f:
        f.write(payloads.request_body("single"))
    target = Target("pilothouse", "quotas", port, {"Authorization": f"Bearer {secret}"})
    target.proc = proc  # so the run reports the gateway's CPU per request
    return harness.run_wrk(target, 32, seconds, dict(os.environ, BENCH_BODY=path))


def gateway_rounds(run_dir: str, name: str, redis: str | None) -> dict[str, list[dict[str, Any]]]:
    """Per build: rounds of wrk c32 with the plain key and the quota key (the order of
    the keys flips each round, the builds take turns)."""
    started: dict[str, tuple[Proc, dict[str, str], int]] = {}
    for index, (build, src) in enumerate(BUILDS):
        port = PORT_GW + index
        proc, keys = start_gateway(run_dir, f"{name}-{build}", redis, port, src)
        url = f"http://{HOST}:{port}/v1/chat/completions"
        for key, secret in keys.items():
            status, body = harness.post(
                url, payloads.request_body("single"), {"Authorization": f"Bearer {secret}"}, 5
            )
            assert status == 200, (key, status, body[:300])
        log(f"{name} {build}: warm-up {DUR_S} s")
        wrk(run_dir, keys["quota"], DUR_S, port)
        started[build] = (proc, keys, port)
    rounds: dict[str, list[dict[str, Any]]] = {build: [] for build in started}
    for rnd in range(ROUNDS):
        busy_pct = harness.wait_quiet()
        builds = list(started)[rnd % len(started) :] + list(started)[: rnd % len(started)]
        for build in builds:
            proc, keys, port = started[build]
            order = ("plain", "quota") if rnd % 2 == 0 else ("quota", "plain")
            result: dict[str, Any] = {"background_busy_pct": busy_pct}
            for key in order:
                result[key] = wrk(run_dir, keys[key], DUR_S, port, proc)
                log(f"{name} {build} round {rnd + 1} c32 {key}: {harness.brief(result[key])}")
            rounds[build].append(result)
    for proc, _, _ in started.values():
        proc.stop()
    time.sleep(1)
    return rounds


def main() -> None:
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    run_dir = os.path.join(harness.PREFIX, f"quotas-{stamp}")
    os.makedirs(run_dir, exist_ok=True)
    signal.signal(signal.SIGTERM, lambda s, f: (harness.stop_all(), sys.exit(128 + s)))
    signal.signal(signal.SIGINT, lambda s, f: (harness.stop_all(), sys.exit(128 + s)))
    busy = [
        p for p in (PORT_JSON, *(PORT_GW + i for i in range(len(BUILDS)))) if harness.port_open(p)
    ]
    if busy:
        sys.exit(f"ports already in use on {HOST}: {busy} (another quota bench run?)")
    checks = {"in-process": asyncio.run(micro("in-process"))}
    log(f"check, in-process: {checks['in-process']}")
    if REDIS_URL:
        checks["redis"] = asyncio.run(micro("redis"))
        log(f"check, redis: {checks['redis']}")
    gateways: dict[str, dict[str, list[dict[str, Any]]]] = {}
    try:
        conf = nginx_conf(run_dir)
        Proc(
            "upstream",
            ["nginx", "-c", conf, "-p", run_dir, "-e", f"{run_dir}/nginx.err"],
            LOADGEN_CPU,
            os.path.join(run_dir, "nginx.log"),
        )
        gateways["in-process"] = gateway_rounds(run_dir, "in-process", None)
        if REDIS_URL:
            gateways["redis"] = gateway_rounds(run_dir, "redis", REDIS_URL)
    finally:
        harness.stop_all()
    lines = report(stamp, checks, gateways)
    print("\n".join(lines))
    os.makedirs(harness.RESULTS_DIR, exist_ok=True)
    with open(os.path.join(harness.RESULTS_DIR, f"quotas-{stamp}.json"), "w") as f:
        json.dump({"checks": checks, "gateways": gateways, "table": lines}, f, indent=1)


def report(
    stamp: str,
    checks: dict[str, dict[str, float]],
    gateways: dict[str, dict[str, list[dict[str, Any]]]],
) -> list[str]:
    def med(rounds: list[dict[str, Any]], key: str, field: str = "rps") -> float:
        return statistics.median(r[key][field] for r in rounds)

    errors = sum(
        r[k].get("errors", 0)
        for builds in gateways.values()
        for rounds in builds.values()
        for r in rounds
        for k in ("plain", "quota")
    )
    lines = [
        f"Quota benchmark {stamp}: {ROUNDS} interleaved rounds of {DUR_S} s, medians; gateway "
        f"on cpu {TARGET_CPU}, nginx + wrk on cpu {LOADGEN_CPU}; the check alone {MICRO_N} "
        f"times; load average {os.getloadavg()[0]:.1f} at the end.",
        "",
        "| measure | value |",
        "| --- | ---: |",
    ]
    for name, check in checks.items():
        lines += [
            f"| quota check ({name}): reserve, p50 µs | {check['reserve_p50_us']:.1f} |",
            f"| quota check ({name}): reserve + reconcile, p50 µs | **{check['check_p50_us']:.1f}** |",
            f"| quota check ({name}): reserve + reconcile, p99 µs | {check['check_p99_us']:.1f} |",
        ]
    for name, builds in gateways.items():
        for build, rounds in builds.items():
            label = name if len(builds) == 1 else f"{name}, build {build}"
            ratios = [r["quota"]["rps"] / r["plain"]["rps"] for r in rounds]
            cpu = [
                r["plain"]["cpu_ms_per_req"] / r["quota"]["cpu_ms_per_req"]
                for r in rounds
                if r["plain"].get("cpu_ms_per_req") and r["quota"].get("cpu_ms_per_req")
            ]
            per_round = ", ".join(f"{x:.2f}" for x in ratios)
            lines += [
                f"| c32 req/s, {label} counters: key without quotas | {med(rounds, 'plain'):.0f} |",
                f"| c32 req/s, {label} counters: key with a request and a cost quota | "
                f"{med(rounds, 'quota'):.0f} |",
                f"| with ÷ without ({label}), median of the rounds' ratios ({per_round}) | "
                f"**{statistics.median(ratios):.3f}** |",
                f"| CPU per request without ÷ with ({label}), median of the rounds | "
                f"{statistics.median(cpu):.3f} |"
                if cpu
                else "",
            ]
        if len(builds) > 1:
            this = builds["this"]
            for build, rounds in builds.items():
                if build != "this":
                    gain = statistics.median(
                        a["quota"]["rps"] / b["quota"]["rps"]
                        for a, b in zip(this, rounds, strict=True)
                    )
                    lines.append(
                        f"| key with quotas, {name}: this build ÷ build {build}, median of "
                        f"the rounds | {gain:.3f} |"
                    )
    lines.append(f"| non-2xx or socket errors | {errors} |")
    return [line for line in lines if line]


if __name__ == "__main__":
    main()
