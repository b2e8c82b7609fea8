#!/bin/bash
# screenshot.sh - the picture of the dashboards' panels in the README, with real data.
#
# Starts a node of its own (private dirs, exporter on a free loopback port) with a few demo
# containers (a --cpus 0.5 burner, a 1-core batch job, a 150 MiB cache under a 256 MiB limit, an
# idle one), runs Debian's Prometheus with deploy/prometheus.yml pointed at it, waits DURATION
# seconds, fetches every panel query of dashboards/nodeagent-containers.json over that window
# from Prometheus's HTTP API, draws the panels (render.py) and photographs the page with
# headless Chromium. Grafana is not packaged in Debian, hence this stand-in for its renderer.
# Installs chromium (Debian package) if missing. Needs root and a build.
#
# Usage: dashboards/screenshot.sh [OUT.png]   (default dashboards/screenshot.png; DURATION=180)
set -eu

HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/.." && pwd)
NODECTL=${NODECTL:-$REPO/build/bin/nodectl}
OUT=${1:-$HERE/screenshot.png}
DURATION=${DURATION:-180}
DASHBOARD=${DASHBOARD:-$HERE/nodeagent-containers.json}
TOP=/var/tmp/nodeagent-screenshot-$$
RUN_DIR=$TOP/run
PARENT=nodeagent-screenshot-$$

die() { echo "screenshot: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || die "must run as root"
[ -x "$NODECTL" ] || die "missing $NODECTL (build first)"
command -v prometheus >/dev/null || die "missing prometheus (deploy/install-deps.sh)"
if ! command -v chromium >/dev/null; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null
fi
for t in curl python3 chromium; do command -v $t >/dev/null || die "missing $t"; done

nctl() { "$NODECTL" --run-dir "$RUN_DIR" "$@"; }
PROM_PID=
cleanup() {
  [ -n "$PROM_PID" ] && kill "$PROM_PID" 2>/dev/null && wait "$PROM_PID" 2>/dev/null
  nctl ps -a -q 2>/dev/null | xargs -r "$NODECTL" --run-dir "$RUN_DIR" rm -f >/dev/null 2>&1
  # Networks outlive the services: remove them (bridges, nftables) before the state goes.
  nctl network ls -q 2>/dev/null | xargs -r -n1 "$NODECTL" --run-dir "$RUN_DIR" network rm \
    >/dev/null 2>&1
  nctl down >/dev/null 2>&1
  for d in /sys/fs/cgroup/*/"$PARENT" /sys/fs/cgroup/"$PARENT"; do [ -d "$d" ] && rmdir "$d"; done
  rm -rf --one-file-system "$TOP"
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

mkdir -p "$TOP"
nctl up --root "$TOP/state" --log-dir "$TOP/log" --metrics-address 127.0.0.1:0 \
  --cgroup-parent "$PARENT" >/dev/null || die "nodectl up failed"
EXPORTER=$(grep -o 'ports [0-9]*' "$TOP/log/metrics.log" | tail -1 | cut -d' ' -f2)

PROM_PORT=$(free_port)
sed -e "s/127.0.0.1:9323/127.0.0.1:$EXPORTER/" -e 's/scrape_interval: 15s/scrape_interval: 2s/' \
  "$REPO/deploy/prometheus.yml" > "$TOP/prometheus.yml"
prometheus --config.file="$TOP/prometheus.yml" --storage.tsdb.path="$TOP/data" \
  --web.listen-address="127.0.0.1:$PROM_PORT" --log.level=warn > "$TOP/prometheus.log" 2>&1 &
PROM_PID=$!

nctl run -d --name web --cpus 0.5 --label tier=front busybox sh -c 'while :; do :; done' >/dev/null
nctl run -d --name batch --cpus 1 busybox sh -c 'while :; do :; done' >/dev/null
nctl run -d --name cache -m 256m busybox sh -c \
  'sleep 20; dd if=/dev/zero bs=150M count=1 2>/dev/null | sleep 3600' >/dev/null
nctl run -d --name idle -m 64m busybox sleep 3600 >/dev/null
echo "screenshot: collecting ${DURATION}s of data (Prometheus on 127.0.0.1:$PROM_PORT)"
sleep "$DURATION"

END=$(date +%s)
START=$((END - DURATION))
python3 - "$DASHBOARD" "$TOP/data.json" "$PROM_PORT" "$START" "$END" <<'PY'
import json, sys, urllib.parse, urllib.request
dashboard, out, port, start, end = sys.argv[1:]
data = {}
for panel in json.load(open(dashboard))["panels"]:
    for target in panel["targets"]:
        expr = target["expr"]
        query = expr.replace("$container", ".+").replace("$__rate_interval", "10s")
        url = f"http://127.0.0.1:{port}/api/v1/query_range?" + urllib.parse.urlencode(
            {"query": query, "start": start, "end": end, "step": "2"})
        data[expr] = json.load(urllib.request.urlopen(url))
json.dump(data, open(out, "w"))
PY
python3 "$HERE/render.py" "$DASHBOARD" "$TOP/data.json" "$TOP/dashboard.html"
# The page is as tall as the dashboard's rows (render.py: 34 px a grid row, 60 px of header).
HEIGHT=$(python3 -c 'import json, sys; p = json.load(open(sys.argv[1]))["panels"]
print(max(x["gridPos"]["y"] + x["gridPos"]["h"] for x in p) * 34 + 60)' "$DASHBOARD")
chromium --headless --no-sandbox --disable-gpu --hide-scrollbars --window-size=1540,"$HEIGHT" \
  --screenshot="$OUT" "file://$TOP/dashboard.html" >/dev/null 2>&1 || die "chromium failed"
echo "screenshot: wrote $OUT"
