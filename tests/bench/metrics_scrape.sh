#!/bin/bash
# metrics_scrape.sh - cost of a Prometheus scrape of node-metricsd as containers grow.
#
# Starts a node of its own (private dirs, exporter on a free loopback port), then for each
# container count (default 10 100 500; `nodectl run -d --network $NETWORK busybox sleep 3600`)
# waits until the exporter shows them all and measures, over ROUNDS scrapes each:
#   plain   scrape time of GET /metrics (identity encoding)
#   gzip    scrape time with Accept-Encoding: gzip (what Prometheus sends)
#   cpu     node-metricsd CPU time (user+system, /proc/PID/stat) per scrape, plain and gzip
# plus, as the floor in the same run, `cat` of the very cgroup and /proc files a scrape reads
# (one process, all containers): what no exporter can go below. It prints medians, the
# exporter/floor ratio, and the cost per container so the growth can be judged (linear means
# the per-container figure stays flat). cAdvisor itself is not packaged in Debian, so it is not
# run beside it.
#
# Usage: tests/bench/metrics_scrape.sh [COUNTS...]
#   ROUNDS=20       scrapes per measurement
#   NETWORK=none    --network of the containers (bridge: each has an eth0, 8 more series)
#   PERF_OUT=FILE   also record `perf record -g` of the exporter during the last count's scrapes
set -u

