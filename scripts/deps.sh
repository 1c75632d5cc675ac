#!/usr/bin/env bash
# Installs what `make test` needs besides Go on a Debian or Ubuntu machine:
# make, git, gcc (cgo, for the Ory Hydra build), redis-server and
# redis-sentinel (the Redis tests start their own servers and Sentinels),
# wrk (make bench) and promtool (Debian's prometheus package; the e2e
# tests check and unit-test examples/prometheus).
# It installs only what is missing, with apt-get, as root or through sudo.
# `make test` runs it.
set -euo pipefail

need=()
for pair in make:make git:git gcc:gcc redis-server:redis-server redis-sentinel:redis-sentinel wrk:wrk promtool:prometheus; do
  command -v "${pair%%:*}" >/dev/null || need+=("${pair#*:}")
done
[ ${#need[@]} -eq 0 ] && exit 0

sudo=()
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "deps: need root or sudo to install: ${need[*]}" >&2; exit 1; }
  sudo=(sudo)
fi
echo "deps: installing ${need[*]}"
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -qq
"${sudo[@]}" apt-get install -y -qq "${need[@]}" >/dev/null
# Debian's package starts a system redis on 6379; the tests start their own
# servers on free ports and need none.
if [[ " ${need[*]} " == *" redis-server "* ]]; then
  ("${sudo[@]}" service redis-server stop || true) >/dev/null 2>&1
fi
# And redis-sentinel a system Sentinel on 26379; the tests start their own.
if [[ " ${need[*]} " == *" redis-sentinel "* ]]; then
  ("${sudo[@]}" service redis-sentinel stop || true) >/dev/null 2>&1
fi
# Likewise Debian's prometheus package starts a system Prometheus on 9090;
# only its promtool is needed.
if [[ " ${need[*]} " == *" prometheus "* ]]; then
  ("${sudo[@]}" service prometheus stop || true) >/dev/null 2>&1
fi
