#!/usr/bin/env bash
# The whole test suite: unit, property, in-memory overlay, and (as root) network-namespace
# tests against real kernels and peers. Installs what it needs first.
set -euo pipefail
cd "$(dirname "$0")/.."
# ip, tc, nft and ethtool live in sbin, which a non-login root shell may not have on PATH
case ":$PATH:" in
  *:/usr/sbin:*) ;;
  *) export PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin" ;;
esac
bash scripts/setup.sh
echo "test: type-checking tests, benchmarks and scripts"
npx tsc -p tsconfig.check.json
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
set +e
npx vitest run --reporter=default --reporter=json --outputFile="$out/report.json" "$@"
rc=$?
set -e
node -e '
const r = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
console.log(`Tests: ${r.numPassedTests} passed, ${r.numFailedTests} failed`);
' "$out/report.json" || true
exit $rc
