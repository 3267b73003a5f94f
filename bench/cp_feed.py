"""The prompt feed's fan-out: C clients on the served instance follow one prompt's
`production` label; the writer instance moves the label back and forth; per move, the
time from sending it until each client heard the event and until it had fetched the new
version (what the SDK's `on_change` waits for).

Most clients are raw SSE clients in separate processes under the bench venv
(cp_feed_clients.py: what the SDK does, without its two threads per client); CP_FEED_SDK
of them are real `pilothouse.Client`s in this process, for comparison."""

from __future__ import annotations

import json
import os
import select
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from cp_instances import Instance

import harness
from harness import LOADGEN_CPU, log
from pilothouse import Client

PROMPT = "prompt-0"
HERE = os.path.dirname(os.path.abspath(__file__))


def _line(proc: subprocess.Popen[str], timeout: float) -> str:
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    if not ready:
        raise SystemExit(f"feed client process {proc.pid} said nothing in {timeout} s")
    line = proc.stdout.readline()
    if not line:
        raise SystemExit(f"feed client process {proc.pid} exited: {proc.wait()}")
    return line.strip()


def feed_moves(
    writer: Instance,
    served: Instance,
    secret: str,
    clients: int,
    sdk_clients: int,
    processes: int,
    moves: int,
) -> dict[str, Any]:
    """`moves` label moves heard by `clients` clients (of which `sdk_clients` real SDK
    clients); seconds from each move to each client's event and to its having the new
    version; the serving instance's CPU per move."""
    raw = clients - sdk_clients
    share = [raw // processes + (1 if i < raw % processes else 0) for i in range(processes)]
    procs = []
    for count in (c for c in share if c):
        argv = ["taskset", "-c", LOADGEN_CPU, harness.BENCH_PY]
        argv += [os.path.join(HERE, "cp_feed_clients.py"), "--url", served.url, "--key", secret]
        argv += ["--prompt", PROMPT, "--clients", str(count)]
        procs.append(
            subprocess.Popen(
                argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1
            )
        )
    sdk_seen: list[dict[int, float]] = [{} for _ in range(sdk_clients)]

    def recorder(i: int) -> Any:
        def on_change(name: str, label: str | None, old: int, new: int) -> None:
            sdk_seen[i].setdefault(new, time.time())

        return on_change

    work = Path(tempfile.mkdtemp(prefix="pilothouse-cp-sdk-"))
    sdks = [
        Client(served.url, secret, cache_dir=work / f"c{i}", on_change=recorder(i))
        for i in range(sdk_clients)
    ]
    out: dict[str, Any] = {"heard": [], "fetched": [], "sdk": [], "missed": 0, "moves": []}
    try:
        for proc in procs:
            assert _line(proc, 120).startswith("ready"), proc.pid
        for sdk in sdks:
            sdk.get_prompt(PROMPT)
        deadline = time.monotonic() + 60
        while not all(c.stream_connected for c in sdks):
            if time.monotonic() > deadline:
                raise SystemExit("the SDK clients did not connect their streams in 60 s")
            time.sleep(0.05)
        log(f"  {clients} feed clients connected ({sdk_clients} SDK clients)")
        time.sleep(1)
        version = 1
        cpu_before = served.proc.cpu_seconds()
        for move in range(moves):
            version = 3 - version
            for s in sdk_seen:
                s.pop(version, None)
            for proc in procs:
                assert proc.stdin is not None
                proc.stdin.write(f"expect {version}\n")
            for proc in procs:
                assert _line(proc, 30) == f"expecting {version}"
            sent = time.time()
            status, answer, api_s = writer.call(
                "POST",
                f"/api/prompts/{PROMPT}/labels/production",
                {"version": version, "reason": f"bench move {move}"},
            )
            assert status in (200, 201), (status, answer)
            found = [json.loads(_line(p, 60).removeprefix("done ")) for p in procs]
            deadline = time.monotonic() + 15
            while not all(version in s for s in sdk_seen) and time.monotonic() < deadline:
                time.sleep(0.005)
            heard = [t - sent for f in found for t in f["heard"]]
            fetched = [t - sent for f in found for t in f["fetched"]]
            sdk = [s[version] - sent for s in sdk_seen if version in s]
            missed = sum(f["missed"] for f in found) + sdk_clients - len(sdk)
            out["heard"] += heard
            out["fetched"] += fetched
            out["sdk"] += sdk
            out["missed"] += missed
            out["moves"].append({"api_s": api_s, "slowest_s": max(fetched + sdk, default=0)})
            time.sleep(0.5)
        # The serving instance's CPU per move (the 0.5 s pauses between moves included).
        out["server_cpu_s_per_move"] = (served.proc.cpu_seconds() - cpu_before) / max(1, moves)
    finally:
        for sdk in sdks:
            sdk.close()
        for proc in procs:
            if proc.stdin is not None:
                proc.stdin.close()
        for proc in procs:
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
    return out
