#!/bin/bash
# image_common.sh - what image_unpack.sh and registry_pull.sh share, sourced by both: timing
# helpers, the benchmark image built from the host's own files, and a node-imaged of their own.
# Expects WORK, NODE_IMAGED and die() from the caller.

now() { date +%s.%N; }
elapsed() { echo "$2 - $1" | bc -l; }
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
join() { local IFS=,; echo "$*"; }

# make_layout LAYOUT "DIR..." [INDEX_ANNOTATIONS]: an OCI layout of one uncompressed layer per
# directory (tar of the host's DIR), tagged v1. Sets diff_ids (quoted digests) and total (bytes
# of tar). INDEX_ANNOTATIONS: more JSON members for the manifest's annotations in index.json.
make_layout() {
  local layout=$1 layers=$2 extra=${3:-} dir hex size config chex manifest mhex
  local -a layer_descs=()
  mkdir -p "$layout/blobs/sha256"
  echo '{"imageLayoutVersion":"1.0.0"}' > "$layout/oci-layout"
  diff_ids=()
  total=0
  for dir in $layers; do
    tar -C / --numeric-owner -cf "$WORK/layer.tar" "$dir"
    hex=$(sha256sum "$WORK/layer.tar" | cut -d' ' -f1)
    size=$(stat -c %s "$WORK/layer.tar")
    total=$((total + size))
    mv "$WORK/layer.tar" "$layout/blobs/sha256/$hex"
    diff_ids+=("\"sha256:$hex\"")
    layer_descs+=("{\"mediaType\":\"application/vnd.oci.image.layer.v1.tar\",\"digest\":\"sha256:$hex\",\"size\":$size}")
  done
  config="{\"architecture\":\"amd64\",\"os\":\"linux\",\"config\":{\"Cmd\":[\"sh\"]},\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[$(join "${diff_ids[@]}")]}}"
  printf '%s' "$config" > "$WORK/config"
  chex=$(sha256sum "$WORK/config" | cut -d' ' -f1)
  mv "$WORK/config" "$layout/blobs/sha256/$chex"
  manifest="{\"schemaVersion\":2,\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\",\"config\":{\"mediaType\":\"application/vnd.oci.image.config.v1+json\",\"digest\":\"sha256:$chex\",\"size\":${#config}},\"layers\":[$(join "${layer_descs[@]}")]}"
  printf '%s' "$manifest" > "$WORK/manifest"
  mhex=$(sha256sum "$WORK/manifest" | cut -d' ' -f1)
  mv "$WORK/manifest" "$layout/blobs/sha256/$mhex"
  echo "{\"schemaVersion\":2,\"manifests\":[{\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\",\"digest\":\"sha256:$mhex\",\"size\":${#manifest},\"annotations\":{\"org.opencontainers.image.ref.name\":\"v1\"${extra:+,$extra}}}]}" > "$layout/index.json"
}

# A node-imaged of the bench's own (start_imaged NAME [BINARY]), its socket exported for nodectl.
start_imaged() {
  local root=$WORK/node-$1 imaged=${2:-$NODE_IMAGED}
  "$imaged" --root "$root" --run-dir "$root.run" --log-level warning 2>"$root.log" &
  IMAGED_PID=$!
  export NODEAGENT_RUN_DIR=$root.run
  for _ in $(seq 100); do [ -S "$root.run/image.sock" ] && break; sleep 0.1; done
  [ -S "$root.run/image.sock" ] || die "node-imaged did not start: $(cat "$root.log")"
}
stop_imaged() { kill "$IMAGED_PID"; wait "$IMAGED_PID" 2>/dev/null || true; IMAGED_PID=""; }

# timed VAR COMMAND...: sets VAR to the seconds COMMAND takes, with the sync that makes its
# writes durable (a sync before too, so that nobody else's writes are counted).
timed() {
  local var=$1 t0
  shift
  sync; t0=$(now)
  "$@"
  sync
  printf -v "$var" '%s' "$(elapsed "$t0" "$(now)")"
}

# extract_layers DEST TAR_FLAGS FILE...: each layer file into DEST/<n>, all at once, as a
# parallel `tar -x` (the peer of an unpack that handles layers side by side).
extract_layers() {
  local dest=$1 flags=$2 i=0 file pid
  local -a pids=()
  shift 2
  for file in "$@"; do
    mkdir -p "$dest/$i"
    tar -C "$dest/$i" --numeric-owner "$flags" "$file" &
    pids+=($!)
    i=$((i + 1))
  done
  # Each one: `wait PID...` would only report the last.
  for pid in "${pids[@]}"; do wait "$pid" || die "tar $flags failed"; done
}

# run_round ROUND FN...: each FN (called with ROUND) once, in an order rotated by round, so
# that machine drift hits all alike. Each FN uses fresh directories: nothing is deleted
# during the rounds.
run_round() {
  local round=$1 n i
  shift
  local -a fns=("$@")
  n=${#fns[@]}
  for ((i = 0; i < n; i++)); do "${fns[$(((i + round) % n))]}" "$round"; done
}

# ratio A B: A / B with two decimals.
ratio() { printf '%.2f' "$(echo "$1 / $2" | bc -l)"; }
