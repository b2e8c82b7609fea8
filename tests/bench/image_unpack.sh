#!/bin/bash
# image_unpack.sh - `nodectl load -i IMAGE.tar` of a large multi-layer image (made here from
# Debian packages' files, an uncompressed OCI archive) beside `tar -x` of the same layers,
# in each round:
#
#   nodectl load       the archive streamed to node-imaged, blobs verified and kept, layers
#                      unpacked (in parallel) and synced                               (ours)
#   tar -x + sync      tar -x of each layer blob already on disk, in parallel, + sync
#
# Prints each time and the ratio nodeagent/peer (< 1 means nodeagent is faster).
# The pull from a registry is measured by registry_pull.sh.
#
# Nothing is deleted between or during the rounds (fresh directories each round, all removed
# at the end): on ext4 without a journal, creating files right after deleting tens of
# thousands is several times slower (inode allocation skips recently freed inodes), which
# would penalize whoever runs after a deletion.
#
# Needs root, a build (NODECTL=build/bin/nodectl, NODE_IMAGED=build/bin/node-imaged).
# Layers default to usr/include usr/lib/gcc usr/share/doc (about 500 MB); set
# LAYERS="usr/x usr/y ..." to change. ROUNDS (default 3) repeats each pair.
# BASE_NODECTL and BASE_NODE_IMAGED (optional): another build (say, before a change), timed
# in the same rounds; its ratio to tar and ours/base are printed too.
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
run_ours() {
  sync; local t0; t0=$(now)
  "${1:-$NODECTL}" load -q -i "$WORK/image.tar" >/dev/null
  ours=$(elapsed "$t0" "$(now)")
}
run_tar() {
  local d hex t0
  local -a files=()
  for d in "${diff_ids[@]}"; do
    hex=${d//\"/}; hex=${hex#sha256:}
    files+=("$LAYOUT/blobs/sha256/$hex")
  done
  sync; t0=$(now)
  extract_layers "$WORK/tarx-$1" -xpf "${files[@]}"
  sync; peer=$(elapsed "$t0" "$(now)")
}

ratios=()
base_ratios=()
ours_base=()
for round in $(seq "$ROUNDS"); do
  run_round "$round" run_tar
  ratio=$(echo "$ours / $peer" | bc -l)
  ratios+=("$ratio")
  printf 'round %d: nodectl load %.2fs   tar -x (parallel) + sync %.2fs   ratio %.2f\n' "$round" "$ours" "$peer" "$ratio"
  if [ -n "$BASE_NODE_IMAGED" ]; then
    base_ratios+=("$(echo "$base / $peer" | bc -l)")
    ours_base+=("$(echo "$ours / $base" | bc -l)")
    printf '         base build load %.2fs   ratio to tar %.2f   ours/base %.2f\n' "$base" \
      "${base_ratios[-1]}" "${ours_base[-1]}"
  fi
done
printf 'median ratio nodectl load / tar -x: %.2f\n' "$(median "${ratios[@]}")"
if [ -n "$BASE_NODE_IMAGED" ]; then
  printf 'median ratio base build load / tar -x: %.2f   median ours/base: %.2f\n' \
    "$(median "${base_ratios[@]}")" "$(median "${ours_base[@]}")"
fi
