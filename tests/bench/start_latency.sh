#!/bin/bash
# start_latency.sh - container start-to-exit latency of nodeagent beside its peers, in one run.
#
# Each round runs, in turn (so machine drift hits all alike):
#   nodeagent  nodectl run --rm --network none busybox true
#              (CLI -> runtime -> image -> node-shim -> exec; a fresh netns with lo, as crun's)
#   nodeagent_bridge  the same on the default bridge network (+ network service attach/detach)
#   nodeagent_cold    the same as nodeagent on a second node started with --warm-shims 0
#   crun       crun run -b BUNDLE ID             (same busybox rootfs, /bin/true)
#   runc       runc run -b BUNDLE ID
#   unshare    unshare --fork --pid --mount --uts --ipc --net --mount-proc chroot ROOTFS /bin/true
# then create + start + wait through the runtime's gRPC API beside crun and runc (grpc_start,
# no CLI in the figure), and prints medians plus the median of per-round ratios (absolute times on shared machines are
# noise; ratios are the figure to compare). Every start waits 50 ms first, so that no runtime's
# leftover work lands in the next one's figure.
#
# Needs root, bash >= 5, crun, runc, busybox-static and a build (NODECTL=build/bin/nodectl).
# It starts its own node on private dirs under /var/tmp/nodeagent-bench and stops it at the end.
# crun 1.8 refuses hybrid cgroup hosts whose cgroup2 holds a controller (here hugetlb); like
# ../../../shared/bench/peers.sh the script then re-runs itself in a private mount namespace
# with hugetlb bound to a v1 hierarchy, so every runtime is measured under the same setting.
#
# Usage: tests/bench/start_latency.sh [ROUNDS]   (default 30, after 3 warm-up rounds)
set -u

ROUNDS=${1:-30}
WARMUP=3
HERE=$(cd "$(dirname "$0")" && pwd)
NODECTL=${NODECTL:-$HERE/../../build/bin/nodectl}
TOP=/var/tmp/nodeagent-bench
BUNDLE=$TOP/bundle
ROOTFS=$BUNDLE/rootfs
RUN_DIR=$TOP/run
PREFIX=nabench-$$

