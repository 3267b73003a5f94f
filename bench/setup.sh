#!/usr/bin/env bash
# Install what `make bench` (bench/run.sh) needs. Idempotent; safe to re-run.
#
#   bash bench/setup.sh                 # nginx + wrk (apt), bench venv, LiteLLM venv
#   SKIP_LITELLM=1 bash bench/setup.sh  # without LiteLLM (the run then skips it)
#   LITELLM_VERSION=1.x.y bash bench/setup.sh   # pin LiteLLM (default: newest that installs)
#   WITH_PYSPY=1 bash bench/setup.sh    # also py-spy, for profiling (bench venv)
#
# Debian packages: nginx (the fake upstream), wrk (load). Everything else lives under
# $BENCH_PREFIX (default /tmp/pilothouse-bench): the bench venv (aiohttp + uvloop for the
# stream client and the floor proxy) and LiteLLM's own venv. The project's .venv is not
# touched (make bench creates it).
set -euo pipefail

BENCH_PREFIX="${BENCH_PREFIX:-/tmp/pilothouse-bench}"
SKIP_LITELLM="${SKIP_LITELLM:-0}"
LITELLM_VERSION="${LITELLM_VERSION:-}"
log() { printf '[bench setup] %s\n' "$*"; }
# pip, minus the noise of index locations this machine's pip config may name
pipq() { "$@" 2>&1 | { grep -v 'is ignored' || true; }; }
mkdir -p "$BENCH_PREFIX"

# 1. nginx and wrk from Debian, without letting the package start a system nginx on :80
need=()
command -v nginx >/dev/null 2>&1 || need+=(nginx)
command -v wrk >/dev/null 2>&1 || need+=(wrk)
command -v taskset >/dev/null 2>&1 || need+=(util-linux)
if [ "${#need[@]}" -gt 0 ]; then
  log "apt-get install ${need[*]}"
  sudo_() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
  made_policy=0
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' | sudo_ tee /usr/sbin/policy-rc.d >/dev/null
    sudo_ chmod +x /usr/sbin/policy-rc.d
    made_policy=1
  fi
  sudo_ apt-get update -qq
  sudo_ env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    "${need[@]}" >/dev/null
  if [ "$made_policy" = 1 ]; then sudo_ rm -f /usr/sbin/policy-rc.d; fi
else
  log "nginx and wrk present"
fi

# 2. bench venv: the stream client, the floor proxy and the prompt-feed clients (aiohttp +
#    uvloop); matplotlib for the control-plane plot
VENV="$BENCH_PREFIX/venv"
if ! "$VENV/bin/python" -c 'import aiohttp, uvloop, matplotlib' 2>/dev/null; then
  log "creating $VENV"
  python3 -m venv "$VENV"
  pipq "$VENV/bin/pip" install -q --upgrade pip
  pipq "$VENV/bin/pip" install -q aiohttp uvloop matplotlib
fi
if [ "${WITH_PYSPY:-0}" = 1 ] && [ ! -x "$VENV/bin/py-spy" ]; then
  pipq "$VENV/bin/pip" install -q py-spy
fi
log "bench venv ok ($("$VENV/bin/python" -c 'import aiohttp; print("aiohttp", aiohttp.__version__)'))"

# 3. LiteLLM proxy in its own venv (a peer to compare with; optional)
LVENV="$BENCH_PREFIX/litellm-venv"
if [ "$SKIP_LITELLM" = 1 ]; then
  log "LiteLLM skipped (SKIP_LITELLM=1)"
elif [ -x "$LVENV/bin/litellm" ]; then
  log "LiteLLM ok ($("$LVENV/bin/pip" show litellm | awk '/^Version/{print $2}'))"
else
  log "installing litellm[proxy]${LITELLM_VERSION:+==$LITELLM_VERSION} into $LVENV (a few minutes)"
  rm -rf "$LVENV"
  python3 -m venv "$LVENV"
  pipq "$LVENV/bin/pip" install -q --upgrade pip
  if pipq "$LVENV/bin/pip" install -q "litellm[proxy]${LITELLM_VERSION:+==$LITELLM_VERSION}" \
    && "$LVENV/bin/litellm" --version >/dev/null 2>&1; then
    log "LiteLLM $("$LVENV/bin/pip" show litellm | awk '/^Version/{print $2}') installed"
  else
    log "LiteLLM install failed: the run will skip it (or set SKIP_LITELLM=1)"
    rm -rf "$LVENV"
  fi
fi
log "done; now: make bench"
