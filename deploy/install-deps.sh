#!/bin/bash
# install-deps.sh - installs every Debian 12 package that nodeagent's build, tests and
# run need, plus `buf` (npm @bufbuild/buf) as the third-party gRPC reflection client.
# Idempotent and non-interactive: packages already present are skipped by apt-get.
set -euo pipefail

[ "$(id -u)" = 0 ] || { echo "install-deps.sh: must run as root" >&2; exit 1; }

packages=(
  # toolchain
  build-essential cmake ninja-build ccache pkg-config git clang-format
  # gRPC / protobuf / Abseil / Prometheus / tests (the fixed stack)
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler libabsl-dev
  prometheus-cpp-dev libgtest-dev libgmock-dev
  # libraries the services use
  nlohmann-json3-dev libcli11-dev libarchive-dev libssl-dev libsqlite3-dev
  libseccomp-dev libcap-dev
  # runtime: the built-in busybox image; peers for benchmarks; tools tests use
  busybox-static crun runc util-linux iproute2 procps
  # image service: registry HTTP(S) (libcurl); peers and test tools (a registry, skopeo,
  # umoci, openssl for test certificates); clang's libFuzzer runtime for the parser fuzzer
  libcurl4-openssl-dev docker-registry skopeo umoci openssl curl bc clang libclang-rt-14-dev
  # image service: ISA-L's gzip inflate for layers; htpasswd (bcrypt) for the registry-auth test
  libisal-dev apache2-utils
  # network service: rtnetlink (libmnl), NAT rules (libnftables, nft for tests), iperf3 bench
  libmnl-dev libnftables-dev nftables iperf3
  # metrics: Prometheus (promtool and the end-to-end test's real Prometheus); curl for its bench
  prometheus curl
  # buf (reflection client) comes from npm
  nodejs
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# npm ships inside nodesource's nodejs; Debian's nodejs needs the separate npm package.
if ! command -v npm >/dev/null; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends npm
fi

# buf: a real gRPC client with server reflection (grpcurl is not packaged in Debian 12).
BUF_PREFIX=${BUF_PREFIX:-/opt/nodeagent/buf}
if [ ! -x "$BUF_PREFIX/node_modules/.bin/buf" ]; then
  mkdir -p "$BUF_PREFIX"
  npm install --silent --no-audit --no-fund --prefix "$BUF_PREFIX" @bufbuild/buf >/dev/null
fi
ln -sf "$BUF_PREFIX/node_modules/.bin/buf" /usr/local/bin/buf
echo "install-deps.sh: all dependencies present"
