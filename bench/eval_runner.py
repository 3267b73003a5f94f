"""Eval runner benchmark: wall time and memory of `pilothouse eval run` against the simulator.

The goals under test: 1,000 cases against the simulator with a fixed 200 ms latency at
concurrency 50 finish within 1.2x of the ideal (cases x latency / concurrency = 4 s), and
memory stays flat (the eval-runner issue); the same 1,000 cases on a matrix of 2 targets
within 1.2x of its ideal (8 s), and a re-run of 10,000 cases answered from the response
cache, the whole `pilothouse eval run` command, in under 10 s (issue 11).

    .venv/bin/python bench/eval_runner.py              # 1k and 3k cases, median of 3 trials
    .venv/bin/python bench/eval_runner.py --trials 1 --sizes 1000,3000,10000
    .venv/bin/python bench/eval_runner.py --alt-src aiohttp=/tmp/scratch/src   # try a change
    .venv/bin/python bench/eval_runner.py --trials 1 --sizes 1000 --matrix-cases 1000 --cached-cases 10000

What it does, all on 127.0.0.1 and bounded in time:

1. writes a scenario (model `bench-200`: ttft 200 ms fixed, no token-rate limit, 8-token
   replies) and starts `pilothouse simulate` on a free port;
2. writes a gateway config (one openai provider pointing at the simulator, SQLite in a temp
   data dir) and starts `pilothouse serve` on a free port with PILOTHOUSE_ADMIN_TOKEN set;
3. creates an API key and a prompt `bench@1` through the admin API;
4. for each size N writes an N-row JSONL dataset and a suite (target bench@1 on model
   `bench`, scorer `length`, repeat 1, concurrency 50), then measures, each in a fresh
   child interpreter (so every measurement starts from the same memory baseline):
     - direct (httpx):   N chat requests at concurrency 50 straight to the simulator, with
                         an httpx.AsyncClient pooled as the runner's is;
     - direct (aiohttp): the same with aiohttp (the gateway's upstream client): the floor;
     - gateway (httpx):  the same N requests through the gateway;
     - eval:   `pilothouse.cli.evals.execute(suite, cache=False)` in-process (the runner
               under test; the response cache off, so every case is called);
     - replay: `execute(suite, replay=<the eval's artifact>)`;
   the child samples its own VmRSS every 5 ms from /proc/self/status during the run and
   reports its CPU time; the parent adds the simulator's and gateway's CPU time (from
   /proc/PID/stat) over the same step, so CPU per request can be compared even when the
   machine is shared. Before each step it waits (up to --quiet-wait s, default 120) for
   other processes to use under 0.3 cores, and each step records how much CPU other
   processes used during it (/proc/stat minus ours): the report says which trials ran on a
   shared machine;
5. with --matrix-cases N: a suite with 2 targets (the prompt on aliases `bench` and
   `bench-b`, both the 200 ms model), N cases, cache off, measured as "eval" is;
6. with --cached-cases N: a suite of N cases run once to fill the response cache, then the
   whole command `pilothouse eval run SUITE` (a fresh process: imports, checks, cache
   reads, scoring, the artifact written, the run stored through the API), timed from the
   outside; and `execute(suite)` in-process for comparison;
7. prints the tables, stops the two processes it started (by PID: SIGTERM, then SIGKILL
   after 15 s) and removes its temp dir (--keep to keep it). Each step is capped at 600 s.

"gateway" minus "direct" is the gateway's cost; "eval" minus "gateway" is the runner's.
Standard library plus what the Pilothouse venv already has (httpx, aiohttp, orjson).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import gc
import json
import os
import platform
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ADMIN_TOKEN = "pha-bench-admin-token"
LATENCY_MS = 200
CONCURRENCY = 50
MODEL_ALIAS = "bench"
PROVIDER_MODEL = "bench-200"
BLASTS = ("direct-httpx", "direct-aiohttp", "gateway-httpx")
STEP_TIMEOUT_S = 600  # one child measurement, at most
QUIET_CORES = 0.3  # other processes' CPU (in cores) below which the machine counts as quiet
QUIET_WAIT_S = 120.0  # set from --quiet-wait
READY_TIMEOUT_S = 30

SCENARIO = f"""\
seed: 1
models:
  {PROVIDER_MODEL}:
    ttft_ms: {LATENCY_MS}        # fixed; no tokens_per_second: tokens are instant
    reply_tokens: 8
