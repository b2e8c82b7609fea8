#!/bin/bash
# network_attach.sh - time to give a container its network (namespace, veth pair on a bridge,
# eth0 address, default route, lo up) through node-networkd, beside the same setup done with
# `ip` commands, in one run.
#
# Each round, in turn:
#   nodeagent  AttachContainer round trip as `nodectl network attach` measures it (the RPC alone,
#              not nodectl's own start), then DetachContainer
#   ip         ip netns add; ip link add ... type veth peer name eth0 netns NS; ip link set
#              master BR up; ip -n NS addr add; ip -n NS link set eth0 up; ip -n NS link set lo
#              up; ip -n NS route add default: wall time of the sequence (each step is a process,
#              as a shell script or a CNI-less tool pays it), then ip netns del
# The `ip` peer runs in a private mount namespace with its own tmpfs on /run/netns, so its
# pins never touch the host's mount table. Its bridge uses 10.213.254.0/24 (checked free).
# Prints medians (microseconds) and the median of per-round ratios.
#
# Usage: tests/bench/network_attach.sh [ROUNDS]   (default 30, after 3 warm-up rounds)
set -u
ROUNDS=${1:-30}
WARMUP=3

if [ -z "${NABENCH_ATTACH_IN_NS:-}" ]; then
  export NABENCH_ATTACH_IN_NS=1
  exec unshare -m --propagation private bash -c \
    'mkdir -p /run/netns && mount -t tmpfs tmpfs /run/netns && exec bash "$0" "$@"' "$0" "$@"
fi

source "$(dirname "$0")/network_common.sh"
BR=nabenchbr$$
PEER_SUBNET=10.213.254
ip -4 route show | grep -q "^$PEER_SUBNET\." && die "$PEER_SUBNET.0/24 is in use on this host"
cleanup() {
  ip link del "$BR" 2>/dev/null
  stop_networkd
}
trap cleanup EXIT

# The service's run dir is a tmpfs, as /run is wherever it runs for real (pins, leases and the
# containers' hosts files live there).
mkdir -p "$TOP/run" && mount -t tmpfs -o mode=0755 tmpfs "$TOP/run" || die "cannot mount tmpfs"
BEFORE_CLEANUP='umount -l "$TOP/run"'
start_networkd
nctl network create --subnet 10.213.253.0/24 benchattach >/dev/null || die "network create failed"
ip link add "$BR" type bridge && ip addr add "$PEER_SUBNET.1/24" dev "$BR" && ip link set "$BR" up ||
  die "cannot make bridge $BR"

ours_round() {  # prints microseconds
  local id=att$$-$1 out
  out=$(nctl network attach "$id" --network benchattach) || die "attach failed: $out"
  echo "$out" | field elapsed_us
  nctl network detach "$id" >/dev/null || die "detach failed"
}

ip_round() {  # prints microseconds
  local ns=nabench$$-$1 veth=nab$$x$1 ip=$PEER_SUBNET.$(( 2 + $1 % 250 )) t0 t1
  t0=$EPOCHREALTIME
  ip netns add "$ns" &&
    ip link add "$veth" type veth peer name eth0 netns "$ns" &&
    ip link set "$veth" master "$BR" up &&
    ip -n "$ns" addr add "$ip/24" dev eth0 &&
    ip -n "$ns" link set eth0 up &&
    ip -n "$ns" link set lo up &&
    ip -n "$ns" route add default via "$PEER_SUBNET.1" || die "ip sequence failed"
  t1=$EPOCHREALTIME
  ip netns del "$ns"
  ip link del "$veth" 2>/dev/null
  awk -v a="${t0/./}" -v b="${t1/./}" 'BEGIN {print b - a}'
}

for w in $(seq "$WARMUP"); do ours_round "w$w" >/dev/null; ip_round "$((200 + w))" >/dev/null; done
ours=() peer=() ratios=()
for r in $(seq "$ROUNDS"); do
  o=$(ours_round "$r")
  p=$(ip_round "$r")
  ours+=("$o") peer+=("$p")
  ratios+=("$(awk -v o="$o" -v p="$p" 'BEGIN {printf "%.3f", o / p}')")
done
mo=$(printf '%s\n' "${ours[@]}" | median)
mp=$(printf '%s\n' "${peer[@]}" | median)
echo "attach, median of $ROUNDS rounds: nodeagent ${mo} us, ip commands ${mp} us;" \
     "nodeagent/ip ratio (median of rounds): $(printf '%s\n' "${ratios[@]}" | median)"
echo "nodeagent attach: min $(printf '%s\n' "${ours[@]}" | sort -n | head -1) us," \
     "max $(printf '%s\n' "${ours[@]}" | sort -n | tail -1) us"
