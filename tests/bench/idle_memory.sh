#!/bin/bash
# idle_memory.sh - host memory per idle container: nodeagent beside crun and runc, in one run.
#
# For each runtime, COUNT containers run `sleep` detached (no network: every runtime gets the
# same fresh namespaces). Reported per container:
#   monitor_kib   PSS of what the runtime keeps per container outside the container's own
#                 processes (node-shim for nodeagent; crun and runc keep nothing after `run -d`,
#                 and then nothing captures output or exit codes either)
#   service_kib   growth of nodeagent's four services' PSS
# (MemAvailable deltas were tried for the kernel's share and dropped: on a shared machine other
# processes' page cache swings them by more than the figure, even below zero.)
# PSS divides shared pages between their users, so 200 shims share one copy of the binary.
#
# Needs root, crun, runc, busybox-static and a build (NODECTL=build/bin/nodectl).
# Usage: tests/bench/idle_memory.sh [COUNT]   (default 200)
set -u

COUNT=${1:-200}
HERE=$(cd "$(dirname "$0")" && pwd)
NODECTL=${NODECTL:-$HERE/../../build/bin/nodectl}
TOP=/var/tmp/nodeagent-bench-idle
BUNDLE=$TOP/bundle
RUN_DIR=$TOP/run
PREFIX=naidle-$$

die() { echo "idle_memory: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || die "must run as root"
for b in crun runc; do command -v $b >/dev/null || die "missing $b"; done
[ -x /bin/busybox ] || die "missing /bin/busybox (apt-get install busybox-static)"
[ -x "$NODECTL" ] || die "missing $NODECTL (build first)"

# shellcheck source=runtime_peers.sh
source "$HERE/runtime_peers.sh"
peers_private_hugetlb "$@"

peers_busybox_bundle "$BUNDLE" '"/bin/sleep", "1000000"'

na() { "$NODECTL" --run-dir "$RUN_DIR" "$@"; }
cleanup() {
  if [ -S "$RUN_DIR/runtime.sock" ]; then
    na ps -a -q 2>/dev/null | xargs -r "$NODECTL" --run-dir "$RUN_DIR" rm -f >/dev/null 2>&1
    na network ls -q 2>/dev/null | xargs -r -n1 "$NODECTL" --run-dir "$RUN_DIR" network rm >/dev/null 2>&1
  fi
  na down >/dev/null 2>&1
  crun list 2>/dev/null | awk -v p="c$PREFIX-" 'index($1,p)==1{print $1}' | xargs -r -n1 crun delete -f
  runc list 2>/dev/null | awk -v p="r$PREFIX-" 'index($1,p)==1{print $1}' | xargs -r -n1 runc delete -f
  for d in /sys/fs/cgroup/*/nodeagent-bench-idle /sys/fs/cgroup/nodeagent-bench-idle; do
    [ -d "$d" ] && rmdir "$d" 2>/dev/null
  done
  rm -rf --one-file-system "$TOP/state" "$TOP/log" "$RUN_DIR"
}
trap cleanup EXIT

pss_kib() {  # total PSS of the given PIDs
  local total=0 p v
  for p in "$@"; do
    v=$(awk '/^Pss:/{print $2}' /proc/$p/smaps_rollup 2>/dev/null)
    total=$((total + ${v:-0}))
  done
  echo $total
}
service_pids() { cat "$RUN_DIR"/{image,runtime,network,metrics}.pid 2>/dev/null; }
report() {  # name monitor_total service_delta
  awk -v n="$1" -v m="$2" -v s="$3" -v k="$COUNT" 'BEGIN {
    printf "%-10s monitor_kib=%.0f service_kib=%.0f total_kib=%.0f  (per container, n=%d)\n",
           n, m/k, s/k, (m+s)/k, k }'
}

# --- nodeagent ---------------------------------------------------------------------------
na up --root "$TOP/state" --log-dir "$TOP/log" --metrics-address "" \
      --cgroup-parent nodeagent-bench-idle >/dev/null || die "nodectl up failed (see $TOP/log)"
na run --rm --network none busybox true || die "nodeagent cannot run busybox"
svc0=$(pss_kib $(service_pids))
for ((i = 0; i < COUNT; i++)); do
  na run -d --network none busybox sleep 1000000 >/dev/null || die "run -d #$i failed"
done
sleep 2
# Shims started cold name the bundle; warm ones (and the one kept ready, with its child)
# name their warm-* cgroup below the bench's parent. All count.
shims=$(pgrep -f "node-shim.*($TOP/state|nodeagent-bench-idle/warm-)")
[ "$(echo "$shims" | wc -l)" -ge "$COUNT" ] || die "expected $COUNT shims"
mon=$(pss_kib $shims); svc1=$(pss_kib $(service_pids))
report nodeagent "$mon" $((svc1 - svc0))
na ps -a -q | xargs -r "$NODECTL" --run-dir "$RUN_DIR" rm -f >/dev/null
na down >/dev/null

# --- crun / runc ---------------------------------------------------------------------------
for rt in crun runc; do
  for ((i = 0; i < COUNT; i++)); do
    $rt run -d -b "$BUNDLE" "${rt:0:1}$PREFIX-$i" </dev/null >/dev/null 2>&1 || die "$rt run -d #$i failed"
  done
  sleep 2
  # Nothing of the runtime stays: the containers' own processes are all there is.
  [ -z "$(pgrep -x "$rt")" ] || die "$rt left a process running"
  report "$rt" 0 0
  $rt list 2>/dev/null | awk -v p="${rt:0:1}$PREFIX-" 'index($1,p)==1{print $1}' | xargs -r -n1 $rt delete -f
done
