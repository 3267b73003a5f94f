"""Semantic diff benchmark: a diff over 500 cases whose old side is in the response cache.

The goal under test (issue 16): the unchanged side costs no provider call, and the diff
finishes within 1.2x the ideal wall time for the changed side, the ideal being the
changed side's 500 calls made alone (the same calls layer, the same concurrency), measured
in the same run.

    .venv/bin/python bench/semantic_diff.py                  # 500 cases, 3 trials
    .venv/bin/python bench/semantic_diff.py --cases 2000 --trials 5

What it does, all on 127.0.0.1 and bounded in time:

1. starts `pilothouse simulate` (model `bench-200`: time to first token 200 ms fixed,
   instant 8-token replies) and `pilothouse serve` in front of it (SQLite in a temp dir),
   creates a key with the `evals` scope and pushes prompt `bench` version 1 (the old side);
2. writes N cases and fills the response cache with the old side's answers (its N calls
   as the diff makes them, cache on);
3. per trial, pushes two fresh versions A and B (the same wording but for a nonce, so
   neither is cached) and measures, alternating which goes first:
     - alone: A's N answers through `GatewayCalls` at the diff's concurrency, with the
       response cache on in an empty folder (each answer looked up and written, as any
       run of the changed side by itself would): what the changed side costs alone;
     - diff: `behaviour.run.run_diff(1 -> B)`, cache on: the old side from the cache, B
       called, every pair compared (lexical similarity), the report built;
   counting the provider's requests (GET /simulator/stats) around each step: the diff must
   add exactly N (none for the old side), and the report must say the old side was
   answered from the cache N times;
4. prints a table per trial, the medians and the ratio diff / alone, the load average and
   the CPU other processes used meanwhile (the machine may be shared), then stops the two
   processes it started (by PID) and removes its temp dir.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import deque
from pathlib import Path
from typing import Any

import httpx
import orjson
from eval_runner import _others_cpu_seconds, free_port, stop, wait_http

ADMIN_TOKEN = "pha-bench-diff-admin"
LATENCY_MS = 200
SCENARIO = f"""\
seed: 1
models:
  bench-200:
    ttft_ms: {LATENCY_MS}
    reply_tokens: 8
"""
CONFIG = """\
providers:
  sim: {{type: openai, base_url: "http://127.0.0.1:{port}/v1"}}
models:
  bench: {{provider: sim, model: bench-200, pricing: {{input_per_mtok: 1, output_per_mtok: 2}}}}
