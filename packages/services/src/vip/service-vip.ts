import type { Dataplane } from '@overlay/dataplane';
import { VipTranslator, type VipCounter, type VipDropReason, type VipTranslatorOptions } from './translator.js';
import type { VipSpec } from './service.js';

/** Per-network translator status. */
export interface VipNetworkStats {
  vni: number;
  vips: string[];
  flows: number;
  capacity: number;
  counters: Record<VipCounter, number>;
  drops: Record<VipDropReason, number>;
}

/**
 * The VIP control API over a dataplane: one `VipTranslator` stage per network, added with the
 * network's first VIP and removed with its last. `setVip` takes effect before it returns (new
 * flows follow the new backend set; flows of backends down or gone are reset), so the time from
 * a record's arrival to the change is the caller's time to call it.
 */
export class ServiceVips {
  private readonly translators = new Map<number, VipTranslator>();

  constructor(
    private readonly dataplane: Dataplane,
    private readonly options: VipTranslatorOptions = {},
  ) {}

  /** Install or replace a VIP on network `vni` (endpointMode dnsrr removes it instead). Throws VipConfigError / UnknownNetworkError. */
  setVip(vni: number, spec: VipSpec): void {
    let t = this.translators.get(vni);
    if (spec?.endpointMode === 'dnsrr') {
      if (t && typeof spec.vip === 'string') this.removeVip(vni, spec.vip);
      return;
    }
    const fresh = t === undefined;
    t ??= new VipTranslator(this.options);
    t.setVip(spec); // validates before the stage is added
    if (fresh) {
      try {
        this.dataplane.addStage(vni, t);
      } catch (err) {
        t.detach();
        throw err;
      }
      this.translators.set(vni, t);
    }
  }

  /** Remove a VIP (its TCP flows get a RST); the network's stage goes with its last VIP. */
  removeVip(vni: number, vip: string): void {
    const t = this.translators.get(vni);
    if (!t) return;
    t.removeVip(vip);
    if (t.vips().length === 0) {
      this.translators.delete(vni);
      this.dataplane.removeStage(vni, t.name);
    }
  }

  /** The translator of a network, if it has VIPs. */
  translator(vni: number): VipTranslator | undefined {
    return this.translators.get(vni);
  }

  stats(): VipNetworkStats[] {
    return [...this.translators].map(([vni, t]) => {
      const s = t.stats();
      return { vni, vips: t.vips(), flows: s.flows, capacity: s.capacity, counters: s.counters, drops: s.drops };
    });
  }
}
