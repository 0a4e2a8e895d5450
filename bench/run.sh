#!/usr/bin/env bash
# The benchmarks (root; network namespaces). Installs what it needs first: setup.sh's tools plus
# the comparison peers and profilers below, and runs every peer it installs.
#
#   bash bench/run.sh [args]           throughput: veth underlay, kernel VXLAN, our plain and
#                                      encrypted overlays, wireguard-go, nebula (bench/throughput.ts)
#   bash bench/run.sh micro [args]     benchmark.js micro-benchmarks of the dataplane and crypto
#   bash bench/run.sh serf [--save]    kill -9 detection, our agent vs serf (bench/serf-compare.ts)
#   bash bench/run.sh soak [--minutes N] [--save]   encrypted TCP + gossip churn, RSS over time (bench/soak.ts)
#   bash bench/run.sh profile [args]   where the agent's time goes (bench/profile-agent.ts, perf)
#   bash bench/run.sh sim [N] [min]    1 000 simulated agents (bench/sim-agent.ts)
#   bash bench/run.sh sim-scale [N] [nets] [window s] [push-pull s] [trials]   gossip at scale: whole-table vs per-network (bench/sim-scale.ts)
#   bash bench/run.sh detect [args]    failure detection trade-off: timing configs × N in the simulation (bench/sim-detect.ts)
#   bash bench/run.sh dns [args]       our DNS responder vs dnsmasq and unbound (bench/dns.ts, dnsperf)
#   bash bench/run.sh agent-rss [args] the idle agent's RSS as shipped: anon/file, V8 heap, after load (bench/agent-rss.ts)
#   bash bench/run.sh vip [args]       new TCP connections/s through our VIP vs HAProxy and nft numgen DNAT (bench/vip-connect.ts)
#   bash bench/run.sh vip-idle [--minutes 30] [--save]   50 connections idle through the VIP, default timeouts (bench/vip-idle.ts)
#   bash bench/run.sh vip-callgrind [--n1 N] [--n2 N]   instructions per packet of the VIP's established-flow path (bench/vip-instructions.ts, valgrind)
#   bash bench/run.sh policy-callgrind [--n1 N] [--n2 N]   instructions per verdict of the policy filter's established path and 10 000-rule worst case (bench/policy-instructions.ts, valgrind)
#   bash bench/run.sh loss-soak [args] false deaths of real agents at 10 % loss each way for 10 min (bench/loss-soak.ts)
#   bash bench/run.sh propagation [args] 50 real agents: endpoint-change propagation, gossip vs etcd (bench/propagation.ts)
set -euo pipefail
cd "$(dirname "$0")/.."

# program:Debian package, tools only benchmarks spawn (test/setup-coverage.test.ts reads this).
bench_tools=(
  nebula:nebula nebula-cert:nebula
  perf:linux-perf
  dnsperf:dnsperf unbound:unbound dnsmasq:dnsmasq-base
  haproxy:haproxy wrk:wrk
  valgrind:valgrind
)
bash scripts/setup.sh "${bench_tools[@]}"

ts() { node --expose-gc --conditions=source --import tsx "$@"; }
case "${1:-}" in
  micro)
    shift
    for f in bench/micro-*.ts; do ts "$f" "$@"; done
    ;;
  serf) shift; ts bench/serf-compare.ts "$@" ;;
  soak) shift; ts bench/soak.ts "$@" ;;
  profile) shift; ts bench/profile-agent.ts "$@" ;;
  sim) shift; ts bench/sim-agent.ts "$@" ;;
  sim-scale) shift; ts --max-old-space-size=16000 bench/sim-scale.ts "$@" ;;
  detect) shift; ts bench/sim-detect.ts "$@" ;;
  dns) shift; ts bench/dns.ts "$@" ;;
  agent-rss) shift; npx tsc -b; ts bench/agent-rss.ts "$@" ;;
  vip) shift; ts bench/vip-connect.ts "$@" ;;
  vip-idle) shift; ts bench/vip-idle.ts "$@" ;;
  vip-callgrind) shift; ts bench/vip-instructions.ts "$@" ;;
  policy-callgrind) shift; ts bench/policy-instructions.ts "$@" ;;
  loss-soak) shift; ts bench/loss-soak.ts "$@" ;;
  propagation) shift; ts bench/propagation.ts "$@" ;;
  *) ts bench/throughput.ts --nebula "$@" ;;
esac