die() { echo "start_latency: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || die "must run as root"
[ -n "${EPOCHREALTIME:-}" ] || die "needs bash >= 5"
for b in crun runc unshare chroot; do command -v $b >/dev/null || die "missing $b"; done
[ -x /bin/busybox ] || die "missing /bin/busybox (apt-get install busybox-static)"
[ -x "$NODECTL" ] || die "missing $NODECTL (build first)"

# shellcheck source=runtime_peers.sh
source "$HERE/runtime_peers.sh"
peers_private_hugetlb "$@"

peers_busybox_bundle "$BUNDLE" '"/bin/true"'

# --- our node ------------------------------------------------------------------------------
na() { "$NODECTL" --run-dir "$RUN_DIR" "$@"; }
cleanup() {
  # Networks outlive the services: remove them (bridges, nftables) before the state goes.
  na network ls -q 2>/dev/null | xargs -r -n1 "$NODECTL" --run-dir "$RUN_DIR" network rm >/dev/null 2>&1
  na down >/dev/null 2>&1
  for d in /sys/fs/cgroup/*/nodeagent-bench /sys/fs/cgroup/nodeagent-bench; do
    [ -d "$d" ] && rmdir "$d" 2>/dev/null
  done
  rm -rf --one-file-system "$TOP/state" "$TOP/log" "$RUN_DIR"
}
trap cleanup EXIT
na up --root "$TOP/state" --log-dir "$TOP/log" --metrics-address "" \
      --cgroup-parent nodeagent-bench >/dev/null || die "nodectl up failed (see $TOP/log)"
na run --rm busybox true || die "nodeagent cannot run busybox true"

# A second node, the same but with no warm node-shim: every start pays the shim's exec and the
# cgroup join's RCU grace period (cgroup v1) itself. Shown beside, not hidden.
COLD_RUN_DIR=$TOP/run-cold
nac() { "$NODECTL" --run-dir "$COLD_RUN_DIR" "$@"; }
cold_cleanup() {
  nac network ls -q 2>/dev/null | xargs -r -n1 "$NODECTL" --run-dir "$COLD_RUN_DIR" network rm >/dev/null 2>&1
  nac down >/dev/null 2>&1
  for d in /sys/fs/cgroup/*/nodeagent-bench-cold /sys/fs/cgroup/nodeagent-bench-cold; do
    [ -d "$d" ] && rmdir "$d" 2>/dev/null
  done
  rm -rf --one-file-system "$TOP/state-cold" "$TOP/log-cold" "$COLD_RUN_DIR"
}
trap 'cold_cleanup; cleanup' EXIT
nac up --root "$TOP/state-cold" --log-dir "$TOP/log-cold" --metrics-address "" \
       --cgroup-parent nodeagent-bench-cold --warm-shims 0 >/dev/null ||
  die "nodectl up (cold) failed (see $TOP/log-cold)"
nac run --rm --network none busybox true || die "the cold node cannot run busybox true"

declare -a T_nodeagent T_nodeagent_cold T_nodeagent_bridge T_crun T_runc T_unshare
run_one() {
  local id=$PREFIX-$2 t0 t1
  # Each start on a settled machine: work one runtime leaves behind (our warm node-shim's
  # refill, whose cgroup.procs write holds the kernel's cgroup_mutex for an RCU grace period;
  # a peer's deferred cleanup) must not land in the next one's figure.
  sleep 0.05
  t0=$EPOCHREALTIME
  case $1 in
    nodeagent) na run --rm --network none busybox /bin/true ;;
    nodeagent_cold) nac run --rm --network none busybox /bin/true ;;
    nodeagent_bridge) na run --rm busybox /bin/true ;;
    crun)      crun run -b "$BUNDLE" "c$id" ;;
    runc)      runc run -b "$BUNDLE" "r$id" ;;
    unshare)   unshare --fork --pid --mount --uts --ipc --net --mount-proc chroot "$ROOTFS" /bin/true ;;
  esac </dev/null >/dev/null 2>&1
  t1=$EPOCHREALTIME
  local us=$(( (${t1%.*} - ${t0%.*}) * 1000000 + 10#${t1#*.} - 10#${t0#*.} ))
  eval "T_$1+=($us)"
}

for ((r = 1; r <= WARMUP + ROUNDS; r++)); do
  for k in nodeagent nodeagent_bridge crun runc unshare nodeagent_cold; do run_one $k $r; done
done
crun list 2>/dev/null | awk -v p="c$PREFIX-" 'index($1,p)==1{print $1}' | xargs -r -n1 crun delete -f
runc list 2>/dev/null | awk -v p="r$PREFIX-" 'index($1,p)==1{print $1}' | xargs -r -n1 runc delete -f

stats() {
  shift $WARMUP
  printf '%s\n' "$@" | sort -n | awk '{v[NR]=$1} END {
    m = (NR % 2) ? v[(NR+1)/2] : (v[NR/2] + v[NR/2+1]) / 2
    printf "median_ms=%.2f min_ms=%.2f max_ms=%.2f n=%d", m/1000, v[1]/1000, v[NR]/1000, NR }'
}
ratio() {
  local -n a=$1 b=$2; local i
  for ((i = WARMUP; i < ${#a[@]}; i++)); do echo "${a[i]} ${b[i]}"; done |
    awk '{print $1/$2}' | sort -g | awk '{v[NR]=$1} END {
      m = (NR % 2) ? v[(NR+1)/2] : (v[NR/2] + v[NR/2+1]) / 2
      printf "median=%.3f min=%.3f max=%.3f n=%d", m, v[1], v[NR], NR }'
}

echo "nodeagent_run_rm_true   $(stats "${T_nodeagent[@]}")    # --network none"
echo "nodeagent_cold          $(stats "${T_nodeagent_cold[@]}")    # --network none, --warm-shims 0"
echo "nodeagent_bridge        $(stats "${T_nodeagent_bridge[@]}")    # default bridge network"
echo "crun_run_true           $(stats "${T_crun[@]}")    # crun $(crun --version | awk 'NR==1{print $3}')"
echo "runc_run_true           $(stats "${T_runc[@]}")    # runc $(runc --version | awk 'NR==1{print $3}')"
echo "unshare_chroot_floor    $(stats "${T_unshare[@]}")"
echo "ratio_nodeagent/crun    $(ratio T_nodeagent T_crun)"
echo "ratio_cold/crun         $(ratio T_nodeagent_cold T_crun)"
echo "ratio_nodeagent/runc    $(ratio T_nodeagent T_runc)"
echo "ratio_nodeagent/unshare $(ratio T_nodeagent T_unshare)"
echo "ratio_crun/unshare      $(ratio T_crun T_unshare)"
echo "ratio_bridge/none       $(ratio T_nodeagent_bridge T_nodeagent)"

GRPC_START=${GRPC_START:-$(dirname "$NODECTL")/../tests/bench/grpc_start}
if [ -x "$GRPC_START" ]; then
  "$GRPC_START" "$RUN_DIR/runtime.sock" "$BUNDLE" "$ROUNDS" "$WARMUP" "$COLD_RUN_DIR/runtime.sock"
  crun list 2>/dev/null | awk -v p="gc" 'index($1,p)==1{print $1}' | xargs -r -n1 crun delete -f
  runc list 2>/dev/null | awk -v p="gr" 'index($1,p)==1{print $1}' | xargs -r -n1 runc delete -f
else
  echo "grpc_start not built ($GRPC_START): skipping the gRPC figures"
fi
