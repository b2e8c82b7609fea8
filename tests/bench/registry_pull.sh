#!/bin/bash
# registry_pull.sh - a large multi-layer image (made here from Debian packages' files, pushed
# gzip-compressed with skopeo to Debian's docker-registry on loopback) pulled by nodeagent
# beside skopeo and tar doing the same, side by side in each round, on fresh directories:
#
#   pull --skip-unpack   `nodectl pull --skip-unpack`: download, verify and keep the blobs
#     vs skopeo copy     docker://... -> oci:DIR: the same                               (target)
#   image unpack         then `nodectl image unpack`: inflate, check diff ids, unpack
#     vs tar -xz         `tar -xzf` of skopeo's layer blobs, in parallel                 (target)
#   pull                 `nodectl pull` (a fresh node): download and unpack in one pass
#     vs skopeo copy + tar -xz   the same work done by the usual tools
#
# Every time includes a sync. Prints each time and the ratios ours/peer (< 1 means nodeagent
# is faster).
#
# Nothing is deleted between or during the rounds: every round gets fresh directories (new
# node-imaged roots, a new skopeo layout, a new tar directory) and all are removed at the end.
# Reason: on ext4 without a journal (this project's CI machine) inode allocation skips inodes
# freed in the last minute, one lookup each, so creating files right after deleting tens of
# thousands is several times slower; whoever runs after a deletion pays for it.
#
# Needs root, a build (NODECTL=build/bin/nodectl, NODE_IMAGED=build/bin/node-imaged),
# docker-registry, skopeo, curl, python3. Env: LAYERS (default usr/include usr/lib/gcc
# usr/share/doc, about 500 MB of tar), ROUNDS (default 3).
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
ours_pull() {
  start_imaged "pull-$1"
  timed t_pull "$NODECTL" pull -q --plain-http "$REF" >/dev/null
  stop_imaged
}
ours_fetch_then_unpack() {
  start_imaged "lazy-$1"
  timed t_fetch "$NODECTL" pull -q --skip-unpack --plain-http "$REF" >/dev/null
  timed t_unpack "$NODECTL" image unpack "$REF" >/dev/null
  stop_imaged
}
skopeo_layers() {  # skopeo_layers LAYOUT: the layer blob files of its one image
  python3 - "$1" <<'PY'
import json, sys
d = sys.argv[1]
m = json.load(open(f"{d}/index.json"))["manifests"][0]["digest"].split(":")[1]
for l in json.load(open(f"{d}/blobs/sha256/{m}"))["layers"]:
    print(f"{d}/blobs/sha256/" + l["digest"].split(":")[1])
PY
}
peer_skopeo_tar() {
  local dir=$WORK/skopeo-$1
  timed t_skopeo skopeo copy -q --src-tls-verify=false "docker://$REF" "oci:$dir:v1"
  local layers
  local -a files
  layers=$(skopeo_layers "$dir")  # Not `< <(...)`: set -e would not see it fail.
  mapfile -t files <<<"$layers"
  [ "${#files[@]}" -gt 0 ] && [ -f "${files[0]}" ] || die "no layer blobs in $dir"
  timed t_tar extract_layers "$WORK/tarx-$1" -xzpf "${files[@]}"
}

r_fetch=()
r_unpack=()
r_pull=()
r_both=()
for round in $(seq "$ROUNDS"); do
  run_round "$round" ours_pull ours_fetch_then_unpack peer_skopeo_tar
  t_peer_both=$(echo "$t_skopeo + $t_tar" | bc -l)
  t_ours_both=$(echo "$t_fetch + $t_unpack" | bc -l)
  r_fetch+=("$(ratio "$t_fetch" "$t_skopeo")")
  r_unpack+=("$(ratio "$t_unpack" "$t_tar")")
  r_pull+=("$(ratio "$t_pull" "$t_peer_both")")
  r_both+=("$(ratio "$t_ours_both" "$t_peer_both")")
  printf 'round %d: pull --skip-unpack %.2fs  vs skopeo copy %.2fs: ratio %s\n' \
    "$round" "$t_fetch" "$t_skopeo" "${r_fetch[-1]}"
  printf '         image unpack %.2fs  vs tar -xz of the layers %.2fs: ratio %s\n' \
    "$t_unpack" "$t_tar" "${r_unpack[-1]}"
  printf '         pull %.2fs, pull --skip-unpack + image unpack %.2fs  vs skopeo copy + tar -xz %.2fs: ratios %s, %s\n' \
    "$t_pull" "$t_ours_both" "$t_peer_both" "${r_pull[-1]}" "${r_both[-1]}"
done
echo "median ratios, nodeagent / peer (< 1: nodeagent faster):"
printf '  download and verify (pull --skip-unpack / skopeo copy):       %.2f\n' "$(median "${r_fetch[@]}")"
printf '  unpack the layers (image unpack / tar -xz):                   %.2f\n' "$(median "${r_unpack[@]}")"
printf '  both in one pass (pull / skopeo copy + tar -xz):              %.2f\n' "$(median "${r_pull[@]}")"
printf '  both in two steps (pull --skip-unpack + unpack / the same):   %.2f\n' "$(median "${r_both[@]}")"
