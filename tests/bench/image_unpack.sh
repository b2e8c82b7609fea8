#!/bin/bash
# image_unpack.sh - a large multi-layer image (made here from Debian packages' files), measured
# two ways, each beside its peer in the same run:
#
#   unpack  nodectl load -i IMAGE.tar   (OCI archive: blobs verified, layers unpacked and
#                                         synced, blobs kept)   vs  tar -x of each layer + sync
#   pull    nodectl pull from a local docker-registry (download, verify, unpack, keep blobs)
#                                        vs  skopeo copy docker://... oci:DIR (download only)
#
# Prints each time and the ratio nodeagent/peer (< 1 means nodeagent is faster).
#
# Needs root, a build (NODECTL=build/bin/nodectl, NODE_IMAGED=build/bin/node-imaged),
# docker-registry, skopeo, curl. Layers default to usr/include usr/lib/gcc usr/share/doc
# (about 500 MB); set LAYERS="usr/x usr/y ..." to change. ROUNDS (default 3) repeats each pair.
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
for b in docker-registry skopeo curl tar sha256sum; do command -v $b >/dev/null || die "missing $b"; done
[ -x "$NODECTL" ] && [ -x "$NODE_IMAGED" ] || die "build first ($NODECTL, $NODE_IMAGED)"

WORK=$(mktemp -d /var/tmp/nodeagent-bench-image.XXXXXX)
IMAGED_PID=""
REGISTRY_PID=""
cleanup() {
  set +e
  if [ -n "$IMAGED_PID" ]; then kill "$IMAGED_PID" 2>/dev/null; wait "$IMAGED_PID" 2>/dev/null; fi
  if [ -n "$REGISTRY_PID" ]; then kill "$REGISTRY_PID" 2>/dev/null; wait "$REGISTRY_PID" 2>/dev/null; fi
  rm -rf --one-file-system "$WORK"
}
trap cleanup EXIT

now() { date +%s.%N; }
elapsed() { echo "$2 - $1" | bc -l; }

# --- the image: one uncompressed layer per directory, as an OCI layout and archive ---------
LAYOUT=$WORK/layout
mkdir -p "$LAYOUT/blobs/sha256"
echo '{"imageLayoutVersion":"1.0.0"}' > "$LAYOUT/oci-layout"
diff_ids=()
layer_descs=()
total=0
for dir in $LAYERS; do
  tar -C / --numeric-owner -cf "$WORK/layer.tar" "$dir"
  hex=$(sha256sum "$WORK/layer.tar" | cut -d' ' -f1)
  size=$(stat -c %s "$WORK/layer.tar")
  total=$((total + size))
  mv "$WORK/layer.tar" "$LAYOUT/blobs/sha256/$hex"
  diff_ids+=("\"sha256:$hex\"")
  layer_descs+=("{\"mediaType\":\"application/vnd.oci.image.layer.v1.tar\",\"digest\":\"sha256:$hex\",\"size\":$size}")
done
join() { local IFS=,; echo "$*"; }
config="{\"architecture\":\"amd64\",\"os\":\"linux\",\"config\":{\"Cmd\":[\"sh\"]},\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[$(join "${diff_ids[@]}")]}}"
printf '%s' "$config" > "$WORK/config"
chex=$(sha256sum "$WORK/config" | cut -d' ' -f1)
mv "$WORK/config" "$LAYOUT/blobs/sha256/$chex"
manifest="{\"schemaVersion\":2,\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\",\"config\":{\"mediaType\":\"application/vnd.oci.image.config.v1+json\",\"digest\":\"sha256:$chex\",\"size\":${#config}},\"layers\":[$(join "${layer_descs[@]}")]}"
printf '%s' "$manifest" > "$WORK/manifest"
mhex=$(sha256sum "$WORK/manifest" | cut -d' ' -f1)
mv "$WORK/manifest" "$LAYOUT/blobs/sha256/$mhex"
echo "{\"schemaVersion\":2,\"manifests\":[{\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\",\"digest\":\"sha256:$mhex\",\"size\":${#manifest},\"annotations\":{\"org.opencontainers.image.ref.name\":\"v1\",\"io.containerd.image.name\":\"bench/big:v1\"}}]}" > "$LAYOUT/index.json"
tar -C "$LAYOUT" -cf "$WORK/image.tar" .
echo "image: ${#diff_ids[@]} layers ($LAYERS), $((total / 1000000)) MB of tar"

# --- a node-imaged of our own --------------------------------------------------------------
"$NODE_IMAGED" --root "$WORK/root" --run-dir "$WORK/run" --log-level warning 2>"$WORK/imaged.log" &
IMAGED_PID=$!
export NODEAGENT_RUN_DIR=$WORK/run
for _ in $(seq 100); do [ -S "$WORK/run/image.sock" ] && break; sleep 0.1; done
[ -S "$WORK/run/image.sock" ] || die "node-imaged did not start: $(cat "$WORK/imaged.log")"

reset_store() {
  "$NODECTL" rmi -f bench/big:v1 >/dev/null 2>&1 || true
  "$NODECTL" rmi -f "127.0.0.1:$PORT/bench/big:v1" >/dev/null 2>&1 || true
  "$NODECTL" image prune -a >/dev/null
}

PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
ratios_unpack=()
for round in $(seq "$ROUNDS"); do
  reset_store
  sync; t0=$(now)
  "$NODECTL" load -q -i "$WORK/image.tar" >/dev/null
  t1=$(now)
  rm -rf "$WORK/tarx"; mkdir -p "$WORK/tarx"
  sync; t2=$(now)
  i=0
  for d in ${diff_ids[@]}; do
    hex=${d//\"/}; hex=${hex#sha256:}
    mkdir -p "$WORK/tarx/$i"; tar -C "$WORK/tarx/$i" --numeric-owner -xpf "$LAYOUT/blobs/sha256/$hex"
    i=$((i + 1))
  done
  sync; t3=$(now)
  ours=$(elapsed "$t0" "$t1"); peer=$(elapsed "$t2" "$t3")
  ratio=$(echo "$ours / $peer" | bc -l)
  ratios_unpack+=("$ratio")
  printf 'unpack round %d: nodectl load %.2fs   tar -x + sync %.2fs   ratio %.2f\n' "$round" "$ours" "$peer" "$ratio"
done
rm -rf "$WORK/tarx"

# --- pull from a local registry --------------------------------------------------------------
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
# gzip layers, as registries usually serve them
skopeo copy -q --dest-tls-verify=false --dest-compress "oci:$LAYOUT:v1" "docker://$REF"
ratios_pull=()
for round in $(seq "$ROUNDS"); do
  reset_store
  rm -rf "$WORK/skopeo-layout"
  sync; t0=$(now)
  "$NODECTL" pull -q --plain-http "$REF" >/dev/null
  t1=$(now)
  sync; t2=$(now)
  skopeo copy -q --src-tls-verify=false "docker://$REF" "oci:$WORK/skopeo-layout:v1"
  sync; t3=$(now)
  ours=$(elapsed "$t0" "$t1"); peer=$(elapsed "$t2" "$t3")
  ratio=$(echo "$ours / $peer" | bc -l)
  ratios_pull+=("$ratio")
  printf 'pull round %d: nodectl pull (download+verify+unpack) %.2fs   skopeo copy (download) %.2fs   ratio %.2f\n' \
    "$round" "$ours" "$peer" "$ratio"
done

median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
printf 'median ratio nodeagent/peer: unpack %.2f (vs tar -x), pull %.2f (vs skopeo copy)\n' \
  "$(median "${ratios_unpack[@]}")" "$(median "${ratios_pull[@]}")"
