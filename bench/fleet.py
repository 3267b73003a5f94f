"""Fleet benchmark: what an alias with two deployments costs, and what a failover costs.

One `pilothouse serve` pinned to TARGET_CPU (key auth, request log on SQLite, metrics), a
fixed nginx upstream on LOADGEN_CPU (a canned JSON completion on one port, a 503 on
another), wrk on LOADGEN_CPU. Aliases:

- `single`: one deployment (the upstream);
- `pair`: two deployments of the same upstream through two providers (two connection
  pools), strategy `weighted` 1:1, so both serve;
- `failover`: first a deployment that always answers 503, then the upstream; every
  breaker is kept closed (min_requests 10^9) so every request pays the failed attempt;
- `down`: only the 503 deployment.

Measured in interleaved rounds (the order flips each round): wrk c32 on `single` and
`pair` (req/s), then wrk c1 on `single`, `failover` and `down` (latency). The failed
attempt's own latency comes from the request log (`attempts[0].latency_ms`).

    bash bench/setup.sh && .venv/bin/python bench/fleet.py   # about 3 min on a quiet machine

Knobs: FLEET_ROUNDS (3), FLEET_DUR_S (10), FLEET_C1_S (8), TARGET_CPU (1), LOADGEN_CPU (0),
QUIET_WAIT_S (120). Prints a Markdown table; raw JSON goes to bench/results/.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import sqlite3
import statistics
import subprocess
import sys
import time
from typing import Any

import payloads

import harness
from harness import HOST, LOADGEN_CPU, TARGET_CPU, Proc, Target, log

ROUNDS = int(os.environ.get("FLEET_ROUNDS", "3"))
DUR_S = int(os.environ.get("FLEET_DUR_S", "10"))
C1_S = int(os.environ.get("FLEET_C1_S", "8"))
PORT_JSON, PORT_DOWN, PORT_GW = 19181, 19182, 19191
ALIASES = ("single", "pair", "failover", "down")


def nginx_conf(run_dir: str) -> str:
    tmp = os.path.join(run_dir, "nginx-tmp")
    os.makedirs(tmp, exist_ok=True)
    down = '{"error":{"message":"overloaded (bench)","type":"server_error"}}'
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
  server {{
    listen {HOST}:{PORT_DOWN} backlog=4096;
    location = /v1/chat/completions {{
      default_type application/json; return 503 {harness._nginx_str(down)};
    }}
  }}
}}
"""
    path = os.path.join(run_dir, "nginx.conf")
    with open(path, "w") as f:
        f.write(conf)
    return path


CONFIG = f"""
providers:
  up-a: {{type: openai, base_url: "http://{HOST}:{PORT_JSON}/v1"}}
  up-b: {{type: openai, base_url: "http://{HOST}:{PORT_JSON}/v1"}}
  down: {{type: openai, base_url: "http://{HOST}:{PORT_DOWN}/v1"}}
models:
  single: {{provider: up-a, model: {payloads.MODEL_JSON}}}
  pair:
    strategy: weighted
    deployments:
      - {{provider: up-a, model: {payloads.MODEL_JSON}}}
      - {{provider: up-b, model: {payloads.MODEL_JSON}}}
  failover:
    deployments:
      - {{provider: down, model: {payloads.MODEL_JSON}, priority: 1}}
      - {{provider: up-b, model: {payloads.MODEL_JSON}, priority: 2}}
  down: {{provider: down, model: {payloads.MODEL_JSON}}}
fleet:
  breaker: {{min_requests: 1000000000}}  # never open: every failover request pays its attempt
"""


def start_gateway(run_dir: str) -> tuple[Proc, str, str]:
    data = os.path.join(run_dir, "gw-data")
    os.makedirs(data, exist_ok=True)
    py = os.path.join(os.path.dirname(harness.PILOTHOUSE_BIN), "python")
    secret = (
        subprocess.run(
            [py, "-c", harness.KEY_SNIPPET, data],
            capture_output=True,
            text=True,
            check=True,
            timeout=120,
        )
        .stdout.strip()
        .splitlines()[-1]
    )
    cfg = os.path.join(run_dir, "fleet.yaml")
    with open(cfg, "w") as f:
        f.write(CONFIG)
    argv = [harness.PILOTHOUSE_BIN, "serve", "--config", cfg, "--data-dir", data]
    argv += ["--host", HOST, "--port", str(PORT_GW)]
    env = {"PILOTHOUSE_ADMIN_TOKEN": "bench-admin-token"}
    proc = Proc("pilothouse", argv, TARGET_CPU, os.path.join(run_dir, "gw.log"), env=env)
    return proc, secret, data


def body_file(run_dir: str, alias: str) -> str:
    path = os.path.join(run_dir, f"body-{alias}.json")
    with open(path, "wb") as f:
        f.write(payloads.request_body(alias))
    return path


def wrk(target: Target, run_dir: str, alias: str, conns: int, seconds: int) -> dict[str, Any]:
    env = dict(os.environ, BENCH_BODY=body_file(run_dir, alias))
    return harness.run_wrk(target, conns, seconds, env)


