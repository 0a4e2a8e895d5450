#!/usr/bin/env bash
# The main job: brings up a small overlay of network-namespace hosts on this machine and shows
# it working, then removes everything it made. Needs root. Installs what it needs first.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec node --conditions=source --import tsx scripts/demo.ts "$@"
