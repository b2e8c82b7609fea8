#!/bin/bash
# network_common.sh - sourced by the network benchmarks: a private node-networkd on its own
# --root and --run-dir, stopped (by PID) and cleaned up on exit.

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
BIN=${BIN:-$HERE/../../build/bin}
NODECTL=${NODECTL:-$BIN/nodectl}
NETWORKD=${NETWORKD:-$BIN/node-networkd}
TOP=$(mktemp -d /var/tmp/nodeagent-netbench-XXXXXX)
NETWORKD_PID=

die() { echo "$(basename "$0"): $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || die "must run as root"
[ -n "${EPOCHREALTIME:-}" ] || die "needs bash >= 5"
[ -x "$NODECTL" ] && [ -x "$NETWORKD" ] || die "missing $NODECTL or $NETWORKD (build first)"

nctl() { "$NODECTL" --run-dir "$TOP/run" "$@"; }

start_networkd() {
  mkdir -p "$TOP/run"
  "$NETWORKD" --root "$TOP/state" --run-dir "$TOP/run" >"$TOP/networkd.log" 2>&1 &
  NETWORKD_PID=$!
  for _ in $(seq 100); do
    nctl network ls >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  die "node-networkd did not come up (log: $TOP/networkd.log)"
}

stop_networkd() {
  # Detach whatever is left, remove the networks, then stop the daemon (it drops its mounts).
  if [ -n "$NETWORKD_PID" ]; then
    for net in $(nctl network ls -q 2>/dev/null); do
      for id in $(nctl --format json network inspect "$net" 2>/dev/null |
                  sed -n 's/.*"container_id": "\([^"]*\)".*/\1/p'); do
        nctl network detach "$id" >/dev/null
      done
      nctl network rm "$net" >/dev/null
    done
    kill -TERM "$NETWORKD_PID" 2>/dev/null
    wait "$NETWORKD_PID" 2>/dev/null
    NETWORKD_PID=
  fi
  # A bench that mounted something below $TOP (in its private mount namespace) unmounts it here.
  if [ -n "${BEFORE_CLEANUP:-}" ]; then eval "$BEFORE_CLEANUP"; fi
  rm -rf --one-file-system "$TOP"
}

# "field: value" from `nodectl network attach` output.
field() { sed -n "s/^$1: //p"; }

median() { sort -n | awk '{a[NR]=$1} END {if (NR==0) print 0; else if (NR%2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'; }