def failed_attempt_ms(data: str) -> float | None:
    """Median latency of the failed first attempts of `failover` requests (request log)."""
    db = sqlite3.connect(os.path.join(data, "pilothouse.db"))
    rows = db.execute(
        "SELECT attempts FROM request_log WHERE model_alias = 'failover' AND attempts IS NOT NULL"
    ).fetchall()
    db.close()
    values = [json.loads(r[0])[0]["latency_ms"] for r in rows]
    return statistics.median(values) if values else None


def main() -> None:
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    run_dir = os.path.join(harness.PREFIX, f"fleet-{stamp}")
    os.makedirs(run_dir, exist_ok=True)
    signal.signal(signal.SIGTERM, lambda s, f: (harness.stop_all(), sys.exit(128 + s)))
    signal.signal(signal.SIGINT, lambda s, f: (harness.stop_all(), sys.exit(128 + s)))
    busy = [p for p in (PORT_JSON, PORT_DOWN, PORT_GW) if harness.port_open(p)]
    if busy:
        sys.exit(f"ports already in use on {HOST}: {busy} (another fleet bench run?)")
    rounds: list[dict[str, Any]] = []
    try:
        conf = nginx_conf(run_dir)
        Proc(
            "upstream",
            ["nginx", "-c", conf, "-p", run_dir, "-e", f"{run_dir}/nginx.err"],
            LOADGEN_CPU,
            os.path.join(run_dir, "nginx.log"),
        )
        proc, secret, data = start_gateway(run_dir)
        target = Target("pilothouse", "fleet", PORT_GW, {"Authorization": f"Bearer {secret}"})
        target.proc = proc
        url = f"http://{HOST}:{PORT_GW}/v1/chat/completions"
        deadline = time.time() + 120
        while not (
            harness.port_open(PORT_GW)
            and harness.post(url, payloads.request_body("single"), target.headers, 5)[0] == 200
        ):
            if time.time() > deadline or not proc.alive():
                sys.exit(f"the gateway did not start: {proc.tail()}")
            time.sleep(0.2)
        for alias in ALIASES:  # each answers as it should before anything is measured
            status, _ = harness.post(
                f"http://{HOST}:{PORT_GW}/v1/chat/completions",
                payloads.request_body(alias),
                target.headers,
                5,
            )
            assert status == (502 if alias == "down" else 200), (alias, status)
        log(f"warm-up {DUR_S} s")
        wrk(target, run_dir, "pair", 32, DUR_S)
        for rnd in range(ROUNDS):
            busy_pct = harness.wait_quiet()
            order = ("single", "pair") if rnd % 2 == 0 else ("pair", "single")
            result: dict[str, Any] = {"background_busy_pct": busy_pct}
            for alias in order:
                result[f"c32-{alias}"] = wrk(target, run_dir, alias, 32, DUR_S)
                log(f"round {rnd + 1} c32 {alias}: {harness.brief(result[f'c32-{alias}'])}")
            for alias in (
                ("single", "failover", "down") if rnd % 2 == 0 else ("down", "failover", "single")
            ):
                result[f"c1-{alias}"] = wrk(target, run_dir, alias, 1, C1_S)
                log(f"round {rnd + 1} c1 {alias}: {harness.brief(result[f'c1-{alias}'])}")
            rounds.append(result)
        time.sleep(1)  # the request log's last batch
        attempt_ms = failed_attempt_ms(data)
    finally:
        harness.stop_all()

    def med(key: str, field: str) -> float:
        return statistics.median(r[key][field] for r in rounds)

    rps_single, rps_pair = med("c32-single", "rps"), med("c32-pair", "rps")
    p50 = {a: med(f"c1-{a}", "p50_ms") for a in ("single", "failover", "down")}
    errors = sum(r[k].get("errors", 0) for r in rounds for k in r if k.startswith("c32"))
    added = p50["failover"] - p50["single"]
    lines = [
        f"Fleet benchmark {stamp}: {ROUNDS} interleaved rounds, medians; gateway on cpu {TARGET_CPU}, nginx + wrk on cpu {LOADGEN_CPU}.",
        "",
        "| measure | value |",
        "| --- | ---: |",
        f"| c32 req/s, `single` (one deployment) | {rps_single:.0f} |",
        f"| c32 req/s, `pair` (two deployments, weighted 1:1) | {rps_pair:.0f} |",
        f"| pair ÷ single | **{rps_pair / rps_single:.3f}** |",
        f"| c1 p50 ms, `single` | {p50['single']:.3f} |",
        f"| c1 p50 ms, `failover` (503, then the upstream) | {p50['failover']:.3f} |",
        f"| c1 p50 ms, `down` (the 503 alone, answered 502) | {p50['down']:.3f} |",
        f"| added by a failover (failover - single) | **{added:.3f}** |",
        f"| the failed attempt's own latency (request log, median) | {attempt_ms if attempt_ms is None else f'{attempt_ms:.3f}'} |",
        f"| non-2xx or socket errors at c32 | {errors} |",
    ]
    print("\n".join(lines))
    os.makedirs(harness.RESULTS_DIR, exist_ok=True)
    with open(os.path.join(harness.RESULTS_DIR, f"fleet-{stamp}.json"), "w") as f:
        json.dump({"rounds": rounds, "failed_attempt_ms": attempt_ms, "table": lines}, f, indent=1)


if __name__ == "__main__":
    main()
