/**
 * The throughput chart: one panel per measure (TCP 1 and 4 streams, UDP 64 B and 1400 B, ping),
 * every panel on a log scale with decade grid lines, so a 0.3 Gbit/s row stays readable next to a
 * 12 Gbit/s one. A row shows every run as a dot, the min–max range as a line (the spread) and
 * the median as a bar with its value. Dependency-free SVG, opened in any browser.
 */
import { spreadPct } from './stats.js';

const esc = (s: string) => s.replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c]!);

export interface ChartRow {
  label: string;
  /** Every run's value (the dots and the range); empty when the path failed. */
  runs: readonly number[];
  median: number;
  /** Extra text after the value, e.g. "(loss 33 %)". */
  note?: string;
}

export interface ChartPanel {
  title: string;
  unit: string;
  rows: readonly ChartRow[];
  /** Lower values are better (latency): said in the panel title. */
  lowerIsBetter?: boolean;
}

const W = 960;
const LEFT = 240;
const RIGHT = 170;
const ROW = 22;
const HEAD = 40;
const PALETTE = ['#4e79a7', '#f28e2b', '#59a14f', '#e15759', '#76b7b2', '#edc948', '#b07aa1', '#9c755f'];

const fmt = (v: number) => (v >= 100 ? v.toFixed(0) : v >= 10 ? v.toFixed(1) : v >= 1 ? v.toFixed(2) : v.toPrecision(2));

/** Log-scale domain in whole decades around every positive value of the panel. */
function decades(rows: readonly ChartRow[]): [number, number] {
  const vals = rows.flatMap((r) => [...r.runs, r.median]).filter((v) => Number.isFinite(v) && v > 0);
  if (vals.length === 0) return [0, 1];
  const lo = Math.floor(Math.log10(Math.min(...vals)));
  const hi = Math.ceil(Math.log10(Math.max(...vals)));
  return [lo, hi > lo ? hi : lo + 1];
}

function panel(p: ChartPanel, y0: number): { svg: string; height: number } {
  const [lo, hi] = decades(p.rows);
  const plotW = W - LEFT - RIGHT;
  const x = (v: number) => LEFT + ((Math.log10(v) - lo) / (hi - lo)) * plotW;
  const height = HEAD + p.rows.length * ROW + 24;
  const out: string[] = [`<text x="12" y="${y0 + 22}" font-size="15" font-weight="bold">${esc(p.title)}${p.lowerIsBetter ? ' (lower is better)' : ''}, ${esc(p.unit)}, log scale</text>`];
  const gridTop = y0 + HEAD - 6;
  const gridBottom = y0 + HEAD + p.rows.length * ROW;
  for (let d = lo; d <= hi; d++) {
    const gx = x(10 ** d);
    out.push(`<line x1="${gx.toFixed(1)}" y1="${gridTop}" x2="${gx.toFixed(1)}" y2="${gridBottom}" stroke="#bbb"/>`);
    out.push(`<text x="${gx.toFixed(1)}" y="${gridBottom + 14}" text-anchor="middle" font-size="11" fill="#555">${fmt(10 ** d)}</text>`);
    if (d < hi) for (const k of [2, 5]) out.push(`<line x1="${x(k * 10 ** d).toFixed(1)}" y1="${gridTop}" x2="${x(k * 10 ** d).toFixed(1)}" y2="${gridBottom}" stroke="#eee"/>`);
  }
  p.rows.forEach((r, i) => {
    const y = y0 + HEAD + i * ROW;
    const colour = PALETTE[i % PALETTE.length];
    out.push(`<text x="${LEFT - 8}" y="${y + 15}" text-anchor="end" font-size="12">${esc(r.label)}</text>`);
    const runs = r.runs.filter((v) => Number.isFinite(v) && v > 0);
    if (!(r.median > 0) || runs.length === 0) {
      out.push(`<text x="${LEFT + 4}" y="${y + 15}" font-size="12" fill="#888">n/a</text>`);
      return;
    }
    out.push(`<rect x="${LEFT}" y="${y + 5}" width="${Math.max(1, x(r.median) - LEFT).toFixed(1)}" height="${ROW - 10}" fill="${colour}" fill-opacity="0.35"/>`);
    const mn = Math.min(...runs);
    const mx = Math.max(...runs);
    out.push(`<line x1="${x(mn).toFixed(1)}" y1="${y + 11}" x2="${x(mx).toFixed(1)}" y2="${y + 11}" stroke="${colour}" stroke-width="2"/>`);
    for (const v of runs) out.push(`<circle cx="${x(v).toFixed(1)}" cy="${y + 11}" r="3" fill="${colour}"/>`);
    out.push(`<line x1="${x(r.median).toFixed(1)}" y1="${y + 3}" x2="${x(r.median).toFixed(1)}" y2="${y + 19}" stroke="#000" stroke-width="2"/>`);
    // The same spread the bench's table prints (±N %).
    const spread = runs.length > 1 ? ` ±${spreadPct(runs).toFixed(0)}%` : '';
    out.push(`<text x="${W - RIGHT + 8}" y="${y + 15}" font-size="12">${fmt(r.median)}${spread}${r.note ? ' ' + esc(r.note) : ''}</text>`);
  });
  return { svg: out.join('\n'), height };
}

