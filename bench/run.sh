#!/usr/bin/env bash
# Benchmark Pilothouse against a fixed upstream, the floor proxy and LiteLLM, in one run.
#
#   bash bench/setup.sh && make bench          # ~6 min; report in bench/results/
#
# Knobs (env): TARGETS=direct,floor,pilothouse,litellm  SKIP_LITELLM=1  SOAK_S=60 (600: soak)
#              CONC=32 DUR_S=15 C1_S=10 WARMUP_S=5 STREAM_SEQ_N=300 STREAM_CONC_S=10 ROUNDS=1
#              LOADGEN_CPU=0 TARGET_CPU=1 QUIET_WAIT_S=120 BENCH_PREFIX=/tmp/pilothouse-bench
#              PILOTHOUSE_ALT_SRC=a=/path/src,b=/other/src  (also measure other src trees)
#              PILOTHOUSE_SNAPSHOT=1 (default: run Pilothouse from a copy of src/ taken at start)
# See docs/performance.md. Loopback only; every step is bounded in time; only the
# processes this run started are stopped.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(dirname "$HERE")"
BENCH_PREFIX="${BENCH_PREFIX:-/tmp/pilothouse-bench}"
export BENCH_PREFIX
BENCH_PY="$BENCH_PREFIX/venv/bin/python"

missing=()
command -v nginx >/dev/null 2>&1 || missing+=(nginx)
command -v wrk >/dev/null 2>&1 || missing+=(wrk)
command -v taskset >/dev/null 2>&1 || missing+=(taskset)
"$BENCH_PY" -c 'import aiohttp, uvloop' >/dev/null 2>&1 || missing+=("bench venv ($BENCH_PY)")
if [ "${#missing[@]}" -gt 0 ]; then
  {
    echo "bench: missing: ${missing[*]}."
    echo "bench: run 'bash bench/setup.sh' first (installs nginx and wrk with apt-get and the"
    echo "       bench venv under $BENCH_PREFIX), then 'make bench' again."
  } >&2
  exit 2
fi
if [ ! -x "${PILOTHOUSE_BIN:-$REPO/.venv/bin/pilothouse}" ]; then
  echo "bench: ${PILOTHOUSE_BIN:-$REPO/.venv/bin/pilothouse} not found: run 'make install' (or make bench)" >&2
  exit 2
fi
if [ "$(nproc)" -lt 2 ]; then
  echo "bench: warning: fewer than 2 CPUs; the target and the load generator share one core" >&2
  export TARGET_CPU="${TARGET_CPU:-0}"
fi
mkdir -p "${BENCH_RESULTS:-$HERE/results}"
exec "$BENCH_PY" "$HERE/harness.py" "$@"
