"""Pilothouse benchmark orchestrator (run it through bench/run.sh).

One run, loopback only: a fast fixed upstream (nginx, canned JSON and SSE, keep-alive)
is measured directly, then through each target in turn: the floor proxy (floor_proxy.py,
bare aiohttp pass-through), Pilothouse (key auth, request log and metrics on) and LiteLLM.
Every target runs pinned to TARGET_CPU; wrk, the stream client and the upstream nginx run
on LOADGEN_CPU. Every load step is bounded in time; the harness stops only the processes
it started (the session it created for each, SIGTERM then SIGKILL).

Standard library only, so it runs under any python3 (run.sh uses the bench venv's).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

import payloads
import request_log

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
ENV = os.environ.get

PREFIX = ENV("BENCH_PREFIX", "/tmp/pilothouse-bench")
BENCH_PY = ENV("BENCH_PY", os.path.join(PREFIX, "venv/bin/python"))
LITELLM_BIN = os.path.join(PREFIX, "litellm-venv/bin/litellm")
PILOTHOUSE_BIN = ENV("PILOTHOUSE_BIN", os.path.join(REPO, ".venv/bin/pilothouse"))
# Extra Pilothouse builds to compare in the same run, each from another src/ tree:
# PILOTHOUSE_ALT_SRC=/path/src (target pilothouse-alt) or a=/path/src,b=/other/src
# (targets pilothouse-a, pilothouse-b). Used to measure a proposed change before making it.
ALT_SRCS = dict(
    (spec.split("=", 1) if "=" in spec else ("alt", spec))
    for spec in ENV("PILOTHOUSE_ALT_SRC", "").split(",")
    if spec
)
ALT_NAMES = [f"pilothouse-{n}" for n in ALT_SRCS]
RESULTS_DIR = ENV("BENCH_RESULTS", os.path.join(HERE, "results"))

LOADGEN_CPU = ENV("LOADGEN_CPU", "0")
TARGET_CPU = ENV("TARGET_CPU", "1")
CONC = int(ENV("CONC", "32"))
WARMUP_S = int(ENV("WARMUP_S", "5"))
DUR_S = int(ENV("DUR_S", "15"))  # wrk at CONC connections
C1_S = int(ENV("C1_S", "10"))  # wrk at 1 connection
STREAM_SEQ_N = int(ENV("STREAM_SEQ_N", "300"))
STREAM_CONC_N = int(ENV("STREAM_CONC_N", "100000"))
STREAM_CONC_S = float(ENV("STREAM_CONC_S", "10"))
SOAK_S = int(ENV("SOAK_S", "60"))  # sustained load for the RSS check; 600 = the 10-min soak
SOAK_TARGETS = [
    t for t in ENV("SOAK_TARGETS", ",".join(["pilothouse", *ALT_NAMES])).split(",") if t
]
READY_S = float(ENV("READY_S", "180"))
QUIET_WAIT_S = float(ENV("QUIET_WAIT_S", "120"))  # wait this long for other load to stop
DEFAULT_TARGETS = ",".join(
    ["direct", "floor", "pilothouse", request_log.PG_TARGET, *ALT_NAMES, "litellm"]
)
SELECTED = [t.strip() for t in ENV("TARGETS", DEFAULT_TARGETS).split(",") if t.strip()]
SKIP_LITELLM = ENV("SKIP_LITELLM", "0") == "1"
ROUNDS = int(ENV("ROUNDS", "1"))  # >1: targets measured in interleaved rounds; medians reported

HOST = "127.0.0.1"
PORT_UP_JSON, PORT_UP_STREAM = 19081, 19082
PORT_FLOOR, PORT_PILOTHOUSE, PORT_LITELLM = 19091, 19092, 19093
PORT_ALTS = [19094 + i for i in range(len(ALT_SRCS))]
PORT_PILOTHOUSE_PG = 19089
LITELLM_KEY = "sk-pilothouse-bench-0d9c2f4e6a8b"  # local only; LiteLLM needs a master key
UPSTREAM = {
    payloads.MODEL_JSON: f"http://{HOST}:{PORT_UP_JSON}/v1",
    payloads.MODEL_STREAM: f"http://{HOST}:{PORT_UP_STREAM}/v1",
}


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", flush=True)


# ---------------------------------------------------------------------------- processes


class Proc:
    """A process started in its own session, pinned with taskset; stopped by its session."""

    started: list[Proc] = []

    def __init__(self, name: str, argv: list[str], cpu: str, log_path: str, **kw: Any):
        self.name = name
        self.log_path = log_path
        self.logf = open(log_path, "ab")  # noqa: SIM115 - closed in stop()
        env = dict(os.environ)
        env.update(kw.pop("env", {}))
        self.p = subprocess.Popen(
            ["taskset", "-c", cpu, *argv],
            stdin=subprocess.DEVNULL,
            stdout=self.logf,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,  # its own session: we find and stop its whole tree
            **kw,
        )
        self.pid = self.p.pid
        Proc.started.append(self)

    def alive(self) -> bool:
        return self.p.poll() is None

    def members(self) -> list[int]:
        pids = []
        for d in os.listdir("/proc"):
            if d.isdigit():
                try:
                    with open(f"/proc/{d}/stat") as f:
                        st = f.read()
                    if int(st[st.rindex(")") + 2 :].split()[3]) == self.pid:
                        pids.append(int(d))
                except (OSError, ValueError):
                    pass
        return pids

    def cpu_seconds(self) -> float:
        ticks = 0
        for pid in self.members():
            try:
                with open(f"/proc/{pid}/stat") as f:
                    st = f.read()
                fields = st[st.rindex(")") + 2 :].split()
                ticks += int(fields[11]) + int(fields[12])
            except (OSError, ValueError):
                pass
        return ticks / os.sysconf("SC_CLK_TCK")

    def rss_mb(self) -> float:
        kb = 0
        for pid in self.members():
            try:
                with open(f"/proc/{pid}/status") as f:
                    kb += next((int(li.split()[1]) for li in f if li.startswith("VmRSS:")), 0)
            except (OSError, ValueError):
                pass
        return kb / 1024

    def stop(self) -> None:
        if self.alive():
            try:
                os.killpg(self.pid, signal.SIGTERM)
                self.p.wait(timeout=10)
            except ProcessLookupError:
                pass
            except subprocess.TimeoutExpired:
                os.killpg(self.pid, signal.SIGKILL)
                self.p.wait(timeout=5)
        for pid in self.members():  # re-parented leftovers of the session we created
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self.logf.close()
        if self in Proc.started:
            Proc.started.remove(self)

    def tail(self, n: int = 10) -> str:
        with open(self.log_path, "rb") as f:
            return b"\n".join(f.read().splitlines()[-n:]).decode("utf-8", "replace")


def stop_all() -> None:
    for p in reversed(list(Proc.started)):
        try:
            p.stop()
        except Exception as exc:
            log(f"stopping {p.name} (pid {p.pid}): {exc}")


def port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.3)
        return s.connect_ex((HOST, port)) == 0


def post(url: str, body: bytes, headers: dict[str, str], timeout: float = 10) -> tuple[int, bytes]:
    req = urllib.request.Request(
        url, data=body, headers={"Content-Type": "application/json", **headers}, method="POST"
    )
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


# ------------------------------------------------------------------------------ upstream


def _nginx_str(s: str) -> str:
    assert "$" not in s and "'" not in s
    return "'" + s.replace("\\", "\\\\").replace("\n", "\\n") + "'"


def nginx_conf(
    run_dir: str,
    json_port: int = PORT_UP_JSON,
    stream_port: int = PORT_UP_STREAM,
    words: int | None = None,
) -> str:
    """One worker; JSON on one port, SSE (the whole stream in one burst, of `words` words:
    payloads.sse_events) on the other."""
    # a quoted nginx token is at most ~4 KiB: assemble the SSE body from variables
    parts, cur = [], ""
    for e in payloads.sse_events(words):
        frame = f"data: {e}\n\n"
        if len(cur) + len(frame) > 3000:
            parts.append(cur)
            cur = ""
        cur += frame
    parts.append(cur)
    sets = " ".join(f"set $p{i} {_nginx_str(p)};" for i, p in enumerate(parts))
    joined = "".join(f"$p{i}" for i in range(len(parts)))
    tmp = os.path.join(run_dir, "nginx-tmp")
    conf = f"""
