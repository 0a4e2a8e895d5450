import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { FAMILIES } from '../src/metrics.js';

// The Grafana dashboard beside the endpoint (packaging/grafana/overlay.json) is checked against
// the families the endpoint serves: every metric and label it queries exists, every family is shown.
describe('metrics families and the Grafana dashboard', () => {
  it('names are unique, overlay_<pkg>_<what>, counters end in _total, every family has help text', () => {
    const names = FAMILIES.map((f) => f.name);
    expect(new Set(names).size).toBe(names.length);
    for (const f of FAMILIES) {
      expect(f.name).toMatch(/^overlay_[a-z]+_[a-z_]+$/);
      expect(f.name.endsWith('_total')).toBe(f.type === 'counter');
      expect(f.help.length).toBeGreaterThan(20);
    }
  });

  it('the dashboard queries only served metrics and labels, and shows every family', () => {
    const d = JSON.parse(readFileSync('packaging/grafana/overlay.json', 'utf8')) as { panels: { title: string; targets: { expr: string }[] }[] };
    const byName = new Map(FAMILIES.map((f) => [f.name, f]));
    const shown = new Set<string>();
    for (const p of d.panels) {
      for (const t of p.targets) {
        const used = [...t.expr.matchAll(/\b(overlay_[a-z_]+)\{([^}]*)\}/g)];
        expect(used.length, `${p.title}: ${t.expr}`).toBeGreaterThan(0);
        for (const [, name, sel] of used) {
          const f = byName.get(name);
          expect(f, `${p.title}: ${name}`).toBeDefined();
          shown.add(name);
          for (const [, label] of sel.matchAll(/([a-z_]+)=~?"/g)) if (label !== 'instance') expect(f!.labels, `${name} {${label}}`).toContain(label);
        }
        for (const [, labels] of t.expr.matchAll(/by \(([^)]*)\)/g)) {
          for (const l of labels.split(',').map((x) => x.trim())) {
            if (l === 'instance') continue;
            expect(used.some(([, name]) => byName.get(name)!.labels.includes(l)), `${p.title}: by ${l}`).toBe(true);
          }
        }
      }
    }
    expect([...byName.keys()].filter((n) => !shown.has(n))).toEqual([]);
  });
});