HERE=$(cd "$(dirname "$0")" && pwd)
NODECTL=${NODECTL:-$HERE/../../build/bin/nodectl}
ROUNDS=${ROUNDS:-20}
NETWORK=${NETWORK:-none}
PERF_OUT=${PERF_OUT:-}
COUNTS=("$@")
[ ${#COUNTS[@]} -gt 0 ] || COUNTS=(10 100 500)
TOP=/var/tmp/nodeagent-bench-metrics-$$
RUN_DIR=$TOP/run
PARENT=nabench-metrics-$$

die() { echo "metrics_scrape: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || die "must run as root"
[ -x "$NODECTL" ] || die "missing $NODECTL (build first)"
command -v curl >/dev/null || die "missing curl"

nctl() { "$NODECTL" --run-dir "$RUN_DIR" "$@"; }

cleanup() {
  nctl ps -a -q 2>/dev/null | xargs -r -n 20 -P 4 "$NODECTL" --run-dir "$RUN_DIR" rm -f >/dev/null 2>&1
  # Networks outlive the services: remove them (bridges, nftables) before the state goes.
  nctl network ls -q 2>/dev/null | xargs -r -n1 "$NODECTL" --run-dir "$RUN_DIR" network rm >/dev/null 2>&1
  nctl down >/dev/null 2>&1
  for d in /sys/fs/cgroup/*/"$PARENT" /sys/fs/cgroup/"$PARENT"; do [ -d "$d" ] && rmdir "$d"; done
  rm -rf --one-file-system "$TOP"
}
trap cleanup EXIT

mkdir -p "$TOP"
nctl up --root "$TOP/state" --log-dir "$TOP/log" --metrics-address 127.0.0.1:0 \
  --cgroup-parent "$PARENT" >/dev/null || die "nodectl up failed"
PORT=$(grep -o 'ports [0-9]*' "$TOP/log/metrics.log" | tail -1 | cut -d' ' -f2)
[ -n "$PORT" ] || die "no exporter port in $TOP/log/metrics.log"
PID=$(cat "$RUN_DIR/metrics.pid")
URL=http://127.0.0.1:$PORT/metrics
TICK=$(getconf CLK_TCK)

cpu_ticks() { awk '{print $14 + $15}' "/proc/$PID/stat"; }
median() { sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
shown() { curl -s "$URL" | grep -c '^container_last_seen{.*name='; }

# The files one scrape reads for one container (this host's layout), for the floor.
floor_files() {
  if [ -d /sys/fs/cgroup/memory ]; then
    for c in memory cpu cpuacct pids blkio; do ls -d /sys/fs/cgroup/$c/$PARENT/*/ 2>/dev/null; done |
      while read -r d; do
        for f in cpuacct.usage cpuacct.stat cpu.stat memory.usage_in_bytes memory.max_usage_in_bytes \
                 memory.stat memory.failcnt memory.oom_control pids.current \
                 blkio.throttle.io_service_bytes_recursive blkio.throttle.io_serviced_recursive; do
          [ -e "$d$f" ] && echo "$d$f"
        done
      done
  else
    for d in /sys/fs/cgroup/$PARENT/*/; do
      for f in cpu.stat memory.current memory.peak memory.stat memory.events memory.swap.current \
               pids.current io.stat; do [ -e "$d$f" ] && echo "$d$f"; done
    done
  fi
  # The network namespace of each container's first process.
  local procs=/sys/fs/cgroup/pids/$PARENT
  [ -d "$procs" ] || procs=/sys/fs/cgroup/$PARENT
  for f in "$procs"/*/cgroup.procs; do
    p=$(head -1 "$f" 2>/dev/null) && [ -n "$p" ] && echo "/proc/$p/net/dev"
  done
}

printf '%-6s %9s %9s %9s %9s %9s %9s %9s %7s %12s\n' containers plain_ms gzip_ms cpu_ms \
  cpu_gz_ms bytes gz_bytes floor_ms ratio cpu_us/cont
running=0
for n in "${COUNTS[@]}"; do
  need=$((n - running))
  if [ $need -gt 0 ]; then
    seq $need | xargs -P 4 -I{} "$NODECTL" --run-dir "$RUN_DIR" run -d --network "$NETWORK" busybox sleep 3600 >/dev/null ||
      die "could not start containers"
    running=$n
  fi
  for _ in $(seq 100); do [ "$(shown)" -ge "$n" ] && break; sleep 0.1; done
  [ "$(shown)" -ge "$n" ] || die "exporter shows $(shown) of $n containers"
  curl -s -o /dev/null "$URL"  # warm-up
  perf_pid=
  if [ -n "$PERF_OUT" ] && [ "$n" = "${COUNTS[-1]}" ]; then
    perf record -q -g -o "$PERF_OUT" -p "$PID" >/dev/null 2>&1 &
    perf_pid=$!
    sleep 1
  fi
  t0=$(cpu_ticks)
  plain=$(for _ in $(seq "$ROUNDS"); do curl -s -o /dev/null -w '%{time_total}\n' "$URL"; done |
    awk '{print $1*1000}' | median)
  t1=$(cpu_ticks)
  gzip=$(for _ in $(seq "$ROUNDS"); do
      curl -s -H 'Accept-Encoding: gzip' -o /dev/null -w '%{time_total}\n' "$URL"; done |
    awk '{print $1*1000}' | median)
  t2=$(cpu_ticks)
  if [ -n "$perf_pid" ]; then kill -INT "$perf_pid"; wait "$perf_pid"; fi
  bytes=$(curl -s "$URL" | wc -c)
  gz_bytes=$(curl -s -H 'Accept-Encoding: gzip' "$URL" | wc -c)
  cpu_ms=$(awk -v t=$((t1 - t0)) -v r="$ROUNDS" -v hz="$TICK" 'BEGIN {printf "%.2f", t*1000/hz/r}')
  cpu_gz_ms=$(awk -v t=$((t2 - t1)) -v r="$ROUNDS" -v hz="$TICK" 'BEGIN {printf "%.2f", t*1000/hz/r}')
  files=$(floor_files)
  floor=$(for _ in $(seq "$ROUNDS"); do
      s=$EPOCHREALTIME; echo "$files" | xargs cat >/dev/null 2>&1; e=$EPOCHREALTIME
      awk -v s="$s" -v e="$e" 'BEGIN {print (e-s)*1000}'; done | median)
  ratio=$(awk -v a="$plain" -v b="$floor" 'BEGIN {printf "%.2f", (b > 0 ? a/b : 0)}')
  per=$(awk -v c="$cpu_ms" -v n="$n" 'BEGIN {printf "%.1f", c*1000/n}')
  printf '%-6s %9.2f %9.2f %9s %9s %9s %9s %9.2f %7s %12s\n' "$n" "$plain" "$gzip" "$cpu_ms" \
    "$cpu_gz_ms" "$bytes" "$gz_bytes" "$floor" "$ratio" "$per"
done
echo "plain/gzip: median wall time of one scrape; cpu_ms/cpu_gz_ms: exporter CPU per plain/gzip scrape;"
echo "floor_ms: cat of the same files in one process; ratio: plain/floor; cpu_us/cont: CPU per container."