worker_processes 1; daemon off; pid {run_dir}/nginx.pid; error_log {run_dir}/nginx.err warn;
events {{ worker_connections 4096; }}
http {{
  access_log off; server_tokens off; tcp_nodelay on;
  keepalive_timeout 300s; keepalive_requests 100000000;
  client_body_temp_path {tmp}/b; proxy_temp_path {tmp}/p; fastcgi_temp_path {tmp}/f;
  uwsgi_temp_path {tmp}/u; scgi_temp_path {tmp}/s; client_body_buffer_size 64k;
  server {{
    listen {HOST}:{json_port} backlog=4096;
    location = /v1/chat/completions {{
      default_type application/json; return 200 {_nginx_str(payloads.completion())};
    }}
    location / {{ return 404; }}
  }}
  server {{
    listen {HOST}:{stream_port} backlog=4096;
    location = /v1/chat/completions {{
      default_type text/event-stream; add_header Cache-Control no-cache;
      {sets}
      return 200 "{joined}";
    }}
    location / {{ return 404; }}
  }}
}}
"""
    os.makedirs(tmp, exist_ok=True)
    path = os.path.join(run_dir, "nginx.conf")
    with open(path, "w") as f:
        f.write(conf)
    return path


# ------------------------------------------------------------------------------- targets


class Target:
    def __init__(
        self,
        name: str,
        desc: str,
        port: int,
        headers: dict[str, str] | None = None,
        start: Callable[[str], Proc] | None = None,
    ):
        self.name = name
        self.desc = desc
        self.port = port
        self.headers = headers or {}
        self._start = start
        self.proc: Proc | None = None

    def url(self, model: str) -> str:
        if self.name == "direct":
            return UPSTREAM[model] + "/chat/completions"
        return f"http://{HOST}:{self.port}/v1/chat/completions"

    def start(self, run_dir: str) -> None:
        if self._start is not None:
            self.proc = self._start(run_dir)

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.stop()


def start_floor(run_dir: str) -> Proc:
    return Proc(
        "floor",
        [BENCH_PY, os.path.join(HERE, "floor_proxy.py")],
        TARGET_CPU,
        os.path.join(run_dir, "floor.log"),
        env={"FLOOR_PORT": str(PORT_FLOOR), "FLOOR_ROUTES": json.dumps(UPSTREAM)},
    )


KEY_SNIPPET = """
import sys
from pilothouse.store import open_store
from pilothouse.policy.keys import create_key
store = open_store(sys.argv[2] if len(sys.argv) > 2 else f"sqlite:///{sys.argv[1]}/pilothouse.db")
store.upgrade()
key, secret = create_key(store, name="bench")
store.close()
print(secret)
"""


def pilothouse_setup(
    run_dir: str, name: str, env: dict[str, str], database_url: str | None = None
) -> tuple[str, str, str]:
    """Data dir with one API key (in `database_url`, else SQLite in the data dir), and a
    config routing the bench models; (data, cfg, key)."""
    data = os.path.join(run_dir, f"{name}-data")
    os.makedirs(data, exist_ok=True)
    py = os.path.join(os.path.dirname(PILOTHOUSE_BIN), "python")
    r = subprocess.run(
        [py, "-c", KEY_SNIPPET, data, *([database_url] if database_url else [])],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **env},
        check=True,
    )
    secret = r.stdout.strip().splitlines()[-1]
    cfg = os.path.join(run_dir, f"{name}.yaml")
    with open(cfg, "w") as f:
        f.write("providers:\n")
        for i, base in enumerate(UPSTREAM.values()):
            f.write(f"  upstream{i}: {{type: openai, base_url: '{base}'}}\n")
        f.write("models:\n")
        for i, model in enumerate(UPSTREAM):
            f.write(f"  {model}: {{provider: upstream{i}, model: {model}}}\n")
    return data, cfg, secret


def snapshot_src(run_dir: str) -> str:
    """A copy of src/ in the run's folder: one version of the code for the whole run, even
    if src/ is being edited meanwhile (pass it as `pilothouse_target`'s `src`)."""
    src = os.path.join(run_dir, "src")
    shutil.copytree(os.path.join(REPO, "src"), src, ignore=shutil.ignore_patterns("__pycache__"))
    return src


def pilothouse_target(
    name: str, port: int, src: str | None, run_dir: str, database_url: str | None = None
) -> Target:
    env = {"PILOTHOUSE_ADMIN_TOKEN": "bench-admin-token"}
    if src:
        env["PYTHONPATH"] = src  # ahead of the editable install
    if database_url:
        env["PILOTHOUSE_DATABASE_URL"] = database_url
    data, cfg, secret = pilothouse_setup(run_dir, name, env, database_url)
    argv = [PILOTHOUSE_BIN, "serve", "--config", cfg, "--data-dir", data]
    argv += ["--host", HOST, "--port", str(port)]
    desc = "Pilothouse (key auth, request log, metrics), 1 process" + (
        f", src={src}" if src else ""
    )
    if database_url:
        desc += ", request log on PostgreSQL"
    return Target(
        name,
        desc,
        port,
        {"Authorization": f"Bearer {secret}"},
        lambda rd: Proc(name, argv, TARGET_CPU, os.path.join(rd, f"{name}.log"), env=env),
    )


def start_litellm(run_dir: str) -> Proc:
    cfg = os.path.join(run_dir, "litellm.yaml")
    with open(cfg, "w") as f:
        f.write("model_list:\n")
        for model, base in UPSTREAM.items():
            f.write(
                f"  - model_name: {model}\n    litellm_params:\n      model: openai/{model}\n"
                f"      api_base: {base}\n      api_key: sk-upstream-unused\n"
            )
        f.write(
            "litellm_settings:\n  telemetry: false\n  drop_params: true\n"
            "general_settings:\n  disable_spend_logs: true\n  disable_error_logs: true\n"
        )
    env = {
        "LITELLM_MASTER_KEY": LITELLM_KEY,
        "LITELLM_LOG": "ERROR",
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",
        "LITELLM_TELEMETRY": "False",
        "DISABLE_ADMIN_UI": "True",
        "NO_DOCS": "True",
    }
    argv = [LITELLM_BIN, "--config", cfg, "--host", HOST, "--port", str(PORT_LITELLM)]
    argv += ["--num_workers", "1"]
    return Proc("litellm", argv, TARGET_CPU, os.path.join(run_dir, "litellm.log"), env=env)


PG_SCHEMA = f"bench_{os.getpid()}_{int(time.time())}"
SETUP_SKIPPED: dict[str, str] = {}  # targets that could not be set up, and why


def build_targets(run_dir: str) -> dict[str, Target]:
    ts = {
        "direct": Target("direct", "the upstream nginx itself, no gateway", PORT_UP_JSON),
        "floor": Target(
            "floor",
            "bench/floor_proxy.py: bare aiohttp pass-through",
            PORT_FLOOR,
            None,
            start_floor,
        ),
    }
    src = None
    if ENV("PILOTHOUSE_SNAPSHOT", "1") == "1" and {"pilothouse", request_log.PG_TARGET} & set(
        SELECTED
    ):
        src = snapshot_src(run_dir)
    if "pilothouse" in SELECTED:
        ts["pilothouse"] = pilothouse_target("pilothouse", PORT_PILOTHOUSE, src, run_dir)
    if request_log.PG_TARGET in SELECTED:
        python = os.path.join(os.path.dirname(PILOTHOUSE_BIN), "python")
        try:
            url = request_log.postgres_url(python, PG_SCHEMA)
        except (subprocess.SubprocessError, OSError) as exc:
            why = getattr(exc, "stderr", "") or str(exc)
            SETUP_SKIPPED[request_log.PG_TARGET] = f"PostgreSQL at {request_log.PG_URL}: {why}"
        else:
            ts[request_log.PG_TARGET] = pilothouse_target(
                request_log.PG_TARGET, PORT_PILOTHOUSE_PG, src, run_dir, url
            )
    for (name, src), port in zip(ALT_SRCS.items(), PORT_ALTS, strict=True):
        if f"pilothouse-{name}" in SELECTED:
            ts[f"pilothouse-{name}"] = pilothouse_target(f"pilothouse-{name}", port, src, run_dir)
    ts["litellm"] = Target(
        "litellm",
        "LiteLLM proxy, 1 uvicorn worker, no DB",
        PORT_LITELLM,
        {"Authorization": f"Bearer {LITELLM_KEY}"},
        start_litellm,
    )
    return ts


# --------------------------------------------------------------------------- measurement


def cpu_jiffies() -> dict[str, tuple[int, int]]:
    out = {}
    with open("/proc/stat") as f:
        for line in f:
            if line.startswith("cpu") and line[3].isdigit():
                name, *vals = line.split()
                v = [int(x) for x in vals]
                out[name] = (sum(v) - v[3] - v[4], sum(v))
    return out


def busy(a: dict[str, tuple[int, int]], b: dict[str, tuple[int, int]], cpu: str) -> float:
    k = f"cpu{cpu}"
    return 100.0 * (b[k][0] - a[k][0]) / max(1, b[k][1] - a[k][1])


def background_busy() -> float:
    """Busy % of the busiest core over 2 s while this run has nothing under load."""
    a = cpu_jiffies()
    time.sleep(2)
    b = cpu_jiffies()
    return max(busy(a, b, k[3:]) for k in b)


def wait_quiet() -> float:
    """Wait (at most QUIET_WAIT_S) until no core is over 15 % busy; return the last reading."""
    deadline = time.time() + QUIET_WAIT_S
    level = background_busy()
    while level > 15 and time.time() < deadline:
        log(f"machine busy ({level:.0f} % on a core) with other work; waiting")
        time.sleep(3)
        level = background_busy()
    return level


def wrk_argv(t: Target, conns: int, seconds: int) -> list[str]:
    argv = ["taskset", "-c", LOADGEN_CPU, "wrk", "-t1", f"-c{conns}", f"-d{seconds}s"]
    argv += ["--timeout", "10s", "-s", os.path.join(HERE, "wrk_post.lua")]
    for k, v in t.headers.items():
        argv += ["-H", f"{k}: {v}"]
    return [*argv, t.url(payloads.MODEL_JSON)]


def parse_wrk(out: str) -> dict[str, Any]:
    line = next((li for li in out.splitlines() if li.startswith("WRK_RESULT ")), None)
    if line is None:
        return {"error": out[-300:]}
    r = json.loads(line.split(" ", 1)[1])
    secs = r["duration_us"] / 1e6
    good = r["requests"] - r["status"]
    return {
        "rps": good / secs if secs else 0.0,
        "requests": r["requests"],
        "errors": r["connect"] + r["read"] + r["write"] + r["status"] + r["timeout"],
        "p50_ms": r["p50_us"] / 1000,
        "p90_ms": r["p90_us"] / 1000,
        "p99_ms": r["p99_us"] / 1000,
        "max_ms": r["max_us"] / 1000,
    }


def other_pct(t: Target, busy_target: float, cpu_s: float, wall: float) -> float:
    """Busy % of the target core not spent by the target's own processes (other work)."""
    return max(0.0, busy_target - (100.0 * cpu_s / wall if t.proc and wall > 0 else 0.0))


def run_wrk(t: Target, conns: int, seconds: int, env: dict[str, str]) -> dict[str, Any]:
    j0 = cpu_jiffies()
    w0 = time.perf_counter()
    c0 = t.proc.cpu_seconds() if t.proc else 0.0
    try:
        r = subprocess.run(
            wrk_argv(t, conns, seconds),
            capture_output=True,
            text=True,
            env=env,
            timeout=seconds + 30,
        )
    except subprocess.TimeoutExpired:
        return {"error": "wrk timed out"}
    res = parse_wrk(r.stdout + r.stderr)
    j1 = cpu_jiffies()
    res["busy_loadgen"] = busy(j0, j1, LOADGEN_CPU)
    res["busy_target"] = busy(j0, j1, TARGET_CPU)
    cpu_s = (t.proc.cpu_seconds() - c0) if t.proc else 0.0
    res["other_on_target_pct"] = other_pct(t, res["busy_target"], cpu_s, time.perf_counter() - w0)
    if t.proc and res.get("requests"):
        res["cpu_ms_per_req"] = cpu_s * 1000 / res["requests"]
        res["rss_mb"] = t.proc.rss_mb()
    return res


def stream_argv(t: Target, conc: int, n: int, max_s: float, warmup: int, out: str) -> list[str]:
    argv = ["taskset", "-c", LOADGEN_CPU, BENCH_PY, os.path.join(HERE, "stream_client.py")]
    argv += ["--url", t.url(payloads.MODEL_STREAM), "--model", payloads.MODEL_STREAM]
    argv += ["--conc", str(conc), "--n", str(n), "--max-seconds", str(max_s)]
    argv += ["--warmup", str(warmup), "--out", out]
    for k, v in t.headers.items():
        argv += ["--header", f"{k}: {v}"]
    return argv


def run_stream(t: Target, conc: int, n: int, max_s: float, out: str) -> dict[str, Any]:
    c0 = t.proc.cpu_seconds() if t.proc else 0.0
    j0 = cpu_jiffies()
    try:
        r = subprocess.run(
            stream_argv(t, conc, n, max_s, max(10, 2 * conc), out),
            capture_output=True,
            text=True,
            timeout=max_s + 90,
        )
    except subprocess.TimeoutExpired:
        return {"error": "stream client timed out"}
    if r.returncode != 0 or not os.path.exists(out):
        return {"error": (r.stderr or r.stdout)[-400:]}
    with open(out) as f:
        res: dict[str, Any] = json.load(f)
    if t.proc and res.get("ok"):
        # includes the client's warm-up streams' share: counted in, as 2*conc extra streams
        done = res["ok"] + max(10, 2 * conc)
        res["cpu_ms_per_stream"] = (t.proc.cpu_seconds() - c0) * 1000 / done
    res["busy_target"] = busy(j0, cpu_jiffies(), TARGET_CPU)
    return res


def smoke(t: Target) -> list[str]:
    """Check the target really relays the upstream's answers; returns problems."""
    problems = []
    st, body = post(
        t.url(payloads.MODEL_JSON), payloads.request_body(payloads.MODEL_JSON), t.headers
    )
    try:
        text = json.loads(body)["choices"][0]["message"]["content"] if st == 200 else None
    except (ValueError, KeyError, IndexError, TypeError):
        text = None
    if text != payloads.REPLY:
        problems.append(f"json: HTTP {st} {body[:200]!r}")
    req = payloads.request_body(payloads.MODEL_STREAM, stream=True)
    st, body = post(t.url(payloads.MODEL_STREAM), req, t.headers)
    got = []
    for line in body.decode("utf-8", "replace").splitlines():
        if line.startswith("data:") and line[5:].strip() != "[DONE]":
            try:
                for ch in json.loads(line[5:]).get("choices") or ():
                    got.append((ch.get("delta") or {}).get("content") or "")
            except ValueError:
                pass
    if st != 200 or "".join(got) != payloads.REPLY or b"data: [DONE]" not in body:
        problems.append(f"stream: HTTP {st} {body[:200]!r}")
    return problems


def wait_ready(t: Target) -> str | None:
    """None when a real completion succeeds; else why not."""
    t0 = time.time()
    while time.time() - t0 < READY_S:
        if t.proc and not t.proc.alive():
            return f"exited with {t.proc.p.returncode}: {t.proc.tail()}"
        if port_open(t.port):
            try:
                st, _ = post(
                    t.url(payloads.MODEL_JSON),
                    payloads.request_body(payloads.MODEL_JSON),
                    t.headers,
                    timeout=5,
                )
                if st == 200:
                    return None
            except OSError:
                pass
        time.sleep(0.5)
    return f"not ready after {READY_S:.0f} s" + (f": {t.proc.tail()}" if t.proc else "")


def soak(t: Target, raw: str, env: dict[str, str]) -> dict[str, Any]:
    """wrk at CONC plus 8 concurrent streams for SOAK_S seconds; RSS sampled every ~5 s."""
    assert t.proc is not None
    before = t.proc.rss_mb()
    c0 = t.proc.cpu_seconds()
    out = os.path.join(raw, f"{t.name}-soak-stream.json")
    wrk = subprocess.Popen(
        wrk_argv(t, CONC, SOAK_S),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    streams = subprocess.Popen(
        stream_argv(t, 8, 10**9, SOAK_S, 16, out),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    samples = [(0.0, before)]
    t0 = time.time()
    deadline = t0 + SOAK_S + 60
    while (wrk.poll() is None or streams.poll() is None) and time.time() < deadline:
        time.sleep(min(5.0, max(0.5, SOAK_S / 12)))
        samples.append((round(time.time() - t0, 1), t.proc.rss_mb()))
    for p in (wrk, streams):  # bounded: both end by themselves; this is the backstop
        if p.poll() is None:
            p.kill()
    wrk_out = wrk.communicate()[0] or ""
    after = t.proc.rss_mb()
    w = parse_wrk(wrk_out)
    s: dict[str, Any] = {}
    if os.path.exists(out):
        with open(out) as f:
            s = json.load(f)
    total = (w.get("requests") or 0) + (s.get("ok") or 0)
    mid = samples[len(samples) // 2][1]
    return {
        "seconds": SOAK_S,
        "rss_before_mb": before,
        "rss_mid_mb": mid,
        "rss_after_mb": after,
        "rss_max_mb": max(v for _, v in samples),
        "samples": samples,
        "requests": w.get("requests"),
        "rps": w.get("rps"),
        "errors": (w.get("errors") or 0) + (s.get("errors") or 0),
        "streams": s.get("ok"),
        "cpu_ms_per_req": (t.proc.cpu_seconds() - c0) * 1000 / total if total else None,
    }


def measure(t: Target, run_dir: str, raw: str, rnd: int) -> dict[str, Any]:
    res: dict[str, Any] = {"name": t.name, "desc": t.desc}
    raw = os.path.join(raw, f"round{rnd + 1}")
    os.makedirs(raw, exist_ok=True)
    env = dict(os.environ, BENCH_BODY=os.path.join(run_dir, "body.json"))
    res["background_busy_pct"] = wait_quiet()
    log(f"{t.name}: start")
    t.start(run_dir)
    try:
        why = wait_ready(t)
        if why:
            res["skipped"] = why[-600:]
            log(f"{t.name}: not measured: {why[-300:]}")
            return res
        problems = smoke(t)
        if problems:
            res["skipped"] = "smoke check failed: " + "; ".join(problems)
            log(f"{t.name}: {res['skipped']}")
            return res
        if t.proc:
            res["rss_idle_mb"] = t.proc.rss_mb()
        log(f"{t.name}: warm-up {WARMUP_S} s at c{CONC}")
        run_wrk(t, CONC, WARMUP_S, env)
        log(f"{t.name}: wrk c{CONC} {DUR_S} s")
        if t.name.startswith("pilothouse"):
            with request_log.GaugeSampler(t.port) as sampler:
                res["c32"] = run_wrk(t, CONC, DUR_S, env)
            res["c32"]["request_log"] = sampler.summary()
        else:
            res["c32"] = run_wrk(t, CONC, DUR_S, env)
        log(f"{t.name}:   {brief(res['c32'])}")
        log(f"{t.name}: wrk c1 {C1_S} s")
        res["c1"] = run_wrk(t, 1, C1_S, env)
        log(f"{t.name}:   {brief(res['c1'])}")
        log(f"{t.name}: {STREAM_SEQ_N} sequential streams")
        res["seq"] = run_stream(t, 1, STREAM_SEQ_N, 60, os.path.join(raw, f"{t.name}-seq.json"))
        log(f"{t.name}:   {brief(res['seq'])}")
        log(f"{t.name}: streams at c{CONC} (<= {STREAM_CONC_N} / {STREAM_CONC_S:.0f} s)")
        res["sconc"] = run_stream(
            t, CONC, STREAM_CONC_N, STREAM_CONC_S, os.path.join(raw, f"{t.name}-sconc.json")
        )
        log(f"{t.name}:   {brief(res['sconc'])}")
        if t.proc and t.name in SOAK_TARGETS and SOAK_S > 0 and rnd == ROUNDS - 1:
            log(f"{t.name}: sustained load {SOAK_S} s (wrk c{CONC} + 8 streams), RSS sampled")
            res["soak"] = soak(t, raw, env)
            sk = res["soak"]
            log(
                f"{t.name}:   RSS {sk['rss_before_mb']:.0f} -> {sk['rss_after_mb']:.0f} MB "
                f"(max {sk['rss_max_mb']:.0f}), {sk['requests']} req + {sk['streams']} streams, "
                f"{sk['errors']} errors"
            )
        if t.proc:
            res["alive_at_end"] = t.proc.alive()
            res["rss_end_mb"] = t.proc.rss_mb()
    finally:
        t.stop()
    return res


def brief(r: dict[str, Any]) -> str:
    if "error" in r:
        return f"ERROR {r['error']}"
    if "rps" in r:
        return (
            f"{r['rps']:.0f} req/s p50 {r['p50_ms']:.3f} p99 {r['p99_ms']:.3f} ms, "
            f"{r['errors']} errors, busy loadgen/target {r['busy_loadgen']:.0f}/"
            f"{r['busy_target']:.0f}%"
            + (f", {r['cpu_ms_per_req']:.3f} CPU ms/req" if "cpu_ms_per_req" in r else "")
        )
    return (
        f"{r['ok']} ok {r['errors']} err, {r['streams_per_s']:.0f} streams/s, TTFT p50 "
        f"{fmt(r['ttft_p50_ms'], 3)} p99 {fmt(r['ttft_p99_ms'], 3)} ms"
        + (f" first error: {r['first_error']}" if r.get("first_error") else "")
    )


# -------------------------------------------------------------------------------- report


def aggregate(per_round: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One result per target: the median of each number over the rounds that ran."""
    names = list(dict.fromkeys(r["name"] for r in per_round))
    out = []
    for name in names:
        rs = [r for r in per_round if r["name"] == name]
        ok = [r for r in rs if "skipped" not in r]
        if len(ok) <= 1:
            out.append(ok[0] if ok else rs[0])
            continue
        agg = dict(ok[-1])  # the soak ran in the last round
        agg["rounds"] = len(ok)
        for k, v in ok[0].items():
            if isinstance(v, int | float) and not isinstance(v, bool):
                agg[k] = statistics.median(r[k] for r in ok if isinstance(r.get(k), int | float))
            elif isinstance(v, dict) and k != "soak":
                sec = dict(v)
                for kk, vv in v.items():
                    xs = [r[k][kk] for r in ok if isinstance((r.get(k) or {}).get(kk), int | float)]
                    if isinstance(vv, int | float) and not isinstance(vv, bool) and xs:
                        sec[kk] = (
                            sum(xs) if kk in ("errors", "ok", "requests") else statistics.median(xs)
                        )
                    elif isinstance(vv, dict):  # nested gauges (the request log's): worst round
                        rounds = [(r.get(k) or {}).get(kk) or {} for r in ok]
                        sec[kk] = {
                            g: max(x[g] for x in rounds if isinstance(x.get(g), int | float))
                            for g in vv
                            if any(isinstance(x.get(g), int | float) for x in rounds)
                        }
                sec["per_round"] = [
                    r.get(k, {}).get("rps", r.get(k, {}).get("streams_per_s")) for r in ok
                ]
                sec["per_round_p50_ms"] = [r.get(k, {}).get("p50_ms") for r in ok]
                agg[k] = sec
        out.append(agg)
    return out


def fmt(x: float | None, nd: int = 2) -> str:
    return "—" if x is None else f"{x:.{nd}f}"


def get(r: dict[str, Any] | None, sec: str, key: str) -> float | None:
    v = ((r or {}).get(sec) or {}).get(key)
    return v if isinstance(v, int | float) else None


def sub(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else a - b


def div(a: float | None, b: float | None) -> float | None:
    return None if a is None or not b else a / b


def report(results: list[dict[str, Any]], meta: dict[str, Any]) -> str:
    ran = [r for r in results if "skipped" not in r]
    by = {r["name"]: r for r in ran}
    d, fl = by.get("direct"), by.get("floor")
    out = [
        f"| target | c{CONC} req/s | c{CONC} p50 ms | c{CONC} p99 ms | c1 p50 ms | c1 p99 ms "
        f"| stream TTFT p50 ms (seq) | TTFT p99 ms | c{CONC} streams/s | CPU ms/req "
        f"| CPU ms/stream | busy % loadgen/target (c{CONC}) | other work on target core % "
        "| RSS MB idle/end |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|---|",
    ]
    for r in ran:
        out.append(
            f"| {r['name']} | {fmt(get(r, 'c32', 'rps'), 0)} | {fmt(get(r, 'c32', 'p50_ms'))} "
            f"| {fmt(get(r, 'c32', 'p99_ms'))} | {fmt(get(r, 'c1', 'p50_ms'), 3)} "
            f"| {fmt(get(r, 'c1', 'p99_ms'), 3)} | {fmt(get(r, 'seq', 'ttft_p50_ms'), 3)} "
            f"| {fmt(get(r, 'seq', 'ttft_p99_ms'), 3)} | {fmt(get(r, 'sconc', 'streams_per_s'), 0)} "
            f"| {fmt(get(r, 'c32', 'cpu_ms_per_req'), 3)} "
            f"| {fmt(get(r, 'sconc', 'cpu_ms_per_stream'), 3)} "
            f"| {fmt(get(r, 'c32', 'busy_loadgen'), 0)}/{fmt(get(r, 'c32', 'busy_target'), 0)} "
            f"| {fmt(get(r, 'c32', 'other_on_target_pct'), 0)} "
            f"| {fmt(r.get('rss_idle_mb'), 0)}/{fmt(r.get('rss_end_mb'), 0)} |"
        )
    out += [
        "",
        "Within-run comparison (added = target - direct; ratio = target / floor):",
        "",
        f"| target | c1 added p50 ms | c1 added p99 ms | added TTFT p50 ms | c{CONC} req/s ÷ floor "
        f"| c{CONC} streams/s ÷ floor | CPU per request: floor ÷ target "
        "| CPU per stream: floor ÷ target | errors |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in ran:
        if r["name"] == "direct":
            continue
        errs = sum(int(get(r, s, "errors") or 0) for s in ("c32", "c1", "seq", "sconc"))
        out.append(
            f"| {r['name']} | {fmt(sub(get(r, 'c1', 'p50_ms'), get(d, 'c1', 'p50_ms')), 3)} "
            f"| {fmt(sub(get(r, 'c1', 'p99_ms'), get(d, 'c1', 'p99_ms')), 3)} "
            f"| {fmt(sub(get(r, 'seq', 'ttft_p50_ms'), get(d, 'seq', 'ttft_p50_ms')), 3)} "
            f"| {fmt(div(get(r, 'c32', 'rps'), get(fl, 'c32', 'rps')))} "
            f"| {fmt(div(get(r, 'sconc', 'streams_per_s'), get(fl, 'sconc', 'streams_per_s')))} "
            f"| {fmt(div(get(fl, 'c32', 'cpu_ms_per_req'), get(r, 'c32', 'cpu_ms_per_req')))} "
            f"| {fmt(div(get(fl, 'sconc', 'cpu_ms_per_stream'), get(r, 'sconc', 'cpu_ms_per_stream')))} "
            f"| {errs} |"
        )
    soaks = [r for r in ran if r.get("soak")]
    if soaks:
        out += [
            "",
            f"Sustained load ({SOAK_S} s of wrk c{CONC} + 8 concurrent streams):",
            "",
            "| target | RSS before MB | mid | after | max | requests + streams | errors | CPU ms/req |",
            "|---|---:|---:|---:|---:|---|---:|---:|",
        ]
        for r in soaks:
            s = r["soak"]
            out.append(
                f"| {r['name']} | {s['rss_before_mb']:.1f} | {s['rss_mid_mb']:.1f} "
                f"| {s['rss_after_mb']:.1f} | {s['rss_max_mb']:.1f} "
                f"| {s['requests']} + {s['streams']} | {s['errors']} "
                f"| {fmt(s['cpu_ms_per_req'], 3)} |"
            )
    out += request_log.report(by)
    for name in [r["name"] for r in ran if r["name"].startswith("pilothouse")]:
        out += ["", goals(by[name], d, fl)]
    out += request_log.goals(by)
    noisy = [
        f"{r['name']} {r['background_busy_pct']:.0f} %"
        for r in ran
        if r.get("background_busy_pct", 0) > 15
    ]
    if noisy:
        out += [
            "",
            "Warning: other work was using the machine when these started (busiest "
            "core): " + ", ".join(noisy) + "; their numbers are pessimistic.",
        ]
    skipped = [r for r in results if "skipped" in r]
    if skipped:
        out += ["", "Not measured:", ""]
        out += [f"- {r['name']}: {r['skipped'][:400]}" for r in skipped]
    return "\n".join(out)


def goals(p: dict[str, Any], d: dict[str, Any] | None, fl: dict[str, Any] | None) -> str:
    def row(measure: str, goal: str, value: float | None, ok: bool | None, nd: int = 2) -> str:
        verdict = "—" if ok is None else ("met" if ok else "**missed**")
        return f"| {measure} | {goal} | {fmt(value, nd)} | {verdict} |"

    def check(v: float | None, limit: float, le: bool = True) -> bool | None:
        return None if v is None else (v <= limit if le else v >= limit)

    rps = div(get(p, "c32", "rps"), get(fl, "c32", "rps"))
    a50 = sub(get(p, "c1", "p50_ms"), get(d, "c1", "p50_ms"))
    a99 = sub(get(p, "c1", "p99_ms"), get(d, "c1", "p99_ms"))
    ttft = sub(get(p, "seq", "ttft_p50_ms"), get(d, "seq", "ttft_p50_ms"))
    sps = div(get(p, "sconc", "streams_per_s"), get(fl, "sconc", "streams_per_s"))
    s = p.get("soak") or {}
    rss = s.get("rss_max_mb", p.get("rss_end_mb"))
    growth = sub(s.get("rss_after_mb"), s.get("rss_before_mb"))
    return "\n".join(
        [
            f"Goals — {p['name']} (one core; key auth, request log, metrics on):",
            "",
            "| measure | goal | measured | verdict |",
            "|---|---|---:|---|",
            row(f"req/s at c{CONC} ÷ floor proxy", "≥ 0.5", rps, check(rps, 0.5, le=False)),
            row("added latency p50 at c1 (ms)", "≤ 0.5", a50, check(a50, 0.5), 3),
            row("added latency p99 at c1 (ms)", "≤ 3", a99, check(a99, 3), 3),
            row("added TTFT p50, sequential (ms)", "≤ 1", ttft, check(ttft, 1), 3),
            row(f"streams/s at c{CONC} ÷ floor proxy", "≥ 0.5", sps, check(sps, 0.5, le=False)),
            row("RSS max under load (MB)", "≤ 150", rss, check(rss, 150), 1),
            row(
                f"RSS growth over the {SOAK_S} s sustained load (MB)",
                "flat (≤ 5)",
                growth,
                check(growth, 5),
                1,
            ),
        ]
    )


def sh(cmd: str) -> str:
    try:
        return subprocess.run(
            cmd, shell=True, capture_output=True, text=True, timeout=30
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "?"


def versions() -> dict[str, str]:
    php = os.path.join(os.path.dirname(PILOTHOUSE_BIN), "python")
    mods = "pilothouse aiohttp uvicorn uvloop httptools orjson prometheus_client"
    pv = sh(
        f"{php} -c \"import importlib.metadata as m; print(', '.join(n + ' ' + m.version(n) "
        f"for n in '{mods}'.split()))\""
    )
    return {
        "pilothouse venv": pv,
        "git": sh(f"git -C {REPO} rev-parse --short HEAD")
        + (
            " (src/ has uncommitted changes)" if sh(f"git -C {REPO} status --porcelain src") else ""
        ),
        "python": platform.python_version(),
        "nginx": sh("nginx -v 2>&1").replace("nginx version: ", ""),
        "wrk": sh("dpkg-query -W -f='${Version}' wrk"),
        "bench venv": sh(
            f'{BENCH_PY} -c "import aiohttp, uvloop; '
            f"print('aiohttp', aiohttp.__version__, 'uvloop', uvloop.__version__)\""
        ),
        "litellm": sh(
            f"{os.path.dirname(LITELLM_BIN)}/pip show litellm 2>/dev/null | "
            "awk '/^Version/{print $2}'"
        )
        or "not installed",
        "host": f"{cpu_model()}, {os.cpu_count()} CPUs, kernel {platform.release()}",
    }


def cpu_model() -> str:
    with open("/proc/cpuinfo") as f:
        return next((li.split(":", 1)[1].strip() for li in f if li.startswith("model name")), "?")


def main() -> None:
    started = dt.datetime.now()
    stamp = started.strftime("%Y%m%d-%H%M%S")
    run_dir = os.path.join(PREFIX, f"run-{stamp}")
    raw = os.path.join(RESULTS_DIR, f"raw-{stamp}")
    os.makedirs(run_dir, exist_ok=True)
    os.makedirs(raw, exist_ok=True)
    with open(os.path.join(run_dir, "body.json"), "wb") as f:
        f.write(payloads.request_body(payloads.MODEL_JSON))

    def on_signal(signum: int, _frame: object) -> None:
        log(f"signal {signum}: stopping what this run started")
        stop_all()
        sys.exit(128 + signum)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    ports = [PORT_UP_JSON, PORT_UP_STREAM, PORT_FLOOR, PORT_PILOTHOUSE, PORT_LITELLM, *PORT_ALTS]
    ports.append(PORT_PILOTHOUSE_PG)
    busy_ports = [p for p in ports if port_open(p)]
    if busy_ports:
        sys.exit(f"ports already in use on {HOST}: {busy_ports} (another bench run?)")
    results = []
    try:
        log(
            f"upstream nginx on cpu {LOADGEN_CPU}, ports {PORT_UP_JSON} (JSON) {PORT_UP_STREAM} (SSE)"
        )
        conf = nginx_conf(run_dir)
        Proc(
            "upstream",
            ["nginx", "-c", conf, "-p", run_dir, "-e", f"{run_dir}/nginx.err"],
            LOADGEN_CPU,
            os.path.join(run_dir, "nginx.log"),
        )
        targets = build_targets(run_dir)
        for rnd in range(ROUNDS):
            if ROUNDS > 1:
                log(f"===== round {rnd + 1} of {ROUNDS}")
            for name in SELECTED:
                if name in SETUP_SKIPPED:
                    if rnd == 0:
                        results.append({"name": name, "skipped": SETUP_SKIPPED[name]})
                        log(f"{name}: skipped ({SETUP_SKIPPED[name][:300]})")
                    continue
                if name not in targets:
                    if rnd == 0:
                        log(f"unknown target {name!r}; known: {', '.join(targets)}")
                    continue
                if name == "litellm" and (SKIP_LITELLM or not os.path.exists(LITELLM_BIN)):
                    why = "SKIP_LITELLM=1" if SKIP_LITELLM else f"{LITELLM_BIN} not installed"
                    if rnd == 0:
                        results.append({"name": name, "skipped": why})
                        log(f"litellm: skipped ({why})")
                    continue
                results.append(measure(targets[name], run_dir, raw, rnd))
                time.sleep(1)
    finally:
        stop_all()
        if request_log.PG_TARGET in SELECTED and request_log.PG_TARGET not in SETUP_SKIPPED:
            python = os.path.join(os.path.dirname(PILOTHOUSE_BIN), "python")
            request_log.drop_schema(python, PG_SCHEMA)
    per_round = results
    results = aggregate(results)
    meta = {
        "started": started.strftime("%Y-%m-%d %H:%M:%S"),
        "versions": versions(),
        "params": {k: ENV(k) for k in ("CONC", "DUR_S", "C1_S", "SOAK_S") if ENV(k)},
    }
    table = report(results, meta)
    v = meta["versions"]
    header = [
        f"# Pilothouse benchmark — {meta['started']}",
        "",
        f"Host: {v.pop('host')}.",
        "",
        "Versions: " + "; ".join(f"{k}: {val}" for k, val in v.items()) + ".",
        "",
        f"Pinning: targets on cpu {TARGET_CPU}; wrk, stream client and upstream nginx on cpu "
        f"{LOADGEN_CPU}. wrk -t1 -c{CONC} {DUR_S} s after {WARMUP_S} s warm-up, -c1 {C1_S} s; "
        f"{STREAM_SEQ_N} sequential streams; streams at c{CONC} (<= {STREAM_CONC_N} / "
        f"{STREAM_CONC_S:.0f} s); sustained load {SOAK_S} s for "
        f"{', '.join(t for t in SOAK_TARGETS if t in SELECTED) or 'none'}. "
        f"Upstream: 1 nginx worker, {len(payloads.completion())} B JSON, SSE of "
        f"{len(payloads.sse_events())} events ({len(payloads.sse_body())} B) in one burst.",
        ""
        if ROUNDS == 1
        else f" {ROUNDS} interleaved rounds: every cell is the median over the rounds"
        " (errors: the total).",
        "",
    ]
    md = "\n".join(header) + "\n" + table + "\n"
    path = os.path.join(RESULTS_DIR, f"bench-{stamp}.md")
    with open(path, "w") as f:
        f.write(md)
    with open(os.path.join(raw, "results.json"), "w") as f:
        json.dump({"meta": meta, "results": results, "per_round": per_round}, f, indent=1)
    print()
    print(table)
    print()
    log(f"report: {os.path.relpath(path, REPO)}; raw data: {os.path.relpath(raw, REPO)}")


if __name__ == "__main__":
    main()