"""

PROMPT = {
    "messages": [
        {"role": "system", "content": "Answer in one short sentence."},
        {"role": "user", "content": "{{question}}"},
    ],
    "variables": {"question": {}},
    "labels": ["production"],
}

SUITE = f"""\
name: bench-eval-runner
owner: bench
target: {{prompt: "bench@1", model: {MODEL_ALIAS}}}
dataset: cases.jsonl
repeat: 1
concurrency: {CONCURRENCY}
seed: 0
scorers:
  - {{type: length, max_chars: 4000, threshold: 1.0}}
gate: {{max_invalid_rate: 0.0, max_error_rate: 0.0}}
"""


# --------------------------------------------------------------------------- memory


def _status_kb(field: str) -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


class RssSampler:
    """VmRSS of this process, sampled every `interval` s in a thread; `peak` is the max."""

    def __init__(self, interval: float = 0.005):
        self.interval = interval
        self.peak_kb = 0
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.peak_kb = max(self.peak_kb, _status_kb("VmRSS"))
            self.samples += 1
            self._stop.wait(self.interval)

    def __enter__(self) -> RssSampler:
        self.peak_kb = _status_kb("VmRSS")
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak_kb = max(self.peak_kb, _status_kb("VmRSS"), 0)


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _proc_cpu_seconds(pid: int) -> float:
    """utime + stime of another process (one we started), from /proc/PID/stat."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _system_busy_seconds() -> float:
    """CPU seconds the whole machine has been busy (all cores), from /proc/stat."""
    with open("/proc/stat") as stat:
        fields = [int(x) for x in stat.readline().split()[1:]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields[:8]
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def _others_cpu_seconds(mine: list[int]) -> float:
    """Busy CPU seconds so far minus those of `mine` (processes we started, and us)."""
    own = 0.0
    for pid in mine:
        with contextlib.suppress(OSError):
            own += _proc_cpu_seconds(pid)
    return _system_busy_seconds() - own


def _mb(kb: int) -> float:
    return round(kb / 1024, 1)


# --------------------------------------------------------------------------- child workers


def _rendered_body(model: str, question: str, seed: int) -> dict[str, Any]:
    # What the runner sends for one case (target bench@1 rendered, seed + repeat 0).
    return {
        "model": model,
        "messages": [
            {"role": "system", "content": "Answer in one short sentence."},
            {"role": "user", "content": question},
        ],
        "seed": seed,
    }


def _question(i: int) -> str:
    return f"Question number {i}: what is a good name for a lighthouse keeper's cat?"


async def _blast(base_url: str, path: str, model: str, n: int, headers: dict[str, str]) -> int:
    import httpx

    errors = 0
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(n):
        queue.put_nowait(i)
    limits = httpx.Limits(
        max_connections=CONCURRENCY * 2, max_keepalive_connections=CONCURRENCY * 2
    )
    async with httpx.AsyncClient(
        base_url=base_url, headers=headers, timeout=60, limits=limits
    ) as client:

        async def worker() -> None:
            nonlocal errors
            while not queue.empty():
                i = queue.get_nowait()
                body = _rendered_body(model, _question(i), 0)
                try:
                    response = await client.post(path, json=body)
                except httpx.TransportError:
                    errors += 1  # counted, not retried (the runner retries these)
                    continue
                if response.status_code != 200:
                    errors += 1
                response.json()

        await asyncio.gather(*(worker() for _ in range(min(CONCURRENCY, n))))
    return errors


async def _blast_aiohttp(
    base_url: str, path: str, model: str, n: int, headers: dict[str, str]
) -> int:
    """The same requests with aiohttp (the client the gateway itself uses upstream)."""
    import aiohttp
    import orjson

    errors = 0
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(n):
        queue.put_nowait(i)
    connector = aiohttp.TCPConnector(limit=CONCURRENCY * 2)
    async with aiohttp.ClientSession(
        base_url=base_url, headers=headers, connector=connector
    ) as session:

        async def worker() -> None:
            nonlocal errors
            while not queue.empty():
                i = queue.get_nowait()
                body = orjson.dumps(_rendered_body(model, _question(i), 0))
                try:
                    async with session.post(
                        path, data=body, headers={"content-type": "application/json"}
                    ) as response:
                        if response.status != 200:
                            errors += 1
                        orjson.loads(await response.read())
                except (TimeoutError, aiohttp.ClientError):
                    errors += 1

        await asyncio.gather(*(worker() for _ in range(min(CONCURRENCY, n))))
    return errors


def worker_main(args: argparse.Namespace) -> None:
    """One measurement in this (fresh) interpreter; prints one JSON line."""
    import orjson

    # Import what execute() imports lazily, so "before" is after imports, not before.
    import pilothouse.cli.evals as cli_evals
    from pilothouse.evals import calls, datasets, report, runner, suite  # noqa: F401

    gc.collect()
    before_kb = _status_kb("VmRSS")
    result: dict[str, Any] = {"mode": args.worker, "cases": args.cases}
    profiler = None
    if args.profile:
        import cProfile

        profiler = cProfile.Profile()
    mine = [os.getpid(), *(int(p) for p in (args.server_pids or "").split(",") if p)]
    others_before = _others_cpu_seconds(mine)
    cpu_before = _cpu_seconds()
    with RssSampler() as sampler:
        started = time.perf_counter()
        if profiler:
            profiler.enable()
        if args.worker in BLASTS:
            target, client = args.worker.split("-")
            headers = {"Authorization": f"Bearer {args.key}"} if target == "gateway" else {}
            model = PROVIDER_MODEL if target == "direct" else MODEL_ALIAS
            blast = _blast if client == "httpx" else _blast_aiohttp
            result["errors"] = asyncio.run(
                blast(args.url, "/v1/chat/completions", model, args.cases, headers)
            )
            artifact = None
        else:
            artifact = cli_evals.execute(
                Path(args.suite), replay=args.replay, cache=not args.no_cache
            )
        if profiler:
            profiler.disable()
        wall = time.perf_counter() - started
    result["cpu_s"] = round(_cpu_seconds() - cpu_before, 3)
    # What the rest of the machine used meanwhile: a shared machine skews wall times.
    result["others_cores"] = round((_others_cpu_seconds(mine) - others_before) / wall, 2)
    if profiler:
        profiler.dump_stats(args.profile)
    after_kb = _status_kb("VmRSS")  # the artifact is still held here
    if artifact is not None:
        blob = orjson.dumps(artifact)
        result["artifact_bytes"] = len(blob)
        result["run_wall_s"] = artifact["stats"]["wall_seconds"]
        result["calls"] = artifact["stats"]["calls"]
        result["cache_hits"] = artifact["summary"]["cache"]["hits"]
        result["errors"] = sum(t["errors"] for t in artifact["summary"]["targets"].values())
        result["passed"] = artifact["passed"]
        if args.out:
            Path(args.out).write_bytes(blob)
        del blob, artifact
    gc.collect()
    result.update(
        wall_s=round(wall, 3),
        rss_before_mb=_mb(before_kb),
        rss_peak_mb=_mb(sampler.peak_kb),
        rss_after_mb=_mb(after_kb),
        rss_freed_mb=_mb(_status_kb("VmRSS")),
        hwm_mb=_mb(_status_kb("VmHWM")),
        rss_samples=sampler.samples,
    )
    print(json.dumps(result), flush=True)


# --------------------------------------------------------------------------- processes


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_http(url: str, process: subprocess.Popen[bytes], timeout: float = READY_TIMEOUT_S) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"process {process.pid} exited ({process.returncode}) before {url}")
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"{url} did not answer within {timeout} s")


def stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM this PID, SIGKILL it if it has not exited within 15 s."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=15)


def child(
    extra: list[str], env: dict[str, str], servers: dict[str, int], src: str | None = None
) -> dict[str, Any]:
    """Run one measurement in a fresh interpreter; add the servers' CPU seconds during it."""
    command = [sys.executable, str(Path(__file__).resolve()), *extra]
    if src:  # import pilothouse from another src/ tree (a scratch copy with a change)
        env = {**env, "PYTHONPATH": src + os.pathsep + env.get("PYTHONPATH", "")}
    waited = wait_quiet(list(servers.values()))
    command += ["--server-pids", ",".join(str(pid) for pid in servers.values())]
    cpu_before = {name: _proc_cpu_seconds(pid) for name, pid in servers.items()}
    load1 = os.getloadavg()[0]
    try:
        done = subprocess.run(
            command, capture_output=True, text=True, env=env, timeout=STEP_TIMEOUT_S
        )
    except subprocess.TimeoutExpired:  # subprocess.run killed it
        failure = f"{' '.join(extra[:2])}: no result within {STEP_TIMEOUT_S} s"
        print("  FAILED " + failure, file=sys.stderr, flush=True)
        return {"failed": failure, "load1": load1}
    if done.returncode != 0:
        failure = f"{' '.join(extra[:2])} exited {done.returncode}: {done.stderr.strip()[-600:]}"
        print("  FAILED " + failure, file=sys.stderr, flush=True)
        return {"failed": failure, "load1": load1}
    result = dict(json.loads(done.stdout.strip().splitlines()[-1]))
    result["load1"] = load1
    result["waited_for_quiet_s"] = waited
    for name, pid in servers.items():
        result[f"{name}_cpu_s"] = round(_proc_cpu_seconds(pid) - cpu_before[name], 3)
    return result


