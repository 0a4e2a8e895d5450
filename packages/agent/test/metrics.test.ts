import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { FAMILIES, processMemory } from '../src/metrics.js';

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

  it('the published names and label sets are all still served unchanged (append, never rename)', () => {
    const published: [string, string][] = [
    ['overlay_dataplane_drops_total', 'reason'],
    ['overlay_dataplane_stage_drops_total', 'stage,reason'],
    ['overlay_dataplane_inside_total', 'counter'],
    ['overlay_dataplane_outside_total', 'counter'],
    ['overlay_native_underlay_total', 'counter'],
    ['overlay_native_device_total', 'network,vni,device,counter'],
    ['overlay_crypto_drops_total', 'reason'],
    ['overlay_crypto_tunnel_total', 'direction,counter'],
    ['overlay_crypto_peer_bytes_total', 'peer,direction'],
    ['overlay_crypto_peer_last_handshake_seconds', 'peer'],
    ['overlay_crypto_peer_up', 'peer'],
    ['overlay_agent_drops_total', 'reason'],
    ['overlay_agent_stream_drops_total', 'reason'],
    ['overlay_agent_gossip_total', 'counter'],
    ['overlay_agent_membership_total', 'counter'],
    ['overlay_agent_members', 'state'],
    ['overlay_agent_endpoints', 'network,state'],
    ['overlay_services_view_total', 'counter'],
    ['overlay_services_instances', 'network,health'],
    ['overlay_health_checks_total', 'counter'],
    ['overlay_health_published_total', 'counter'],
    ['overlay_dns_total', 'counter'],
    ['overlay_vip_sync_total', 'counter'],
    ['overlay_vip_total', 'network,vni,counter'],
    ['overlay_vip_drops_total', 'network,vni,reason'],
    ['overlay_vip_flows', 'network,vni'],
    ['overlay_policy_total', 'network,vni,counter'],
    ['overlay_policy_flows', 'network,vni'],
    ['overlay_store_total', 'counter'],
    ['overlay_store_drops_total', 'reason'],
    ];
    const now = new Map(FAMILIES.map((f) => [f.name, f.labels.join(',')]));
    for (const [name, labels] of published) expect({ name, labels: now.get(name) }).toEqual({ name, labels });
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

describe('processMemory', () => {
  it('counts touched buffer pages as resident anonymous memory, and an untouched slab as allocated only', () => {
    const before = processMemory();
    const untouched = Buffer.alloc(32 << 20);
    const mid = processMemory();
    expect(mid.array_buffers - before.array_buffers).toBeGreaterThanOrEqual(32 << 20);
    expect(mid.rss_anon - before.rss_anon).toBeLessThan(16 << 20);
    untouched.fill(1);
    const after = processMemory();
    expect(after.rss_anon - mid.rss_anon).toBeGreaterThan(24 << 20);
    expect(after.rss).toBeGreaterThanOrEqual(after.rss_anon);
    expect(after.rss_file).toBeGreaterThan(0);
    expect(untouched[untouched.length - 1]).toBe(1);
  });
});
