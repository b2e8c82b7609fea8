#!/bin/bash
# idle_memory.sh - host memory per idle container: nodeagent beside crun and runc, in one run.
#
# For each runtime, COUNT containers run `sleep` detached (no network: every runtime gets the
# same fresh namespaces). Reported per container:
#   monitor_kib   PSS of what the runtime keeps per container outside the container's own
#                 processes (node-shim for nodeagent; crun and runc keep nothing after `run -d`,
#                 and then nothing captures output or exit codes either)
#   service_kib   growth of nodeagent's four services' PSS
#   host_kib      drop of MemAvailable (kernel objects included: namespaces, cgroups, mounts,
#                 page tables), minus the PSS of the containers' own `sleep` processes
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
ROOTFS=$BUNDLE/rootfs
RUN_DIR=$TOP/run
PREFIX=naidle-$$

die() { echo "idle_memory: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || die "must run as root"
for b in crun runc; do command -v $b >/dev/null || die "missing $b"; done
[ -x /bin/busybox ] || die "missing /bin/busybox (apt-get install busybox-static)"
[ -x "$NODECTL" ] || die "missing $NODECTL (build first)"

# crun 1.8 refuses hybrid hosts whose cgroup2 holds a controller: see start_latency.sh.
if [ -z "${NABENCH_IN_NS:-}" ] && [ -n "$(cat /sys/fs/cgroup/unified/cgroup.controllers 2>/dev/null)" ]; then
  export NABENCH_IN_NS=1
  exec unshare -m --propagation private bash -c '
    mkdir -p /sys/fs/cgroup/hugetlb && mount -t cgroup -o hugetlb cgroup /sys/fs/cgroup/hugetlb || exit 1
    bash "$0" "$@"; rc=$?
    umount /sys/fs/cgroup/hugetlb && rmdir /sys/fs/cgroup/hugetlb
    exit $rc' "$0" "$@"
fi

if [ ! -x "$ROOTFS/bin/busybox" ] || [ ! -f "$BUNDLE/config.json" ]; then
  rm -rf "$BUNDLE"
  mkdir -p "$ROOTFS"/{bin,proc,sys,dev,tmp,etc} || die "cannot create $ROOTFS"
  cp /bin/busybox "$ROOTFS/bin/busybox"
  chroot "$ROOTFS" /bin/busybox --install -s /bin || die "busybox --install failed"
  (cd "$BUNDLE" && crun spec) || die "crun spec failed"
  sed -i -e 's/"terminal": true/"terminal": false/' \
         -e 's/^\([[:space:]]*\)"sh"$/\1"\/bin\/sleep", "1000000"/' \
         -e 's/"readonly": true/"readonly": false/' "$BUNDLE/config.json"
  grep -q '"/bin/sleep"' "$BUNDLE/config.json" || die "could not edit config.json"
fi

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
avail_kib() { awk '/^MemAvailable:/{print $2}' /proc/meminfo; }
service_pids() { cat "$RUN_DIR"/{image,runtime,network,metrics}.pid 2>/dev/null; }
# Our containers' sleep processes / crun's or runc's: children of nothing we keep.
sleep_pids() { pgrep -f "^/bin/sleep 1000000|^sleep 1000000" ; }

report() {  # name monitor_total service_delta host_delta sleeps_total
  awk -v n="$1" -v m="$2" -v s="$3" -v h="$4" -v c="$5" -v k="$COUNT" 'BEGIN {
    printf "%-10s monitor_kib=%.0f service_kib=%.0f host_kib=%.0f  (per container, n=%d)\n",
           n, m/k, s/k, (h-c)/k, k }'
}

# --- nodeagent ---------------------------------------------------------------------------
na up --root "$TOP/state" --log-dir "$TOP/log" --metrics-address "" \
      --cgroup-parent nodeagent-bench-idle >/dev/null || die "nodectl up failed (see $TOP/log)"
na run --rm --network none busybox true || die "nodeagent cannot run busybox"
svc0=$(pss_kib $(service_pids)); avail0=$(avail_kib)
for ((i = 0; i < COUNT; i++)); do
  na run -d --network none busybox sleep 1000000 >/dev/null || die "run -d #$i failed"
done
sleep 2
shims=$(pgrep -f "node-shim.*$TOP/state")
[ "$(echo "$shims" | wc -l)" -ge "$COUNT" ] || die "expected $COUNT shims"
mon=$(pss_kib $shims); svc1=$(pss_kib $(service_pids)); avail1=$(avail_kib)
sleeps=$(pss_kib $(sleep_pids))
report nodeagent "$mon" $((svc1 - svc0)) $((avail0 - avail1)) "$sleeps"
na ps -a -q | xargs -r "$NODECTL" --run-dir "$RUN_DIR" rm -f >/dev/null
na down >/dev/null

# --- crun / runc ---------------------------------------------------------------------------
for rt in crun runc; do
  avail0=$(avail_kib)
  for ((i = 0; i < COUNT; i++)); do
    $rt run -d -b "$BUNDLE" "${rt:0:1}$PREFIX-$i" </dev/null >/dev/null 2>&1 || die "$rt run -d #$i failed"
  done
  sleep 2
  avail1=$(avail_kib); sleeps=$(pss_kib $(sleep_pids))
  report "$rt" 0 0 $((avail0 - avail1)) "$sleeps"
  $rt list 2>/dev/null | awk -v p="${rt:0:1}$PREFIX-" 'index($1,p)==1{print $1}' | xargs -r -n1 $rt delete -f
done
