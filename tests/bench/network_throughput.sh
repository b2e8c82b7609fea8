#!/bin/bash
# network_throughput.sh - TCP throughput container-to-container over a nodeagent bridge network
# beside host loopback, with iperf3 (Debian's), in one run.
#
# Each round runs, in turn (so machine drift hits all alike):
#   bridge    iperf3 client in container B's network namespace -> server in container A's, both
#             attached to one network by node-networkd (veth -> bridge -> veth); twice: on a
#             network made with --mtu 1500 (Docker's MTU) and on one made without --mtu (the
#             service's default, 65000)
#   loopback  iperf3 client -> server on the host's 127.0.0.1
# The namespaces are the ones the network service makes for containers (what node-shim joins);
# iperf3 runs in them through nsenter, so the binary need not be inside an image.
# Prints each run's Gbit/s, the medians, and the median of the per-round ratios.
#
# Usage: tests/bench/network_throughput.sh [ROUNDS] [SECONDS]   (default 5 rounds of 5 s)
set -u
ROUNDS=${1:-5}
SECONDS_PER_RUN=${2:-5}
source "$(dirname "$0")/network_common.sh"
command -v iperf3 >/dev/null || die "missing iperf3 (apt-get install iperf3)"
trap stop_networkd EXIT

start_networkd
# Two networks: --mtu 1500 (Docker's) and the default (65000, close to loopback's 65536), each
# with a server and a client container.
declare -A NS IP
for mtu in 1500 65000; do
  if [ "$mtu" = 1500 ]; then flag=(--mtu 1500); else flag=(); fi
  nctl network create "${flag[@]}" "bench$mtu" >/dev/null || die "network create failed"
  got=$(nctl --format json network inspect "bench$mtu" | sed -n 's/.*"mtu": \([0-9]*\).*/\1/p')
  [ "$got" = "$mtu" ] || die "network bench$mtu has MTU $got, not $mtu"
  A=$(nctl network attach "ipa$$-$mtu" --name "server$mtu" --network "bench$mtu") || die "attach failed"
  B=$(nctl network attach "ipb$$-$mtu" --name "client$mtu" --network "bench$mtu") || die "attach failed"
  NS[a$mtu]=$(echo "$A" | field netns_path)
  NS[b$mtu]=$(echo "$B" | field netns_path)
  IP[$mtu]=$(echo "$A" | field ip_address | cut -d/ -f1)
done

# One iperf3 run; prints Gbit/s received. $1: netns of the server ("" = host), $2: client netns,
# $3: server address.
run_iperf() {
  local server_ns=$1 client_ns=$2 addr=$3 port pid out
  port=$(( 20000 + RANDOM % 20000 ))
  if [ -n "$server_ns" ]; then
    nsenter --net="$server_ns" iperf3 -s -1 -B "$addr" -p "$port" >/dev/null 2>&1 &
  else
    iperf3 -s -1 -B "$addr" -p "$port" >/dev/null 2>&1 &
  fi
  pid=$!
  for _ in $(seq 50); do
    if [ -n "$client_ns" ]; then
      out=$(nsenter --net="$client_ns" iperf3 -c "$addr" -p "$port" -t "$SECONDS_PER_RUN" -J 2>/dev/null)
    else
      out=$(iperf3 -c "$addr" -p "$port" -t "$SECONDS_PER_RUN" -J 2>/dev/null)
    fi
    echo "$out" | grep -q '"sum_received"' && break
    sleep 0.1
  done
  kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null
  echo "$out" | tr -d '[:space:]' | sed -n 's/.*"sum_received":{[^}]*"bits_per_second":\([0-9.e+]*\).*/\1/p' |
    awk '{printf "%.2f\n", $1 / 1e9}'
}

echo "round   bridge-mtu1500   bridge-default(65000)   loopback   (Gbit/s)   ratios to loopback"
b1_all=() b2_all=() l_all=() r1=() r2=()
for r in $(seq "$ROUNDS"); do
  b1=$(run_iperf "${NS[a1500]}" "${NS[b1500]}" "${IP[1500]}")
  b2=$(run_iperf "${NS[a65000]}" "${NS[b65000]}" "${IP[65000]}")
  l=$(run_iperf "" "" 127.0.0.1)
  [ -n "$b1" ] && [ -n "$b2" ] && [ -n "$l" ] || die "iperf3 failed (round $r)"
  q1=$(awk -v b="$b1" -v l="$l" 'BEGIN {printf "%.3f", b / l}')
  q2=$(awk -v b="$b2" -v l="$l" 'BEGIN {printf "%.3f", b / l}')
  printf "%5d   %14s   %21s   %8s              %s  %s\n" "$r" "$b1" "$b2" "$l" "$q1" "$q2"
  b1_all+=("$b1") b2_all+=("$b2") l_all+=("$l") r1+=("$q1") r2+=("$q2")
done
echo "median Gbit/s: bridge mtu 1500 $(printf '%s\n' "${b1_all[@]}" | median)," \
     "bridge default mtu 65000 $(printf '%s\n' "${b2_all[@]}" | median)," \
     "loopback $(printf '%s\n' "${l_all[@]}" | median)"
echo "bridge/loopback ratio (median of rounds): mtu 1500 $(printf '%s\n' "${r1[@]}" | median)," \
     "default mtu 65000 $(printf '%s\n' "${r2[@]}" | median)"
echo "br_netfilter: net.bridge.bridge-nf-call-iptables=$(cat /proc/sys/net/bridge/bridge-nf-call-iptables 2>/dev/null || echo absent)"
