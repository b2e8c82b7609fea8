#!/bin/bash
# image_unpack.sh - a large multi-layer image (made here from Debian packages' files, an
# uncompressed OCI archive) loaded and unpacked by nodeagent beside tar(1) doing the same,
# side by side in each round, each on fresh directories:
#
#   image unpack     `nodectl image unpack` of the image loaded with --skip-unpack: every
#                    layer unpacked from the content store (in parallel) and synced   (ours)
#     vs tar -x      `tar -x` of the same layer blobs, in parallel, + sync             (peer)
#   load --skip-unpack   the archive streamed to node-imaged, blobs verified and kept
#     vs tar -x archive  `tar -x` of the archive (its blobs land as files) + sync
#   load             `nodectl load`, layers unpacked while the archive streams in
#     vs tar -x archive + tar -x layers   the same work done by tar
#
# Prints each time and the ratio nodeagent/peer (< 1 means nodeagent is faster). Every time
# includes a sync. The pull from a registry is measured by registry_pull.sh.
#
# Nothing is deleted between or during the rounds (fresh directories each round, all removed
# at the end): on ext4 without a journal, creating files right after deleting tens of
# thousands is several times slower (inode allocation skips recently freed inodes), which
# would penalize whoever runs after a deletion.
#
# Needs root, a build (NODECTL=build/bin/nodectl, NODE_IMAGED=build/bin/node-imaged).
# Layers default to usr/include usr/lib/gcc usr/share/doc (about 500 MB); set
# LAYERS="usr/x usr/y ..." to change. ROUNDS (default 3) repeats each.
#
# Usage: tests/bench/image_unpack.sh
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
NODECTL=${NODECTL:-$HERE/../../build/bin/nodectl}
NODE_IMAGED=${NODE_IMAGED:-$HERE/../../build/bin/node-imaged}
LAYERS=${LAYERS:-usr/include usr/lib/gcc usr/share/doc}
ROUNDS=${ROUNDS:-3}

die() { echo "image_unpack: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || die "must run as root"
for b in tar sha256sum bc; do command -v $b >/dev/null || die "missing $b"; done
[ -x "$NODECTL" ] && [ -x "$NODE_IMAGED" ] || die "build first ($NODECTL, $NODE_IMAGED)"

WORK=$(mktemp -d /var/tmp/nodeagent-bench-image.XXXXXX)
IMAGED_PID=""
cleanup() {
  set +e
  if [ -n "$IMAGED_PID" ]; then kill "$IMAGED_PID" 2>/dev/null; wait "$IMAGED_PID" 2>/dev/null; fi
  rm -rf --one-file-system "$WORK"
}
trap cleanup EXIT

# shellcheck source=image_common.sh
source "$HERE/image_common.sh"

# --- the image: one uncompressed layer per directory, as an OCI layout and archive ---------
LAYOUT=$WORK/layout
make_layout "$LAYOUT" "$LAYERS" '"io.containerd.image.name":"bench/big:v1"'
tar -C "$LAYOUT" -cf "$WORK/image.tar" .
echo "image: ${#diff_ids[@]} layers ($LAYERS), $((total / 1000000)) MB of tar"

# --- rounds ---------------------------------------------------------------------------------
layer_files=()
for d in "${diff_ids[@]}"; do
  hex=${d//\"/}; hex=${hex#sha256:}
  layer_files+=("$LAYOUT/blobs/sha256/$hex")
done
ours_load() {
  start_imaged "load-$1"
  timed t_load "$NODECTL" load -q -i "$WORK/image.tar" >/dev/null
  stop_imaged
}
ours_skip_unpack_then_unpack() {
  start_imaged "lazy-$1"
  timed t_fetch "$NODECTL" load -q --skip-unpack -i "$WORK/image.tar" >/dev/null
  timed t_unpack "$NODECTL" image unpack bench/big:v1 >/dev/null
  stop_imaged
}
peer_tar() {
  mkdir -p "$WORK/tar-archive-$1"
  timed t_tar_archive tar -C "$WORK/tar-archive-$1" -xf "$WORK/image.tar"
  timed t_tar_layers extract_layers "$WORK/tarx-$1" -xpf "${layer_files[@]}"
}

r_unpack=()
r_fetch=()
r_load=()
for round in $(seq "$ROUNDS"); do
  run_round "$round" ours_load ours_skip_unpack_then_unpack peer_tar
  t_tar_both=$(echo "$t_tar_archive + $t_tar_layers" | bc -l)
  r_unpack+=("$(ratio "$t_unpack" "$t_tar_layers")")
  r_fetch+=("$(ratio "$t_fetch" "$t_tar_archive")")
  r_load+=("$(ratio "$t_load" "$t_tar_both")")
  printf 'round %d: image unpack %.2fs  vs tar -x of the layers %.2fs: ratio %s\n' \
    "$round" "$t_unpack" "$t_tar_layers" "${r_unpack[-1]}"
  printf '         load --skip-unpack %.2fs  vs tar -x of the archive %.2fs: ratio %s\n' \
    "$t_fetch" "$t_tar_archive" "${r_fetch[-1]}"
  printf '         load %.2fs  vs tar -x of the archive + of the layers %.2fs: ratio %s\n' \
    "$t_load" "$t_tar_both" "${r_load[-1]}"
done
echo "median ratios, nodeagent / tar (< 1: nodeagent faster):"
printf '  unpack the layers (image unpack / tar -x):            %.2f\n' "$(median "${r_unpack[@]}")"
printf '  store the archive (load --skip-unpack / tar -x):      %.2f\n' "$(median "${r_fetch[@]}")"
printf '  both (load / tar -x archive + tar -x layers):         %.2f\n' "$(median "${r_load[@]}")"
