import { describe, expect, it } from 'vitest';
import { throughputChart, type ThroughputJson } from '../bench/lib/chart.js';

/** Rects (median bars) and circles (runs) of one panel, in row order. */
function panels(svg: string) {
  const parts = svg.split(/(?=<text x="12" )/).slice(1);
  return parts.map((p) => ({
    title: /<text[^>]*>([^<]*)<\/text>/.exec(p)![1],
    bars: [...p.matchAll(/<rect x="(\d+)" y="[\d.]+" width="([\d.]+)"/g)].map((m) => Number(m[2])),
    dots: [...p.matchAll(/<circle /g)].length,
    values: [...p.matchAll(/<text x="798" [^>]*>([^<]*)<\/text>/g)].map((m) => m[1]),
  }));
}

const run = (label: string, gbit: number[], pps: number, ping: number) => ({
  label,
  tcp1: { runs: gbit, median: [...gbit].sort((a, b) => a - b)[1] },
  tcp4: { runs: gbit.map((g) => g * 1.2), median: [...gbit].sort((a, b) => a - b)[1] * 1.2 },
  udp64: { pps, lossPct: 1 },
  udp64Runs: [{ pps }, { pps: pps * 0.9 }, { pps: pps * 1.1 }],
  udp1400: { pps, lossPct: 2 },
  ping: { medianMs: ping, p99Ms: ping * 3 },
  loadBefore: [5, 7, 9],
});

// Rows that differ 40× (12 Gbit/s vs 0.3) must both stay readable: on a linear axis the small one
// is 2.5 % of the largest bar (a few pixels); on the chart's log axis it is a visible share.
describe('bench throughput chart', () => {
  const j: ThroughputJson = {
    meta: { date: '2026-11-26T02:39:07.544Z', cpus: 2, cpuModel: 'AMD EPYC', node: 'v20', options: { rounds: 3, seconds: 5 } },
    results: [run('veth underlay', [11.7, 11.0, 11.5], 96_000, 0.006), run('ours: plain VXLAN', [2.8, 2.9, 2.7], 103_000, 0.37), run("Debian's wireguard-go", [0.31, 0.30, 0.32], 28_000, 0.52)],
  };
  const svg = throughputChart(j);
  const ps = panels(svg);

  it('draws one log-scale panel per measure, every run as a dot, the median value and spread as text', () => {
    expect(ps.map((p) => p.title)).toEqual([
      'TCP, 1 stream, Gbit/s, log scale', 'TCP, 4 streams, Gbit/s, log scale', 'UDP 64-byte datagrams delivered, kpps, log scale',
      'UDP 1400-byte datagrams delivered, kpps, log scale', 'Ping round trip, median (lower is better), ms, log scale',
    ]);
    expect(ps[0].dots).toBe(9);
    expect(ps[2].dots).toBe(9);
    expect(ps[0].values).toEqual(['11.5 ±6%', '2.80 ±7%', '0.31 ±6%']);
    expect(svg).toContain('load before rounds 5.0–9.0');
  });

  it('the smallest row is at least a fifth of the largest bar and 60 px wide', () => {
    const [big, , small] = ps[0].bars;
    expect(small / big).toBeGreaterThan(0.2);
    expect(small).toBeGreaterThan(60);
  });

  it('a failed path shows n/a instead of a bar', () => {
    const bad = { ...j, results: [...j.results, { label: 'broken', tcp1: { runs: [], median: NaN }, tcp4: { runs: [], median: NaN }, error: 'setup' }] };
    expect(panels(throughputChart(bad))[0].values).toHaveLength(3);
    expect(throughputChart(bad)).toMatch(/>broken<\/text>\n<text x="\d+" y="\d+" font-size="12" fill="#888">n\/a</);
  });
});
