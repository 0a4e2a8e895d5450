/**
 * Scrape an agent's Prometheus endpoint from inside its namespace (curl) and parse the text
 * format with an independent parser (parse-prometheus-text-format), for the demo and tests.
 */
import parsePrometheusTextFormat, { type ParsedFamily } from 'parse-prometheus-text-format';
import type { TestHost } from './testbed.js';

export type { ParsedFamily };

export async function scrapeMetrics(h: TestHost, port: number): Promise<ParsedFamily[]> {
  const text = await h.exec('curl', ['-sfS', '--max-time', '5', `http://127.0.0.1:${port}/metrics`], { timeoutMs: 10_000 });
  return parsePrometheusTextFormat(text);
}

/** Sum of a family's samples whose labels include `labels` (NaN when the family is absent). */
export function metricSum(fams: ParsedFamily[], name: string, labels: Record<string, string> = {}): number {
  const f = fams.find((x) => x.name === name);
  if (!f) return NaN;
  return f.metrics.filter((s) => Object.entries(labels).every(([k, v]) => s.labels?.[k] === v)).reduce((a, s) => a + Number(s.value), 0);
}