"""


def prompt(nonce: str) -> dict[str, Any]:
    return {
        "messages": [
            {"role": "system", "content": f"Answer in one short sentence. ({nonce})"},
            {"role": "user", "content": "{{question}}"},
        ],
        "variables": {"question": {}},
    }


class Bench:
    def __init__(self, work: Path, cases: int, concurrency: int):
        self.work = work
        self.n = cases
        self.concurrency = concurrency
        self.processes: list[subprocess.Popen[bytes]] = []
        self.sim_url = self.url = self.key = ""

    def start(self) -> None:
        sim_port, port = free_port(), free_port()
        (self.work / "scenario.yaml").write_text(SCENARIO)
        (self.work / "config.yaml").write_text(CONFIG.format(port=sim_port))
        python = [sys.executable, "-m", "pilothouse"]
        self.processes.append(
            subprocess.Popen(
                [*python, "simulate", "--port", str(sim_port), "--scenario", "scenario.yaml"],
                cwd=self.work, stdout=subprocess.DEVNULL,
            )
        )  # fmt: skip
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("PILOTHOUSE_")},
            "PILOTHOUSE_ADMIN_TOKEN": ADMIN_TOKEN,
            "PILOTHOUSE_DATABASE_URL": f"sqlite:///{self.work / 'p.db'}",
            "PILOTHOUSE_LOG_LEVEL": "warning",
        }
        with open(self.work / "serve.log", "wb") as log:
            self.processes.append(
                subprocess.Popen(
                    [*python, "serve", "--port", str(port), "--config", "config.yaml",
                     "--data-dir", str(self.work / "data")],
                    cwd=self.work, env=env, stdout=log, stderr=subprocess.STDOUT,
                )
            )  # fmt: skip
        self.sim_url, self.url = f"http://127.0.0.1:{sim_port}", f"http://127.0.0.1:{port}"
        wait_http(self.sim_url + "/healthz", self.processes[0])
        wait_http(self.url + "/readyz", self.processes[1])
        admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
        created = httpx.post(
            self.url + "/api/keys", json={"name": "bench", "scopes": ["evals"]}, headers=admin
        )
        created.raise_for_status()
        self.key = created.json()["secret"]
        os.environ.update(PILOTHOUSE_URL=self.url, PILOTHOUSE_API_KEY=self.key)
        with open(self.work / "cases.jsonl", "wb") as rows:
            for i in range(self.n):
                question = f"Question {i}: what is a good name for a lighthouse keeper's cat?"
                rows.write(orjson.dumps({"id": f"c{i}", "variables": {"question": question}}))
                rows.write(b"\n")

    def push(self) -> int:
        response = httpx.post(
            self.url + "/api/prompts/bench/versions",
            json=prompt(secrets.token_hex(4)),
            headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
        )
        response.raise_for_status()
        return int(response.json()["version"])

    def provider_requests(self) -> int:
        return int(httpx.get(self.sim_url + "/simulator/stats").json()["requests_total"])

    def spec(self, old: int, new: int) -> tuple[Any, dict[str, Any]]:
        from pilothouse.cli.diff import Request, prepare
        from pilothouse.cli.eval_api import EvalApi

        request = Request(
            old=f"bench@{old}",
            new=f"bench@{new}",
            route=None,
            dataset=str(self.work / "cases.jsonl"),
            model="bench",
            concurrency=self.concurrency,
        )
        api = EvalApi()
        try:
            return prepare(request, api)
        finally:
            api.close()

    def diff(self, old: int, new: int) -> dict[str, Any]:
        """run_diff(old -> new) with the response cache on; returns the report."""
        from pilothouse.behaviour.run import run_diff
        from pilothouse.evals.cache import ResponseCache
        from pilothouse.evals.calls import GatewayCalls

        spec, header = self.spec(old, new)

        async def go() -> dict[str, Any]:
            calls = GatewayCalls(
                self.url, self.key, concurrency=self.concurrency, run_id=header["id"],
                cache=ResponseCache(self.work / "cache"),
            )  # fmt: skip
            try:
                return await run_diff(spec, calls, header)
            finally:
                await calls.close()

        return asyncio.run(go())

    def alone(self, version: int, cache_dir: Path) -> int:
        """One side by itself: its N calls through GatewayCalls with the response cache in
        `cache_dir` (each answer looked up, then written), as the runner makes them."""
        from pilothouse.evals.cache import ResponseCache
        from pilothouse.evals.calls import GatewayCalls

        spec, _ = self.spec(version, version)
        target, cases = spec.new, deque(spec.cases)

        async def go() -> int:
            calls = GatewayCalls(
                self.url, self.key, concurrency=self.concurrency, run_id="bench-alone",
                cache=ResponseCache(cache_dir),
            )  # fmt: skip

            async def worker() -> None:
                while cases:
                    case = cases.popleft()
                    body, headers = target.request(case, spec.seed, 0)
                    await calls.chat(body, headers, 0, identity=target.identity, cacheable=True)

            try:
                await asyncio.gather(*(worker() for _ in range(self.concurrency)))
            finally:
                await calls.close()
            return int(calls.counts["infra_failures"])

        return asyncio.run(go())

    def measured(self, step: Any) -> dict[str, Any]:
        mine = [os.getpid(), *(p.pid for p in self.processes)]
        others_before = _others_cpu_seconds(mine)
        requests_before = self.provider_requests()
        cpu_before = time.process_time()
        started = time.perf_counter()
        outcome = step()
        wall = time.perf_counter() - started
        return {
            "wall_s": round(wall, 3),
            "cpu_s": round(time.process_time() - cpu_before, 3),
            "provider_requests": self.provider_requests() - requests_before,
            "others_cores": round((_others_cpu_seconds(mine) - others_before) / wall, 2),
            "outcome": outcome,
        }

    def stop(self) -> None:
        for process in reversed(self.processes):
            stop(process)


def main(args: argparse.Namespace) -> int:
    work = Path(tempfile.mkdtemp(prefix="pilothouse-bench-diff-"))
    bench = Bench(work, args.cases, args.concurrency)
    load_before = os.getloadavg()
    rows = []
    try:
        bench.start()
        old = bench.push()
        fill = bench.measured(lambda: bench.alone(old, work / "cache"))
        print(f"filled the cache with the old side: {fill['provider_requests']} provider "
              f"requests in {fill['wall_s']} s", file=sys.stderr)  # fmt: skip
        for trial in range(args.trials):
            a, b = bench.push(), bench.push()
            steps = [
                ("alone", lambda a=a, t=trial: bench.alone(a, work / f"alone-cache-{t}")),
                ("diff", lambda b=b: bench.diff(old, b)),
            ]
            if trial % 2:
                steps.reverse()
            row: dict[str, Any] = {"trial": trial + 1}
            for name, step in steps:
                row[name] = bench.measured(step)
            report = row["diff"].pop("outcome")
            row["diff"]["sides"] = report["calls"]["sides"]
            row["diff"]["changed_cases"] = len(report["changed_cases"])
            row["diff"]["incomplete"] = len(report["incomplete"])
            row["alone"]["failures"] = row["alone"].pop("outcome")
            rows.append(row)
            print(f"  trial {trial + 1}: alone {row['alone']['wall_s']} s, diff "
                  f"{row['diff']['wall_s']} s", file=sys.stderr)  # fmt: skip
    finally:
        bench.stop()
        shutil.rmtree(work, ignore_errors=True)
    report_rows(rows, args, load_before)
    return 0


def report_rows(rows: list[dict[str, Any]], args: argparse.Namespace, load: Any) -> None:
    n, conc = args.cases, args.concurrency
    ideal = n * LATENCY_MS / 1000 / conc
    print(f"\nSemantic diff, {n} cases, concurrency {conc}, simulator ttft {LATENCY_MS} ms; "
          f"{os.cpu_count()} cores; load average before "
          f"{', '.join(f'{x:.2f}' for x in load)}; theoretical floor {ideal:.1f} s\n")  # fmt: skip
    print("| trial | alone s | diff s | diff / alone | provider requests (alone / diff) "
          "| old side cached | client CPU s (alone / diff) | others (cores, alone / diff) |")  # fmt: skip
    print("|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        alone, diff = r["alone"], r["diff"]
        print(f"| {r['trial']} | {alone['wall_s']:.2f} | {diff['wall_s']:.2f} "
              f"| {diff['wall_s'] / alone['wall_s']:.2f}x "
              f"| {alone['provider_requests']} / {diff['provider_requests']} "
              f"| {diff['sides']['old'].get('cached', 0)} of {n} "
              f"| {alone['cpu_s']:.2f} / {diff['cpu_s']:.2f} "
              f"| {alone['others_cores']:.2f} / {diff['others_cores']:.2f} |")  # fmt: skip
    alone_med = statistics.median(r["alone"]["wall_s"] for r in rows)
    diff_med = statistics.median(r["diff"]["wall_s"] for r in rows)
    ratios = [r["diff"]["wall_s"] / r["alone"]["wall_s"] for r in rows]
    zero = all(
        r["diff"]["provider_requests"] == n and r["diff"]["sides"]["old"].get("called", 0) == 0
        for r in rows
    )
    print(f"\nmedians: alone {alone_med:.2f} s, diff {diff_med:.2f} s; median ratio "
          f"{statistics.median(ratios):.2f}x (per trial: "
          f"{', '.join(f'{x:.2f}' for x in ratios)})")  # fmt: skip
    print(f"goal (no provider call for the unchanged side): {'meets' if zero else 'MISSES'}")
    verdict = "meets" if statistics.median(ratios) <= 1.2 else "MISSES"
    print(f"goal (diff <= 1.2x the changed side alone): {verdict}")
    print(f"load average after: {', '.join(f'{x:.2f}' for x in os.getloadavg())}")


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--cases", type=int, default=500)
    parser.add_argument("--trials", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=50)
    return parser.parse_args(argv)


if __name__ == "__main__":
    sys.exit(main(parse(sys.argv[1:])))
