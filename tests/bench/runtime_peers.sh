# runtime_peers.sh - sourced by the benchmarks that run crun and runc beside nodeagent
# (start_latency.sh, idle_memory.sh). Needs die() from the caller.

# crun 1.8 refuses hybrid cgroup hosts whose cgroup2 holds a controller (here hugetlb); like
# ../../../shared/bench/peers.sh, re-run the calling script in a private mount namespace with
# hugetlb bound to a v1 hierarchy, so every runtime is measured under the same setting.
# Call it first thing with the script's arguments: peers_private_hugetlb "$@"
peers_private_hugetlb() {
  if [ -z "${NABENCH_IN_NS:-}" ] &&
     [ -n "$(cat /sys/fs/cgroup/unified/cgroup.controllers 2>/dev/null)" ]; then
    export NABENCH_IN_NS=1
    exec unshare -m --propagation private bash -c '
      mkdir -p /sys/fs/cgroup/hugetlb && mount -t cgroup -o hugetlb cgroup /sys/fs/cgroup/hugetlb || exit 1
      bash "$0" "$@"; rc=$?
      umount /sys/fs/cgroup/hugetlb && rmdir /sys/fs/cgroup/hugetlb
      exit $rc' "$0" "$@"
  fi
}

# An OCI bundle for crun/runc made of the same busybox the built-in image is made of, running
# ARGS (a JSON list body, e.g. '"/bin/true"'). Kept between runs.
#   peers_busybox_bundle BUNDLE ARGS
peers_busybox_bundle() {
  local bundle=$1 args=$2 rootfs=$1/rootfs
  if [ -x "$rootfs/bin/busybox" ] && grep -qF "$args" "$bundle/config.json" 2>/dev/null; then
    return
  fi
  rm -rf "$bundle"
  mkdir -p "$rootfs"/{bin,proc,sys,dev,tmp,etc} || die "cannot create $rootfs"
  cp /bin/busybox "$rootfs/bin/busybox"
  chroot "$rootfs" /bin/busybox --install -s /bin || die "busybox --install failed"
  (cd "$bundle" && crun spec) || die "crun spec failed"
  sed -i -e 's/"terminal": true/"terminal": false/' \
         -e "s|^\([[:space:]]*\)\"sh\"\$|\1$args|" \
         -e 's/"readonly": true/"readonly": false/' "$bundle/config.json"
  grep -qF "$args" "$bundle/config.json" || die "could not edit $bundle/config.json"
}