def wait_quiet(mine: list[int]) -> float:
    """Wait (up to --quiet-wait s) until other processes use under QUIET_CORES of CPU."""
    started = time.monotonic()
    while True:
        before = _others_cpu_seconds([os.getpid(), *mine])
        time.sleep(1.0)
        others = _others_cpu_seconds([os.getpid(), *mine]) - before
        waited = time.monotonic() - started
        if others < QUIET_CORES or waited >= QUIET_WAIT_S:
            return round(waited - 1.0, 1)


def busy_processes(mine: set[int]) -> list[str]:
    """Other processes using CPU right now (the machine is shared: say so in the report)."""
    ticks = os.sysconf("SC_CLK_TCK")

    def sample() -> dict[int, tuple[float, str]]:
        out = {}
        for entry in os.listdir("/proc"):
            if not entry.isdigit() or int(entry) in mine or int(entry) == os.getpid():
                continue
            try:
                with open(f"/proc/{entry}/stat") as stat:
                    raw = stat.read()
                with open(f"/proc/{entry}/cmdline", "rb") as cmdline:
                    name = cmdline.read().replace(b"\0", b" ").decode(errors="replace")[:90]
            except OSError:
                continue
            fields = raw.rsplit(")", 1)[1].split()
            out[int(entry)] = ((int(fields[11]) + int(fields[12])) / ticks, name)
        return out

    first = sample()
    time.sleep(1.0)
    second = sample()
    busy = [
        (second[pid][0] - first[pid][0], second[pid][1])
        for pid in second
        if pid in first and second[pid][0] - first[pid][0] >= 0.05
    ]
    return [f"{share * 100:.0f}% {name}" for share, name in sorted(busy, reverse=True)]


# --------------------------------------------------------------------------- orchestration


def write_suite(directory: Path, n: int, *, matrix: bool = False) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    with open(directory / "cases.jsonl", "w") as rows:
        for i in range(n):
            rows.write(json.dumps({"id": f"c{i}", "variables": {"question": _question(i)}}) + "\n")
    path = directory / "suite.yaml"
    text = SUITE
    if matrix:  # the same prompt on two aliases of the 200 ms model: two targets
        text = text.replace(
            f'target: {{prompt: "bench@1", model: {MODEL_ALIAS}}}',
            f'targets: [{{prompt: "bench@1", model: [{MODEL_ALIAS}, {MODEL_ALIAS}-b]}}]',
        )
    path.write_text(text)
    return path


def cli_run(suite: Path, env: dict[str, str], servers: dict[str, int], out: Path) -> dict[str, Any]:
    """The whole `pilothouse eval run SUITE` in a fresh process, timed from the outside."""
    waited = wait_quiet(list(servers.values()))
    others_before = _others_cpu_seconds([os.getpid(), *servers.values()])
    started = time.perf_counter()
    try:
        done = subprocess.run(
            [sys.executable, "-m", "pilothouse", "eval", "run", str(suite), "--output", str(out)],
            capture_output=True, text=True, env=env, timeout=STEP_TIMEOUT_S,
        )  # fmt: skip
    except subprocess.TimeoutExpired:
        return {"failed": f"eval run {suite}: no result within {STEP_TIMEOUT_S} s"}
    wall = time.perf_counter() - started
    if done.returncode != 0:
        failure = f"eval run exited {done.returncode}: {done.stderr.strip()[-600:]}"
        print("  FAILED " + failure, file=sys.stderr, flush=True)
        return {"failed": failure}
    artifact = json.loads(out.read_text())
    return {
        "wall_s": round(wall, 3),
        "run_wall_s": artifact["stats"]["wall_seconds"],
        "cache_hits": artifact["summary"]["cache"]["hits"],
        "cache_misses": artifact["summary"]["cache"]["misses"],
        "calls": artifact["stats"]["calls"],
        "passed": artifact["passed"],
        "artifact_bytes": out.stat().st_size,
        "waited_for_quiet_s": waited,
        "others_cores": round(
            (_others_cpu_seconds([os.getpid(), *servers.values()]) - others_before) / wall, 2
        ),
    }


