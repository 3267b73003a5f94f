"""Front-door benchmark: what the Responses and Messages doors cost over the chat path, on
the same upstream, in the same run.

One `pilothouse serve` pinned to TARGET_CPU (key auth, request log on SQLite, metrics),
the fixed nginx upstream of harness.py on LOADGEN_CPU (a canned JSON completion and a
canned SSE stream), wrk and the stream client on LOADGEN_CPU. The same small request is
sent through each door (payloads.door_body); each door translates it into the same chat
request, so the upstream's answer is identical and the difference is the door's own work.

Per round (the order of the doors rotates each round):
- wrk c32 for DOORS_DUR_S on each door: gateway CPU ms per request (the gateway's own
  CPU time over the requests wrk completed) and req/s;
- the stream client at concurrency 1 (DOORS_STREAM_N streams) on each door: TTFT p50 and
  gateway CPU ms per stream; the same streams straight to nginx give the TTFT the
  upstream alone takes, so "added TTFT" is what the gateway adds on each door.

    bash bench/setup.sh && .venv/bin/python bench/doors.py   # about 4 min on a quiet machine

Knobs: DOORS_ROUNDS (3), DOORS_DUR_S (10), DOORS_STREAM_N (300), TARGET_CPU (1),
LOADGEN_CPU (0), QUIET_WAIT_S (120). Prints a Markdown table; raw JSON goes to
bench/results/. The goals (issue 18): each door ≤ 1.10 x the chat path's CPU per request,
and its added stream TTFT ≤ 1.5 x the chat path's.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import statistics
import subprocess
import sys
import time
from typing import Any

import payloads

import harness
from harness import BENCH_PY, HERE, HOST, LOADGEN_CPU, TARGET_CPU, Proc, Target, log

ROUNDS = int(os.environ.get("DOORS_ROUNDS", "3"))
DUR_S = int(os.environ.get("DOORS_DUR_S", "10"))
STREAM_N = int(os.environ.get("DOORS_STREAM_N", "300"))
PORT_GW = 19193
DOORS = ("chat", "responses", "messages")


def door_url(door: str) -> str:
    return f"http://{HOST}:{PORT_GW}{payloads.DOOR_PATHS[door]}"


def body_file(run_dir: str, door: str) -> str:
    path = os.path.join(run_dir, f"body-{door}.json")
    with open(path, "wb") as f:
        f.write(payloads.door_body(door, payloads.MODEL_JSON))
    return path


def wrk(target: Target, run_dir: str, door: str, conns: int, seconds: int) -> dict[str, Any]:
    """harness.run_wrk's measurement, on this door's path and body."""
    assert target.proc is not None
    argv = ["taskset", "-c", LOADGEN_CPU, "wrk", "-t1", f"-c{conns}", f"-d{seconds}s"]
    argv += ["--timeout", "10s", "-s", os.path.join(HERE, "wrk_post.lua")]
    for k, v in target.headers.items():
        argv += ["-H", f"{k}: {v}"]
    argv.append(door_url(door))
    c0 = target.proc.cpu_seconds()
    j0 = harness.cpu_jiffies()
    out = subprocess.run(
        argv,
        capture_output=True,
        text=True,
        timeout=seconds + 30,
        env=dict(os.environ, BENCH_BODY=body_file(run_dir, door)),
    )
    res = harness.parse_wrk(out.stdout + out.stderr)
    j1 = harness.cpu_jiffies()
    res["busy_loadgen"] = harness.busy(j0, j1, LOADGEN_CPU)
    res["busy_target"] = harness.busy(j0, j1, TARGET_CPU)
    if res.get("requests"):
        res["cpu_ms_per_req"] = (target.proc.cpu_seconds() - c0) * 1000 / res["requests"]
    return res


def streams(target: Target | None, run_dir: str, door: str) -> dict[str, Any]:
    """Sequential streams on a door (target None: straight to the upstream, chat only)."""
    out = os.path.join(run_dir, f"stream-{door}-{time.monotonic_ns()}.json")
    url = (
        door_url(door) if target else harness.UPSTREAM[payloads.MODEL_STREAM] + "/chat/completions"
    )
    argv = ["taskset", "-c", LOADGEN_CPU, BENCH_PY, os.path.join(HERE, "stream_client.py")]
    argv += ["--url", url, "--model", payloads.MODEL_STREAM, "--door", door]
    argv += ["--conc", "1", "--n", str(STREAM_N), "--max-seconds", "60", "--warmup", "10"]
    argv += ["--out", out]
    for k, v in (target.headers if target else {}).items():
        argv += ["--header", f"{k}: {v}"]
    c0 = target.proc.cpu_seconds() if target and target.proc else 0.0
    r = subprocess.run(argv, capture_output=True, text=True, timeout=150)
    if r.returncode != 0 or not os.path.exists(out):
        return {"error": (r.stderr or r.stdout)[-400:]}
    with open(out) as f:
        res: dict[str, Any] = json.load(f)
    if target and target.proc and res.get("ok"):
        res["cpu_ms_per_stream"] = (target.proc.cpu_seconds() - c0) * 1000 / (res["ok"] + 10)
    return res


def start_gateway(run_dir: str) -> Target:
    target = harness.pilothouse_target("pilothouse", PORT_GW, None, run_dir)
    target.start(run_dir)
    assert target.proc is not None
    deadline = time.time() + 120
    body = payloads.door_body("chat", payloads.MODEL_JSON)
    while not (
        harness.port_open(PORT_GW)
        and harness.post(door_url("chat"), body, target.headers, 5)[0] == 200
    ):
        if time.time() > deadline or not target.proc.alive():
            sys.exit(f"the gateway did not start: {target.proc.tail()}")
        time.sleep(0.2)
    return target


def check_doors(target: Target) -> None:
    """Each door answers the canned reply before anything is measured."""
    for door in DOORS:
        status, raw = harness.post(
            door_url(door), payloads.door_body(door, payloads.MODEL_JSON), target.headers, 5
        )
        assert status == 200, (door, status, raw[:300])
        answer = json.loads(raw)
        if door == "chat":
            text = answer["choices"][0]["message"]["content"]
        elif door == "responses":
            text = answer["output"][0]["content"][0]["text"]
        else:
            text = answer["content"][0]["text"]
        assert text == payloads.REPLY, (door, text)


def main() -> None:
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    run_dir = os.path.join(harness.PREFIX, f"doors-{stamp}")
    os.makedirs(run_dir, exist_ok=True)
    signal.signal(signal.SIGTERM, lambda s, f: (harness.stop_all(), sys.exit(128 + s)))
    signal.signal(signal.SIGINT, lambda s, f: (harness.stop_all(), sys.exit(128 + s)))
    ports = (harness.PORT_UP_JSON, harness.PORT_UP_STREAM, PORT_GW)
    busy = [p for p in ports if harness.port_open(p)]
    if busy:
        sys.exit(f"ports already in use on {HOST}: {busy} (another bench run?)")
    rounds: list[dict[str, Any]] = []
    try:
        conf = harness.nginx_conf(run_dir)
        Proc(
            "upstream",
            ["nginx", "-c", conf, "-p", run_dir, "-e", f"{run_dir}/nginx.err"],
            LOADGEN_CPU,
            os.path.join(run_dir, "nginx.log"),
        )
        target = start_gateway(run_dir)
        check_doors(target)
        log(f"warm-up {DUR_S} s")
        for door in DOORS:
            wrk(target, run_dir, door, 32, max(2, DUR_S // 3))
        for rnd in range(ROUNDS):
            busy_pct = harness.wait_quiet()
            order = DOORS[rnd % 3 :] + DOORS[: rnd % 3]
            result: dict[str, Any] = {"background_busy_pct": busy_pct, "order": order}
            for door in order:
                result[f"c32-{door}"] = wrk(target, run_dir, door, 32, DUR_S)
                log(f"round {rnd + 1} c32 {door}: {harness.brief(result[f'c32-{door}'])}")
            result["stream-direct"] = streams(None, run_dir, "chat")
            for door in order:
                result[f"stream-{door}"] = streams(target, run_dir, door)
                log(f"round {rnd + 1} stream {door}: {result[f'stream-{door}']}")
            rounds.append(result)
    finally:
        harness.stop_all()

    def med(key: str, field: str) -> float:
        return statistics.median(r[key][field] for r in rounds)

    direct = med("stream-direct", "ttft_p50_ms")
    lines = [
        f"Front-door benchmark {stamp}: {ROUNDS} rounds (door order rotating), medians; "
        f"gateway on cpu {TARGET_CPU}, nginx + wrk + stream client on cpu {LOADGEN_CPU}.",
        "",
        "| door | c32 req/s | CPU ms/req (c32) | x chat (per-round ratio) | stream TTFT p50 ms "
        "| added TTFT ms | x chat | CPU ms/stream |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    added_chat = med("stream-chat", "ttft_p50_ms") - direct
    for door in DOORS:
        cpu_ratio = statistics.median(
            r[f"c32-{door}"]["cpu_ms_per_req"] / r["c32-chat"]["cpu_ms_per_req"] for r in rounds
        )
        added = statistics.median(r[f"stream-{door}"]["ttft_p50_ms"] for r in rounds) - direct
        lines.append(
            f"| {door} | {med(f'c32-{door}', 'rps'):.0f} | {med(f'c32-{door}', 'cpu_ms_per_req'):.3f} "
            f"| **{cpu_ratio:.3f}** | {med(f'stream-{door}', 'ttft_p50_ms'):.3f} | {added:.3f} "
            f"| **{added / added_chat:.2f}** | {med(f'stream-{door}', 'cpu_ms_per_stream'):.3f} |"
        )
    errors = sum(
        r[k].get("errors", 0) for r in rounds for k in r if k.startswith(("c32", "stream"))
    )
    lines += [
        "",
        f"Upstream alone (stream TTFT p50): {direct:.3f} ms. Errors (non-2xx, socket, bad "
        f"streams): {errors}.",
    ]
    print("\n".join(lines))
    os.makedirs(harness.RESULTS_DIR, exist_ok=True)
    with open(os.path.join(harness.RESULTS_DIR, f"doors-{stamp}.json"), "w") as f:
        json.dump({"rounds": rounds, "table": lines}, f, indent=1)


if __name__ == "__main__":
    main()
