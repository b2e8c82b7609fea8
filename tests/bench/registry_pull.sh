#!/bin/bash
# registry_pull.sh - `nodectl pull` of a large multi-layer image (made here from Debian
# packages' files, pushed gzip-compressed with skopeo to Debian's docker-registry on loopback)
# against its peers, side by side in each round:
#
#   nodectl pull            download, verify (blob and diff id digests), unpack every layer,
#                           keep the blobs, syncfs                                     (ours)
#   skopeo copy             docker://... -> oci:DIR: download and verify blobs only, + sync
#   skopeo copy + tar -x    the same, then `tar -xzf` of every layer (in parallel) + sync:
#                           the same work as ours done by the usual tools
#
# Prints each time and the ratios ours/peer (< 1 means nodeagent is faster).
#
# Nothing is deleted between or during the rounds: every round gets fresh directories (a new
# node-imaged root, a new skopeo layout, a new tar directory) and all are removed at the end.
# Reason: on ext4 without a journal (this project's CI machine) inode allocation skips inodes
# freed in the last minute, one lookup each, so creating files right after deleting tens of
# thousands is several times slower; whoever runs after a deletion pays for it.
#
# Needs root, a build (NODECTL=build/bin/nodectl, NODE_IMAGED=build/bin/node-imaged),
# docker-registry, skopeo, curl, python3. Env: LAYERS (default usr/include usr/lib/gcc
# usr/share/doc, about 500 MB of tar), ROUNDS (default 3). BASE_NODECTL and BASE_NODE_IMAGED
# (optional): another build (say, before a change), pulled in the same rounds; its ratios and
# ours/base are printed too.
#
# Usage: tests/bench/registry_pull.sh
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
NODECTL=${NODECTL:-$HERE/../../build/bin/nodectl}
NODE_IMAGED=${NODE_IMAGED:-$HERE/../../build/bin/node-imaged}
LAYERS=${LAYERS:-usr/include usr/lib/gcc usr/share/doc}
ROUNDS=${ROUNDS:-3}

die() { echo "registry_pull: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || die "must run as root"
for b in docker-registry skopeo curl tar sha256sum python3 bc; do
  command -v $b >/dev/null || die "missing $b"
done
[ -x "$NODECTL" ] && [ -x "$NODE_IMAGED" ] || die "build first ($NODECTL, $NODE_IMAGED)"

WORK=$(mktemp -d /var/tmp/nodeagent-bench-pull.XXXXXX)
IMAGED_PID=""
REGISTRY_PID=""
cleanup() {
  set +e
  if [ -n "$IMAGED_PID" ]; then kill "$IMAGED_PID" 2>/dev/null; wait "$IMAGED_PID" 2>/dev/null; fi
  if [ -n "$REGISTRY_PID" ]; then kill "$REGISTRY_PID" 2>/dev/null; wait "$REGISTRY_PID" 2>/dev/null; fi
  rm -rf --one-file-system "$WORK"
}
trap cleanup EXIT

# shellcheck source=image_common.sh
source "$HERE/image_common.sh"

# --- the image: one layer per directory, as an OCI layout (skopeo compresses on push) -------
LAYOUT=$WORK/layout
make_layout "$LAYOUT" "$LAYERS"

# --- the registry ---------------------------------------------------------------------------
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat > "$WORK/registry.yml" <<YML
version: 0.1
log:
  level: error
storage:
  filesystem:
    rootdirectory: $WORK/registry
http:
  addr: 127.0.0.1:$PORT
YML
docker-registry serve "$WORK/registry.yml" >"$WORK/registry.log" 2>&1 &
REGISTRY_PID=$!
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$PORT/v2/" >/dev/null && break; sleep 0.1; done
REF=127.0.0.1:$PORT/bench/big:v1
skopeo copy -q --dest-tls-verify=false --dest-compress "oci:$LAYOUT:v1" "docker://$REF"
gz=$(du -sb "$WORK/registry" | cut -f1)
echo "image: ${#diff_ids[@]} layers ($LAYERS), $((total / 1000000)) MB of tar, $((gz / 1000000)) MB gzip in the registry"
sync
# After a test suite or another bench deleted many files, SETTLE_SECONDS=65 lets ext4 forget.
sleep "${SETTLE_SECONDS:-0}"

# --- rounds ---------------------------------------------------------------------------------
run_ours() {
  sync; local t0; t0=$(now)
  "${1:-$NODECTL}" pull -q --plain-http "$REF" >/dev/null
  ours=$(elapsed "$t0" "$(now)")
}
run_skopeo() {
  local dir=$WORK/skopeo-$1
  sync; local t0; t0=$(now)
  skopeo copy -q --src-tls-verify=false "docker://$REF" "oci:$dir:v1"
  sync; skopeo_only=$(elapsed "$t0" "$(now)")
  local blob
  local -a files=()
  for blob in $(python3 -c 'import json,sys; m=json.load(open(sys.argv[1])); print(" ".join(l["digest"].split(":")[1] for l in m["layers"]))' \
      "$dir/blobs/sha256/$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["manifests"][0]["digest"].split(":")[1])' "$dir/index.json")"); do
    files+=("$dir/blobs/sha256/$blob")
  done
  extract_layers "$WORK/tarx-$1" -xzpf "${files[@]}"
  sync; skopeo_tar=$(elapsed "$t0" "$(now)")
}

r_skopeo=()
r_tar=()
b_skopeo=()
b_tar=()
ours_base=()
for round in $(seq "$ROUNDS"); do
  run_round "$round" run_skopeo
  a=$(echo "$ours / $skopeo_only" | bc -l); b=$(echo "$ours / $skopeo_tar" | bc -l)
  r_skopeo+=("$a"); r_tar+=("$b")
  printf 'round %d: nodectl pull %.2fs   skopeo copy %.2fs (ratio %.2f)   skopeo copy + tar -xz %.2fs (ratio %.2f)\n' \
    "$round" "$ours" "$skopeo_only" "$a" "$skopeo_tar" "$b"
  if [ -n "$BASE_NODE_IMAGED" ]; then
    b_skopeo+=("$(echo "$base / $skopeo_only" | bc -l)")
    b_tar+=("$(echo "$base / $skopeo_tar" | bc -l)")
    ours_base+=("$(echo "$ours / $base" | bc -l)")
    printf '         base build pull %.2fs (ratio to skopeo %.2f, to skopeo + tar %.2f)   ours/base %.2f\n' \
      "$base" "${b_skopeo[-1]}" "${b_tar[-1]}" "${ours_base[-1]}"
  fi
done
printf 'median ratio nodectl pull / skopeo copy: %.2f (skopeo only downloads; we also unpack)\n' "$(median "${r_skopeo[@]}")"
printf 'median ratio nodectl pull / (skopeo copy + tar -xz): %.2f\n' "$(median "${r_tar[@]}")"
if [ -n "$BASE_NODE_IMAGED" ]; then
  printf 'base build: median ratio to skopeo copy %.2f, to skopeo copy + tar -xz %.2f; median ours/base %.2f\n' \
    "$(median "${b_skopeo[@]}")" "$(median "${b_tar[@]}")" "$(median "${ours_base[@]}")"
fi
