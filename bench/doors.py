"""Front-door benchmark: what the Responses and Messages doors cost over the chat path, on
the same upstream, in the same run.

One `pilothouse serve` pinned to TARGET_CPU (key auth, request log on SQLite, metrics),
the fixed nginx upstream of harness.py on LOADGEN_CPU (a canned JSON completion and a
canned SSE stream), wrk and the stream client on LOADGEN_CPU. The same small request is
sent through each door (payloads.door_body); each door translates it into the same chat
request, so the upstream's answer is identical and the difference is the door's own work.

- CPU per request: wrk c32 on each door, plain and streamed (the whole stream read), in
  short windows of DOORS_WINDOW_S; every cycle runs each of the six paths once, the
  order rotating, DOORS_CYCLES cycles. A path's CPU ms per request is the gateway
  process's CPU time over the requests wrk completed, summed over its windows; fine
  interleaving spreads what the server does in the background (the monitors' jobs, the
  request log's growth) and a busy spell of the machine over every path alike. The
  ratio is to the chat path's (plain or streamed), with the per-cycle spread.
- Stream TTFT: the stream client at concurrency 1 (DOORS_STREAM_N streams) on each door,
  DOORS_ROUNDS rounds, the order rotating; the same streams straight to nginx in the
  same round give the TTFT the upstream alone takes, so "added TTFT" is what the gateway
  adds on each door, and a door's ratio is taken within each round (median of rounds).

    bash bench/setup.sh && .venv/bin/python bench/doors.py   # about 7 min on a quiet machine

Knobs: DOORS_CYCLES (20), DOORS_WINDOW_S (2), DOORS_ROUNDS (10), DOORS_STREAM_N (100),
DOORS_WORDS (the streamed answer's words; 17 by default), TARGET_CPU (1), LOADGEN_CPU (0),
QUIET_WAIT_S (120). Prints a Markdown table; raw JSON
goes to bench/results/. The goals (issue 18): each door ≤ 1.10 x the chat path's CPU
per request, and its added stream TTFT ≤ 1.5 x the chat path's.
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

CYCLES = int(os.environ.get("DOORS_CYCLES", "20"))
WINDOW_S = int(os.environ.get("DOORS_WINDOW_S", "2"))
ROUNDS = int(os.environ.get("DOORS_ROUNDS", "10"))
STREAM_N = int(os.environ.get("DOORS_STREAM_N", "100"))
WORDS = int(os.environ.get("DOORS_WORDS", "0")) or None  # the streamed answer's length
PORT_GW = 19193
DOORS = ("chat", "responses", "messages")


def door_url(door: str) -> str:
    return f"http://{HOST}:{PORT_GW}{payloads.DOOR_PATHS[door]}"


PATHS = tuple((door, stream) for stream in (False, True) for door in DOORS)


def path_name(door: str, stream: bool) -> str:
    return f"{door}-stream" if stream else door


def body_file(run_dir: str, door: str, stream: bool) -> str:
    path = os.path.join(run_dir, f"body-{path_name(door, stream)}.json")
    model = payloads.MODEL_STREAM if stream else payloads.MODEL_JSON
    with open(path, "wb") as f:
        f.write(payloads.door_body(door, model, stream=stream))
    return path


def wrk(
    target: Target, run_dir: str, door: str, conns: int, seconds: int, stream: bool = False
) -> dict[str, Any]:
    """harness.run_wrk's measurement, on this door's path and body (streamed: wrk reads
    each whole stream)."""
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
        env=dict(os.environ, BENCH_BODY=body_file(run_dir, door, stream)),
    )
    res = harness.parse_wrk(out.stdout + out.stderr)
    j1 = harness.cpu_jiffies()
    res["busy_loadgen"] = harness.busy(j0, j1, LOADGEN_CPU)
    res["busy_target"] = harness.busy(j0, j1, TARGET_CPU)
    res["cpu_s"] = target.proc.cpu_seconds() - c0
    if res.get("requests"):
        res["cpu_ms_per_req"] = res["cpu_s"] * 1000 / res["requests"]
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
    if WORDS:
        argv += ["--words", str(WORDS)]
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
    src = harness.snapshot_src(run_dir)
    target = harness.pilothouse_target("pilothouse", PORT_GW, src, run_dir)
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
    cycles: list[dict[str, Any]] = []
    rounds: list[dict[str, Any]] = []
    try:
        conf = harness.nginx_conf(run_dir, words=WORDS)
        Proc(
            "upstream",
            ["nginx", "-c", conf, "-p", run_dir, "-e", f"{run_dir}/nginx.err"],
            LOADGEN_CPU,
            os.path.join(run_dir, "nginx.log"),
        )
        target = start_gateway(run_dir)
        check_doors(target)
        log("warm-up")
        for door, stream in PATHS:
            wrk(target, run_dir, door, 32, 2, stream)
        busy_pct = harness.wait_quiet()
        log(f"background busy {busy_pct:.0f} %; {CYCLES} cycles of {len(PATHS)} x {WINDOW_S} s")
        for number in range(CYCLES):
            shift = number % len(PATHS)
            cycle: dict[str, Any] = {}
            for door, stream in PATHS[shift:] + PATHS[:shift]:
                cycle[path_name(door, stream)] = wrk(target, run_dir, door, 32, WINDOW_S, stream)
            cycles.append(cycle)
            log(
                f"cycle {number + 1}: "
                + ", ".join(f"{k} {v.get('cpu_ms_per_req', 0):.3f}" for k, v in cycle.items())
                + " CPU ms/req"
            )
        for rnd in range(ROUNDS):
            order = DOORS[rnd % 3 :] + DOORS[: rnd % 3]
            result: dict[str, Any] = {"order": order}
            result["stream-direct"] = streams(None, run_dir, "chat")
            for door in order:
                result[f"stream-{door}"] = streams(target, run_dir, door)
                log(f"round {rnd + 1} stream {door}: {result[f'stream-{door}']}")
            rounds.append(result)
    finally:
        harness.stop_all()
    lines = report(stamp, cycles, rounds)
    print("\n".join(lines))
    os.makedirs(harness.RESULTS_DIR, exist_ok=True)
    with open(os.path.join(harness.RESULTS_DIR, f"doors-{stamp}.json"), "w") as f:
        json.dump({"cycles": cycles, "rounds": rounds, "table": lines}, f, indent=1)


def report(stamp: str, cycles: list[dict[str, Any]], rounds: list[dict[str, Any]]) -> list[str]:
    def per_request(name: str) -> float:
        cpu = sum(c[name]["cpu_s"] for c in cycles)
        return cpu * 1000 / sum(c[name]["requests"] for c in cycles)

    def rps(name: str) -> float:
        return statistics.median(c[name]["rps"] for c in cycles)

    def ttft(key: str) -> float:
        return statistics.median(r[key]["ttft_p50_ms"] for r in rounds)

    def added_ratio(door: str) -> float:
        """Added TTFT over the chat path's, within each round; the median of rounds."""
        return statistics.median(
            (r[f"stream-{door}"]["ttft_p50_ms"] - r["stream-direct"]["ttft_p50_ms"])
            / (r["stream-chat"]["ttft_p50_ms"] - r["stream-direct"]["ttft_p50_ms"])
            for r in rounds
        )

    direct = ttft("stream-direct")
    lines = [
        f"Front-door benchmark {stamp}: {len(cycles)} cycles of the six paths "
        f"({WINDOW_S} s windows, order rotating), {len(rounds)} rounds of stream TTFT; "
        f"gateway on cpu {TARGET_CPU}, nginx + wrk + stream client on cpu {LOADGEN_CPU}; "
        f"streamed answers of {WORDS or len(payloads.WORDS)} words.",
        "",
        "| door | c32 req/s | CPU ms/req | x chat (cycles: median, IQR) "
        "| streamed req/s | CPU ms/req | x chat (cycles: median, IQR) "
        "| stream TTFT p50 ms | added TTFT ms | x chat (per round, median) |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for door in DOORS:
        cells = []
        for name, base in ((door, "chat"), (f"{door}-stream", "chat-stream")):
            ratios = [c[name]["cpu_ms_per_req"] / c[base]["cpu_ms_per_req"] for c in cycles]
            q1, median, q3 = statistics.quantiles(ratios, n=4) if len(ratios) > 1 else [0.0] * 3
            whole = per_request(name) / per_request(base)
            cells.append(
                f"{rps(name):.0f} | {per_request(name):.3f} | **{whole:.3f}** "
                f"({median:.3f}, {q1:.3f}-{q3:.3f})"
            )
        added = statistics.median(
            r[f"stream-{door}"]["ttft_p50_ms"] - r["stream-direct"]["ttft_p50_ms"] for r in rounds
        )
        lines.append(
            f"| {door} | {cells[0]} | {cells[1]} | {ttft(f'stream-{door}'):.3f} | {added:.3f} "
            f"| **{added_ratio(door):.2f}** |"
        )
    errors = sum(c[k].get("errors", 0) for c in cycles for k in c) + sum(
        r[k].get("errors", 0) for r in rounds for k in r if k.startswith("stream")
    )
    lines += [
        "",
        f"Upstream alone (stream TTFT p50): {direct:.3f} ms. Errors (non-2xx, socket, bad "
        f"streams): {errors}.",
    ]
    return lines


if __name__ == "__main__":
    main()