def main(args: argparse.Namespace) -> int:
    import httpx

    sizes = [int(s) for s in args.sizes.split(",")]
    if args.profile_dir:
        Path(args.profile_dir).mkdir(parents=True, exist_ok=True)
    started_processes: list[subprocess.Popen[bytes]] = []
    work = Path(tempfile.mkdtemp(prefix="pilothouse-evalbench-"))
    rows: list[dict[str, Any]] = []
    context: dict[str, Any] = {
        "date": dt.datetime.now().strftime("%Y-%m-%d %H:%M"),
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "load_before": os.getloadavg(),
        "busy_before": busy_processes(set()),
    }
    try:
        scenario = work / "scenario.yaml"
        scenario.write_text(SCENARIO)
        sim_port = free_port()
        with open(work / "simulate.log", "wb") as sim_log:  # the child keeps its own copy
            sim = subprocess.Popen(
                [sys.executable, "-m", "pilothouse", "simulate", "--host", "127.0.0.1",
                 "--port", str(sim_port), "--scenario", str(scenario)],
                stdout=sim_log, stderr=subprocess.STDOUT,
            )  # fmt: skip
        started_processes.append(sim)
        sim_url = f"http://127.0.0.1:{sim_port}"
        wait_http(sim_url + "/healthz", sim)

        data_dir = work / "data"
        data_dir.mkdir()
        config = work / "pilothouse.yaml"
        config.write_text(
            f"""\
providers:
  sim:
    type: openai
    base_url: {sim_url}/v1
    api_key_env: SIM_API_KEY
    timeout_seconds: 30
models:
  {MODEL_ALIAS}:
    provider: sim
    model: {PROVIDER_MODEL}
    pricing: {{input_per_mtok: 0.15, output_per_mtok: 0.60}}
  {MODEL_ALIAS}-b:
    provider: sim
    model: {PROVIDER_MODEL}
    pricing: {{input_per_mtok: 0.15, output_per_mtok: 0.60}}
"""
        )
        gw_port = free_port()
        gw_env = {
            **os.environ,
            "PILOTHOUSE_ADMIN_TOKEN": ADMIN_TOKEN,
            "PILOTHOUSE_DATABASE_URL": f"sqlite:///{data_dir / 'pilothouse.db'}",
            "SIM_API_KEY": "sim-secret",
        }
        with open(work / "serve.log", "wb") as gw_log:
            gateway = subprocess.Popen(
                [sys.executable, "-m", "pilothouse", "serve", "--host", "127.0.0.1",
                 "--port", str(gw_port), "--config", str(config), "--data-dir", str(data_dir)],
                stdout=gw_log, stderr=subprocess.STDOUT, env=gw_env,
            )  # fmt: skip
        started_processes.append(gateway)
        gw_url = f"http://127.0.0.1:{gw_port}"
        wait_http(gw_url + "/readyz", gateway)
        servers = {"sim": sim.pid, "gw": gateway.pid}

        with httpx.Client(
            base_url=gw_url, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}, timeout=30
        ) as admin:
            created = admin.post("/api/keys", json={"name": "bench-evals", "scopes": ["evals"]})
            assert created.status_code == 201, created.text
            key = str(created.json()["secret"])
            prompt = admin.post("/api/prompts/bench/versions", json=PROMPT)
            assert prompt.status_code in (200, 201), prompt.text

        env = {
            **os.environ,
            "PILOTHOUSE_URL": gw_url,
            "PILOTHOUSE_API_KEY": key,
            "PILOTHOUSE_ADMIN_TOKEN": "",  # the eval must run as the application key
            "PILOTHOUSE_DATA_DIR": str(work / "cli"),
        }
        # Warm both servers (connections, first-request paths) before measuring.
        child(["--worker", "gateway-httpx", "--url", gw_url, "--key", key, "--cases", "200"],
              env, servers)  # fmt: skip

        variants: list[tuple[str, str | None]] = [("repo", None)] + [
            (spec.split("=", 1)[0], spec.split("=", 1)[1]) if "=" in spec else ("alt", spec)
            for spec in (args.alt_src or "").split(",")
            if spec
        ]
        for n in sizes:
            suite = write_suite(work / f"suite-{n}", n)
            for trial in range(args.trials):
                measured: dict[str, Any] = {"cases": n, "trial": trial + 1}
                for mode, url in (
                    ("direct-httpx", sim_url),
                    ("direct-aiohttp", sim_url),
                    ("gateway-httpx", gw_url),
                ):
                    measured[mode] = child(
                        ["--worker", mode, "--url", url, "--key", key, "--cases", str(n)],
                        env,
                        servers,
                    )
                for variant, src in variants:
                    artifact = work / f"suite-{n}" / f"run-{variant}.json"
                    profile = (
                        [f"--profile={args.profile_dir}/eval-{variant}-{n}-{trial + 1}.prof"]
                        if args.profile_dir
                        else []
                    )
                    measured[f"eval-{variant}"] = child(
                        ["--worker", "eval", "--suite", str(suite), "--cases", str(n),
                         "--out", str(artifact), "--no-cache", *profile],
                        env, servers, src,
                    )  # fmt: skip
                    measured[f"replay-{variant}"] = child(
                        ["--worker", "replay", "--suite", str(suite), "--cases", str(n),
                         "--replay", str(artifact)],
                        env, servers, src,
                    )  # fmt: skip
                rows.append(measured)
                print(
                    f"  {n} cases, trial {trial + 1}: "
                    + ", ".join(f"{k} {v.get('wall_s', 'FAILED')} s" for k, v in
                                measured.items() if isinstance(v, dict))
                    + f" (others {measured['eval-repo'].get('others_cores', 'n/a')} cores)",
                    file=sys.stderr,
                    flush=True,
                )  # fmt: skip
        extra_rows(args, work, env, servers, rows)
    finally:
        for process in reversed(started_processes):
            stop(process)
        if args.keep:
            print(f"kept {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)
    context["load_after"] = os.getloadavg()
    report([r for r in rows if "kind" not in r], sizes, args, context, variants)
    report_extra(rows, args)
    if args.json:
        Path(args.json).write_text(json.dumps({"context": context, "rows": rows}, indent=2))
    return 0


def extra_rows(
    args: argparse.Namespace,
    work: Path,
    env: dict[str, str],
    servers: dict[str, int],
    rows: list[dict[str, Any]],
) -> None:
    """The matrix and cached re-run measurements (issue 11), appended to `rows`."""
    if args.matrix_cases:
        n = args.matrix_cases
        suite = write_suite(work / f"matrix-{n}", n, matrix=True)
        for trial in range(args.trials):
            result = child(
                ["--worker", "eval", "--suite", str(suite), "--cases", str(n), "--no-cache"],
                env, servers,
            )  # fmt: skip
            rows.append({"kind": "matrix", "cases": n, "trial": trial + 1, "matrix": result})
            print(f"  matrix {n} cases x 2 targets, trial {trial + 1}: {result.get('wall_s')} s",
                  file=sys.stderr, flush=True)  # fmt: skip
    if args.cached_cases:
        n = args.cached_cases
        suite = write_suite(work / f"cached-{n}", n)
        fill = cli_run(suite, env, servers, work / f"cached-{n}" / "fill.json")
        rows.append({"kind": "cache-fill", "cases": n, "trial": 0, "fill": fill})
        for trial in range(args.trials):
            whole = cli_run(suite, env, servers, work / f"cached-{n}" / f"rerun-{trial}.json")
            inproc = child(
                ["--worker", "eval", "--suite", str(suite), "--cases", str(n)], env, servers
            )
            rows.append(
                {"kind": "cached", "cases": n, "trial": trial + 1, "cli": whole, "execute": inproc}
            )
            print(f"  cached re-run of {n} cases, trial {trial + 1}: command {whole.get('wall_s')} s, "
                  f"execute() {inproc.get('wall_s')} s", file=sys.stderr, flush=True)  # fmt: skip


def report_extra(rows: list[dict[str, Any]], args: argparse.Namespace) -> None:
    matrix = [r["matrix"] for r in rows if r.get("kind") == "matrix" and "wall_s" in r["matrix"]]
    if args.matrix_cases:
        n = args.matrix_cases
        ideal = n * 2 * LATENCY_MS / 1000 / CONCURRENCY
        print(f"\nMatrix: {n:,} cases x 2 targets (cache off), ideal {ideal:.1f} s:\n")
        print("| trial | eval s | ratio | runner.run s | calls | errors | others (cores) |")
        print("|---:|---:|---:|---:|---:|---:|---:|")
        for i, m in enumerate(matrix, start=1):
            print(f"| {i} | {m['wall_s']:.2f} | {m['wall_s'] / ideal:.2f}x | {m['run_wall_s']:.2f} "
                  f"| {m['calls']} | {m['errors']} | {m['others_cores']:.2f} |")  # fmt: skip
        if matrix:
            wall = statistics.median(m["wall_s"] for m in matrix)
            verdict = "meets" if wall <= 1.2 * ideal else "MISSES"
            print(f"goal (matrix <= 1.2x ideal): {verdict} ({wall / ideal:.2f}x)")
    cached = [r for r in rows if r.get("kind") == "cached"]
    if args.cached_cases:
        n = args.cached_cases
        fill = next((r["fill"] for r in rows if r.get("kind") == "cache-fill"), {})
        print(f"\nCached re-run: {n:,} cases; the filling run took {fill.get('wall_s', 'FAILED')} s "
              f"({fill.get('cache_misses', '?')} misses):\n")  # fmt: skip
        print("| trial | command s | runner.run s | hits | misses | provider calls | artifact MB "
              "| execute() s | others (cores) |")  # fmt: skip
        print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        for r in cached:
            c, e = r["cli"], r["execute"]
            if "wall_s" not in c:
                print(f"| {r['trial']} | FAILED: {c.get('failed')} |")
                continue
            print(f"| {r['trial']} | {c['wall_s']:.2f} | {c['run_wall_s']:.2f} | {c['cache_hits']} "
                  f"| {c['cache_misses']} | {c['calls']} | {c['artifact_bytes'] / 2**20:.1f} "
                  f"| {e.get('wall_s', float('nan')):.2f} | {c['others_cores']:.2f} |")  # fmt: skip
        walls = [r["cli"]["wall_s"] for r in cached if "wall_s" in r["cli"]]
        if walls:
            wall = statistics.median(walls)
            print(f"goal (cached re-run of {n:,} cases < 10 s, whole command): "
                  f"{'meets' if wall < 10 else 'MISSES'} ({wall:.2f} s)")  # fmt: skip


def report(
    rows: list[dict[str, Any]],
    sizes: list[int],
    args: argparse.Namespace,
    context: dict[str, Any],
    sources: list[tuple[str, str | None]],
) -> None:
    variants = [v for v, _ in sources]

    def med(n: int, mode: str, key: str) -> float:
        """Median over the trials that produced a result (NaN when none did)."""
        values = [r[mode][key] for r in rows if r["cases"] == n and key in r[mode]]
        return float(statistics.median(values)) if values else float("nan")

    load = ", ".join(f"{x:.2f}" for x in context["load_before"])
    print(
        f"\nEval runner benchmark, {context['date']}: {context['cores']} cores, "
        f"Python {context['python']}; simulator ttft {LATENCY_MS} ms fixed, instant tokens, "
        f"8-token replies; concurrency {CONCURRENCY}, repeat 1, scorer `length`; "
        f"median of {args.trials} trial(s). Load average before: {load}."
    )
    if context["busy_before"]:
        print("Other processes using CPU when it started: " + "; ".join(context["busy_before"]))
    for variant in variants:
        ev, rp = f"eval-{variant}", f"replay-{variant}"
        title = "repo src/" if variant == "repo" else f"{variant}: {dict(sources)[variant]}"
        print(f"\nWall time ({title}):\n")
        header = [
            "cases", "ideal s", "eval s", "ratio", "runner.run s", "gateway (httpx) s",
            "direct (httpx) s", "direct (aiohttp) s", "replay s",
        ]  # fmt: skip
        print("| " + " | ".join(header) + " |")
        print("|" + "|".join(["---:"] * len(header)) + "|")
        for n in sizes:
            ideal = n * LATENCY_MS / 1000 / CONCURRENCY
            wall = med(n, ev, "wall_s")
            print(
                f"| {n:,} | {ideal:.1f} | {wall:.2f} | {wall / ideal:.2f}x "
                f"| {med(n, ev, 'run_wall_s'):.2f} | {med(n, 'gateway-httpx', 'wall_s'):.2f} "
                f"| {med(n, 'direct-httpx', 'wall_s'):.2f} "
                f"| {med(n, 'direct-aiohttp', 'wall_s'):.2f} | {med(n, rp, 'wall_s'):.2f} |"
            )
        print(f"\nMemory of the eval process ({title}; VmRSS sampled every 5 ms):\n")
        header = [
            "cases", "RSS before MB", "RSS peak MB", "RSS after MB", "peak - before MB",
            "artifact JSON MB", "replay peak MB",
        ]  # fmt: skip
        print("| " + " | ".join(header) + " |")
        print("|" + "|".join(["---:"] * len(header)) + "|")
        for n in sizes:
            print(
                f"| {n:,} | {med(n, ev, 'rss_before_mb'):.1f} | {med(n, ev, 'rss_peak_mb'):.1f} "
                f"| {med(n, ev, 'rss_after_mb'):.1f} "
                f"| {med(n, ev, 'rss_peak_mb') - med(n, ev, 'rss_before_mb'):.1f} "
                f"| {med(n, ev, 'artifact_bytes') / 2**20:.2f} | {med(n, rp, 'rss_peak_mb'):.1f} |"
            )
        if len(sizes) >= 2:
            a, b = sizes[0], sizes[-1]
            per_k = (med(b, ev, "rss_peak_mb") - med(a, ev, "rss_peak_mb")) / ((b - a) / 1000)
            print(f"\npeak RSS growth: {per_k:.1f} MB per 1,000 cases ({a:,} -> {b:,} cases)")
    print("\nCPU per request, ms (client process / gateway / simulator):\n")
    modes = ["direct-httpx", "direct-aiohttp", "gateway-httpx"] + [f"eval-{v}" for v in variants]
    print("| cases | " + " | ".join(modes) + " |")
    print("|" + "|".join(["---:"] * (len(modes) + 1)) + "|")
    for n in sizes:
        cells = [
            f"{med(n, m, 'cpu_s') / n * 1000:.1f} / {med(n, m, 'gw_cpu_s') / n * 1000:.1f} / "
            f"{med(n, m, 'sim_cpu_s') / n * 1000:.1f}"
            for m in modes
        ]
        print(f"| {n:,} | " + " | ".join(cells) + " |")
    errors = sum(r[m].get("errors", 0) for r in rows for m in r if isinstance(r[m], dict))
    gates = all(r[f"eval-{v}"].get("passed") for r in rows for v in variants)
    print(f"\nerrors across all runs: {errors}; every eval gate passed: {gates}")
    for r in rows:
        for v in r.values():
            if isinstance(v, dict) and "failed" in v:
                print(f"FAILED step ({r['cases']:,} cases, trial {r['trial']}): {v['failed']}")
    print(
        "\nevery trial, eval s (CPU other processes used meanwhile, in cores; "
        "more than ~0.3 means the machine was shared during it):"
    )
    for variant in variants:
        for n in sizes:
            cells = [
                f"{r[f'eval-{variant}'].get('wall_s', 'FAILED')} "
                f"({r[f'eval-{variant}'].get('others_cores', float('nan')):.2f})"
                for r in rows
                if r["cases"] == n
            ]
            print(f"  {variant}, {n:,} cases: " + ", ".join(cells))
    shared = [
        v.get("others_cores", 0.0)
        for r in rows
        for v in r.values()
        if isinstance(v, dict) and v.get("others_cores", 0.0) >= QUIET_CORES
    ]
    print(
        f"steps during which other processes used >= {QUIET_CORES} cores: "
        f"{len(shared)} of {sum(isinstance(v, dict) for r in rows for v in r.values())}"
    )
    for variant in variants:
        for n in sizes:
            ideal = n * LATENCY_MS / 1000 / CONCURRENCY
            wall = med(n, f"eval-{variant}", "wall_s")
            verdict = "meets" if wall <= 1.2 * ideal else "MISSES"
            print(f"goal (<= 1.2x ideal), {variant}, {n:,} cases: {verdict} ({wall / ideal:.2f}x)")
    print(f"load average after: {', '.join(f'{x:.2f}' for x in context['load_after'])}")


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--sizes", default="1000,3000", help="comma-separated case counts")
    parser.add_argument("--trials", type=int, default=3, help="trials per size (median shown)")
    parser.add_argument("--json", default=None, help="also write every measurement here")
    parser.add_argument(
        "--alt-src",
        default=None,
        help="also run the eval and replay importing pilothouse from another src/ directory "
        "(a scratch copy with a proposed change): PATH or NAME=PATH[,NAME=PATH...]; "
        "the gateway and simulator stay the repo's",
    )
    parser.add_argument(
        "--quiet-wait",
        type=float,
        default=120,
        help="before each step, wait up to this many s for other CPU work on the machine to stop",
    )
    parser.add_argument(
        "--matrix-cases", type=int, default=1000, help="cases of the 2-target matrix run (0: skip)"
    )
    parser.add_argument(
        "--cached-cases", type=int, default=10000, help="cases of the cached re-run (0: skip)"
    )
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (logs, artifacts)")
    parser.add_argument("--profile-dir", default=None, help="cProfile each eval run into here")
    # child-process modes (internal)
    parser.add_argument("--worker", choices=[*BLASTS, "eval", "replay"])
    parser.add_argument("--profile", help="(worker) write cProfile stats of the run here")
    parser.add_argument("--server-pids")
    parser.add_argument("--url")
    parser.add_argument("--key")
    parser.add_argument("--suite")
    parser.add_argument("--cases", type=int, default=0)
    parser.add_argument("--out")
    parser.add_argument("--replay")
    parser.add_argument("--no-cache", action="store_true")
    return parser.parse_args(argv)


if __name__ == "__main__":
    arguments = parse(sys.argv[1:])
    QUIET_WAIT_S = arguments.quiet_wait
    if arguments.worker:
        worker_main(arguments)
    else:
        sys.exit(main(arguments))
