#!/usr/bin/env bash
# Installs everything the demo, the tests and the benchmarks need on a fresh Debian machine:
# system tools (as root, through apt-get) and the workspace (pnpm via npx; corepack does not
# work offline-signed registries), then builds the native addon and the TypeScript.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v ip >/dev/null || need+=(iproute2)
command -v ping >/dev/null || need+=(iputils-ping)
command -v tshark >/dev/null || need+=(tshark)
command -v tcpdump >/dev/null || need+=(tcpdump)
command -v iperf3 >/dev/null || need+=(iperf3)
command -v wireguard-go >/dev/null || need+=(wireguard-go)
command -v wg >/dev/null || need+=(wireguard-tools)
command -v serf >/dev/null || need+=(serf)
command -v tc >/dev/null || need+=(iproute2)
command -v ethtool >/dev/null || need+=(ethtool)
if [ ${#need[@]} -gt 0 ]; then
  echo "setup: installing ${need[*]} (apt-get)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q >/dev/null
  apt-get install -y -q --no-install-recommends "${need[@]}" >/dev/null
fi

echo "setup: installing the workspace (pnpm)"
npx -y pnpm@10 install --frozen-lockfile --reporter=append-only 2>&1 | tail -n 3
if [ -f packages/native/binding.gyp ]; then
  echo "setup: building the native addon (node-gyp)"
  (cd packages/native && npx -y pnpm@10 run build:native 2>&1 | tail -n 2)
fi
echo "setup: compiling TypeScript"
npx tsc -b