/**
 * Panels stacked in one SVG. `subtitle` says what was measured (date, machine, rounds, load);
 * the ±N % after a value is the bench's spread (stats.ts spreadPct) of the runs shown as dots.
 */
export function panelChart(title: string, subtitle: string, panels: readonly ChartPanel[]): string {
  const parts: string[] = [];
  let y = 60;
  for (const p of panels) {
    const { svg, height } = panel(p, y);
    parts.push(svg);
    y += height;
  }
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${y + 10}" font-family="sans-serif">
<rect width="100%" height="100%" fill="white"/>
<text x="${W / 2}" y="24" text-anchor="middle" font-size="17" font-weight="bold">${esc(title)}</text>
<text x="${W / 2}" y="44" text-anchor="middle" font-size="12" fill="#444">${esc(subtitle)}</text>
${parts.join('\n')}
</svg>
`;
}

/** What the chart reads of bench/throughput.ts's saved JSON (older files lack some fields). */
export interface ThroughputJson {
  meta: { date: string; cpus?: number; cpuModel?: string; node?: string; options?: { rounds?: number; reps?: number; seconds?: number } };
  results: {
    label: string;
    tcp1: { runs: number[]; median: number };
    tcp4: { runs: number[]; median: number };
    udp64?: { pps: number; lossPct: number };
    udp1400?: { pps: number; lossPct: number };
    udp64Runs?: { pps: number }[];
    udp1400Runs?: { pps: number }[];
    ping?: { medianMs: number; p99Ms: number };
    loadBefore?: number[];
    error?: string;
  }[];
}

/** The throughput chart of one saved run. */
export function throughputChart(j: ThroughputJson): string {
  const rs = j.results;
  const udp = (k: 'udp64' | 'udp1400') => rs.map((r) => {
    const runs = (r[`${k}Runs`] ?? (r[k] ? [r[k]!] : [])).map((u) => u.pps / 1e3);
    return { label: r.label, runs, median: r[k] ? r[k]!.pps / 1e3 : NaN, note: r[k] ? `(loss ${r[k]!.lossPct.toFixed(1)}%)` : undefined };
  });
  const rounds = j.meta.options?.rounds ?? j.meta.options?.reps;
  const loads = rs.flatMap((r) => r.loadBefore ?? []);
  const load = loads.length ? `, load before rounds ${Math.min(...loads).toFixed(1)}–${Math.max(...loads).toFixed(1)}` : '';
  const subtitle = `${j.meta.date.slice(0, 16).replace('T', ' ')} UTC, ${j.meta.cpus ?? '?'} × ${j.meta.cpuModel ?? 'cpu'}, node ${j.meta.node ?? '?'}, ${rounds ?? '?'} rounds × ${j.meta.options?.seconds ?? '?'} s${load}; dots: runs, line: min–max, bar: median`;
  return panelChart('Overlay throughput, 2 network-namespace hosts (bench/throughput.ts)', subtitle, [
    { title: 'TCP, 1 stream', unit: 'Gbit/s', rows: rs.map((r) => ({ label: r.label, runs: r.tcp1.runs, median: r.tcp1.median })) },
    { title: 'TCP, 4 streams', unit: 'Gbit/s', rows: rs.map((r) => ({ label: r.label, runs: r.tcp4.runs, median: r.tcp4.median })) },
    { title: 'UDP 64-byte datagrams delivered', unit: 'kpps', rows: udp('udp64') },
    { title: 'UDP 1400-byte datagrams delivered', unit: 'kpps', rows: udp('udp1400') },
    { title: 'Ping round trip, median', unit: 'ms', lowerIsBetter: true, rows: rs.map((r) => ({ label: r.label, runs: r.ping ? [r.ping.medianMs] : [], median: r.ping?.medianMs ?? NaN, note: r.ping ? `(p99 ${r.ping.p99Ms})` : undefined })) },
  ]);
}
