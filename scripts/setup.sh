#!/usr/bin/env bash
# Installs everything the demo, the tests and the benchmarks need on a fresh Debian machine:
# every program they spawn (as root, through apt-get), the workspace (pnpm via npx; corepack
# does not work with offline-signed registries), the native addon (node-gyp) and the
# TypeScript (tsc -b). Idempotent and silent when everything is already there; apt-get update
# runs only when a program is missing. Ends by checking each program with `command -v` and fails
# naming the ones still missing.
#
#   bash scripts/setup.sh [program:package …]   # extra tools, e.g. bench/run.sh's comparison peers
set -euo pipefail
cd "$(dirname "$0")/.."
# ip, tc, nft and ethtool live in sbin, which a non-login root shell may not have on PATH
case ":$PATH:" in
  *:/usr/sbin:*) ;;
  *) export PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin" ;;
esac

# program:Debian package. Every program that test/, packages/*/test/, bench/ and scripts/ spawn
# must be here or, when only a benchmark uses it, in bench/run.sh's list;
# test/setup-coverage.test.ts scans the sources and fails when one is missing.
tools=(
  ip:iproute2 tc:iproute2 bridge:iproute2 ss:iproute2
  ping:iputils-ping
  nft:nftables
  ethtool:ethtool
  tcpdump:tcpdump
  tshark:tshark
  iperf3:iperf3
  wireguard-go:wireguard-go
  wg:wireguard-tools
  serf:serf
  dig:bind9-dnsutils
  dnsmasq:dnsmasq-base
  curl:curl
  openssl:openssl
  git:git
  etcd:etcd-server etcdctl:etcd-client
  sysctl:procps systemd-analyze:systemd
  # the native addon's build (node-gyp)
  make:make cc:gcc g++:g++ python3:python3
  "$@"
)

# Quiet steps: their output is shown only when they fail.
quiet() {
  local what=$1 log
  shift
  log=$(mktemp)
  if ! "$@" >"$log" 2>&1; then
    echo "setup: $what failed:" >&2
    tail -n 40 "$log" >&2
    rm -f "$log"
    exit 1
  fi
  rm -f "$log"
}

missing() {
  local t
  for t in "${tools[@]}"; do command -v "${t%%:*}" >/dev/null || echo "$t"; done
}

mapfile -t absent < <(missing)
if [ ${#absent[@]} -gt 0 ]; then
  pkgs=$(printf '%s\n' "${absent[@]#*:}" | sort -u | tr '\n' ' ')
  echo "setup: installing ${pkgs% } (apt-get) for ${absent[*]%%:*}"
  export DEBIAN_FRONTEND=noninteractive
  quiet "apt-get update" apt-get update -q
  # shellcheck disable=SC2086 # one word per package
  quiet "apt-get install" apt-get install -y -q --no-install-recommends $pkgs
  mapfile -t absent < <(missing)
  if [ ${#absent[@]} -gt 0 ]; then
    echo "setup: still missing after apt-get: ${absent[*]%%:*}" >&2
    exit 1
  fi
fi

# The workspace: pnpm install is a no-op when node_modules matches the lockfile.
if [ ! -f node_modules/.modules.yaml ] || [ pnpm-lock.yaml -nt node_modules/.modules.yaml ]; then
  echo "setup: installing the workspace (pnpm)"
fi
quiet "pnpm install" npx -y pnpm@10 install --frozen-lockfile --reporter=append-only

# The native addon: rebuilt only when a C source or binding.gyp is newer than the build.
addon=packages/native/build/Release/overlay_native.node
if [ -f packages/native/binding.gyp ]; then
  stale=
  if [ ! -f "$addon" ]; then
    stale=1
  else
    for f in packages/native/binding.gyp packages/native/csrc/*; do
      [ "$f" -nt "$addon" ] && stale=1
    done
  fi
  if [ -n "$stale" ]; then
    echo "setup: building the native addon (node-gyp)"
    (cd packages/native && quiet "node-gyp" npx -y pnpm@10 run build:native)
  fi
fi

# TypeScript: tsc -b is incremental and prints nothing when it succeeds.
npx tsc -b
# The agent's bin runs a single bundle of dist/ while it is fresh (packages/agent/scripts/bundle.mjs,
# docs/agent-memory.md): rebuilt only when a file it was built from is newer.
node packages/agent/scripts/bundle.mjs --check >/dev/null || node packages/agent/scripts/bundle.mjs
