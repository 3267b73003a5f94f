"""The gateway's throughput during a change storm: wrk at c32 on a route of the served
instance, with and without one promotion a second on the writer instance (half of them
to the route under load, half to random others), in interleaved rounds whose order
flips; the promotions' answer times under that load."""

from __future__ import annotations

import json
import os
import random
import statistics
import threading
import time
from typing import Any

from cp_instances import Instance

import harness
from harness import Target, log


def storm(writer: Instance, routes: int, stop: threading.Event, seen: list[float]) -> None:
    """One promotion a second until `stop`: route-0 and a random route in turn, each to
    the other of its prompt's two versions. Appends each answer time (s) to `seen`."""
    rng = random.Random(11)
    versions: dict[int, int] = {}
    tick = 0
    next_at = time.monotonic()
    while not stop.is_set():
        n = 0 if tick % 2 == 0 or routes == 1 else rng.randrange(1, routes)
        versions[n] = 3 - versions.get(n, 1)
        status, answer, seconds = writer.call(
            "POST",
            f"/api/routes/route-{n}/promote",
            {"prompt": f"prompt-{n}@{versions[n]}", "model": "fast"},
        )
        if status != 201:
            log(f"storm: promotion refused ({status}): {answer}")
        seen.append(seconds)
        tick += 1
        next_at += 1.0
        stop.wait(max(0.0, next_at - time.monotonic()))


def wrk(run_dir: str, served: Instance, secret: str, seconds: int) -> dict[str, Any]:
    path = os.path.join(run_dir, "route-body.json")
    body = {"model": "route:route-0", "messages": [], "pilothouse": {"variables": {"q": "x"}}}
    with open(path, "w") as f:
        json.dump(body, f)
    target = Target(
        "pilothouse", "control plane", served.port, {"Authorization": f"Bearer {secret}"}
    )
    target.proc = served.proc
    return harness.run_wrk(target, 32, seconds, dict(os.environ, BENCH_BODY=path))


def storm_rounds(
    run_dir: str,
    writer: Instance,
    served: Instance,
    secret: str,
    routes: int,
    rounds: int,
    seconds: int,
) -> dict[str, Any]:
    """`rounds` pairs of c32 runs (calm, storm; the order flips each round) on route-0."""
    status, answer, _ = writer.call(
        "POST", "/api/routes/route-0/promote", {"prompt": "prompt-0@1", "model": "fast"}
    )
    assert status in (200, 201), answer
    warm = wrk(run_dir, served, secret, 3)
    assert "rps" in warm and warm["errors"] == 0, warm
    per_round: list[dict[str, Any]] = []
    promote_seconds: list[float] = []
    for rnd in range(rounds):
        result: dict[str, Any] = {"background_busy_pct": harness.background_busy()}
        for kind in ("calm", "storm") if rnd % 2 == 0 else ("storm", "calm"):
            stop = threading.Event()
            thread = None
            if kind == "storm":
                thread = threading.Thread(
                    target=storm, args=(writer, routes, stop, promote_seconds), daemon=True
                )
                thread.start()
            result[kind] = wrk(run_dir, served, secret, seconds)
            stop.set()
            if thread is not None:
                thread.join(30)
            log(f"  round {rnd + 1} c32 {kind}: {harness.brief(result[kind])}")
        per_round.append(result)
    ratios = [r["storm"]["rps"] / r["calm"]["rps"] for r in per_round]
    # CPU per request calm ÷ storm: the same ratio at equal CPU, which the other work on a
    # shared machine does not move (what one promotion a second costs the instance).
    cpu_ratios = [
        r["calm"]["cpu_ms_per_req"] / r["storm"]["cpu_ms_per_req"]
        for r in per_round
        if r["calm"].get("cpu_ms_per_req") and r["storm"].get("cpu_ms_per_req")
    ]
    return {
        "rounds": per_round,
        "calm_rps": statistics.median(r["calm"]["rps"] for r in per_round),
        "storm_rps": statistics.median(r["storm"]["rps"] for r in per_round),
        "ratio": statistics.median(ratios),
        "ratios": ratios,
        "cpu_ratio": statistics.median(cpu_ratios) if cpu_ratios else None,
        "other_on_target_pct": [
            round(r[k]["other_on_target_pct"]) for r in per_round for k in ("calm", "storm")
        ],
        "errors": sum(r[k].get("errors", 0) for r in per_round for k in ("calm", "storm")),
        "promote_under_load_s": promote_seconds,
    }
