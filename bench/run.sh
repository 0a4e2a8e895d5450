#!/usr/bin/env bash
# The benchmarks: `bash bench/run.sh` runs the throughput comparison (root; network namespaces);
# `bash bench/run.sh micro` runs the benchmark.js micro-benchmarks of the dataplane and crypto.
# Installs what it needs first.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
command -v nebula >/dev/null || { export DEBIAN_FRONTEND=noninteractive; apt-get install -y -q --no-install-recommends nebula >/dev/null; }
if [ "${1:-}" = micro ]; then
  shift
  for f in bench/micro-*.ts; do node --expose-gc --conditions=source --import tsx "$f" "$@"; done
else
  exec node --conditions=source --import tsx bench/throughput.ts "$@"
fi
