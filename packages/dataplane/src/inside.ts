import { ETHERNET_HEADER_LENGTH } from './codec/ethernet.js';
import { isGroupMac, readMacHi, readMacLo } from './codec/mac.js';
import { encodeVxlan, encodeVxlanGbp, VXLAN_HEADER_LENGTH } from './codec/vxlan.js';
import type { Core } from './core.js';
import { C, Drop } from './counters.js';
import { FDB_LEARNED, type Network } from './network.js';
import type { PacketBatch } from './pool.js';
import { PASS } from './stage.js';

/**
 * inside: device → stages → lookup → encap → transport, for one batch of frames read from
 * `net`'s device. Every slot of the batch is forwarded or released before returning. Per frame:
 *
 * 1. drop frames longer than MTU + 18 (`frame_too_big`), shorter than 14 (`frame_malformed`)
 *    or without room for the VXLAN header (`no_headroom`);
 * 2. the network's inside stages, if it has any (stage.ts): responders (ARP/ND suppression
 *    among them: a broadcast ARP request or multicast neighbour solicitation for a known
 *    neighbour is answered in place and written back to the device), filters, translators.
 *    A stage may answer, take, drop or rewrite the frame; only PASS continues;
 * 3. `forward`: a unicast destination found in the FDB gets the 8-byte VXLAN header written
 *    into its headroom and goes to that VTEP; anything else (broadcast, multicast, unknown
 *    unicast) is flooded to the network's VTEP list by head-end replication (one copy per extra
 *    VTEP) or dropped, per policy.
 *
 * Allocates nothing: counters are typed arrays, the clock is read at most once per batch (and
 * only for learned entries), headers are written in place, the stages' view is one reused object.
 */
export function inside(core: Core, net: Network, batch: PacketBatch): void {
  const pool = core.pool;
  const d = pool.data;
  const counters = core.counters;
  const c = counters.c;
  const n = batch.count;
  if (net.removed) {
    for (let i = 0; i < n; i++) pool.release(batch.slots[i]);
    counters.drop(Drop.network_removed, net.vni, n);
    return;
  }
  const vni = net.vni;
  const chain = net.chain;
  core.clockRead = false;
  for (let i = 0; i < n; i++) {
    const slot = batch.slots[i];
    const off = pool.off[slot];
    let len = pool.len[slot];
    c[C.insideFrames]++;
    c[C.insideBytes] += len;
    if (len > net.maxFrame) {
      counters.drop(Drop.frame_too_big, vni);
      pool.release(slot);
      continue;
    }
    if (len < ETHERNET_HEADER_LENGTH) {
      counters.drop(Drop.frame_malformed, vni);
      pool.release(slot);
      continue;
    }
    if (off - pool.base(slot) < VXLAN_HEADER_LENGTH) {
      counters.drop(Drop.no_headroom, vni);
      pool.release(slot);
      continue;
    }
    const mode = chain.inMode; // literals, not imported constants: no binding check per frame
    if (mode !== 0 /* MODE_NONE */) {
      const group = isGroupMac(d, off);
      if (group || mode === 2 /* MODE_ALL */) {
        if (chain.runInside(slot, group) !== PASS) continue;
        len = pool.len[slot]; // a stage may have rewritten the frame (off stays)
      }
    }
    forward(core, net, slot, off, len);
  }
  core.flushTx();
  core.flushDevices(); // stage replies; also resets the dirty list so it cannot grow
}

/**
 * Send one frame (at `off`, `len` bytes; ≥ 8 bytes of headroom) into the overlay: FDB hit →
 * encapsulate and queue for that VTEP; group or unknown destination → flood or drop per policy.
 * Learned entries past `ageingMs` are removed on the spot. The slot is owned by the callee.
 */
export function forward(core: Core, net: Network, slot: number, off: number, len: number): void {
  const pool = core.pool;
  const d = pool.data;
  if (isGroupMac(d, off)) {
    floodOrDrop(core, net, slot, off, len, Drop.bum_dropped);
    return;
  }
  const fdb = net.fdb;
  let e = fdb.find(readMacHi(d, off), readMacLo(d, off));
  if (e >= 0 && fdb.flags[e] === FDB_LEARNED) {
    if (!core.clockRead) {
      core.readClock();
      core.clockRead = true;
    }
    if (core.clock[0] - fdb.stamp[e] > net.ageingMs) {
      net.removeFdbAt(e, core.vteps);
      e = -1;
    }
  }
  if (e < 0) {
    floodOrDrop(core, net, slot, off, len, Drop.no_fdb_entry);
    return;
  }
  const vni = net.vni;
  if (net.gbp) encodeVxlanGbp(d, off - VXLAN_HEADER_LENGTH, vni, pool.group[slot], false);
  else encodeVxlan(d, off - VXLAN_HEADER_LENGTH, vni);
  pool.off[slot] = off - VXLAN_HEADER_LENGTH;
  pool.len[slot] = len + VXLAN_HEADER_LENGTH;
  pool.vni[slot] = vni;
  core.vteps.writeToSlot(fdb.va[e], pool, slot);
  core.pushTx(slot);
}

/** BUM policy: flood, or drop counting `reason` (`bum_dropped` / `no_fdb_entry`). */
function floodOrDrop(core: Core, net: Network, slot: number, off: number, len: number, reason: number): void {
  if (net.flood) {
    flood(core, net, slot, off, len);
    return;
  }
  core.counters.drop(reason, net.vni);
  core.pool.release(slot);
}

/**
 * Head-end replication: encapsulate once, copy the datagram into a fresh slot for every VTEP
 * of the flood list but the first, send the original to the first. The original is queued
 * last so a transport flush during copying cannot release it while it is still being read.
 */
function flood(core: Core, net: Network, slot: number, off: number, len: number): void {
  const pool = core.pool;
  const list = net.floodList;
  const k = list.length;
  if (k === 0) {
    core.counters.drop(Drop.no_flood_vtep, net.vni);
    pool.release(slot);
    return;
  }
  const d = pool.data;
  const hoff = off - VXLAN_HEADER_LENGTH;
  const hlen = len + VXLAN_HEADER_LENGTH;
  if (net.gbp) encodeVxlanGbp(d, hoff, net.vni, pool.group[slot], false);
  else encodeVxlan(d, hoff, net.vni);
  pool.off[slot] = hoff;
  pool.len[slot] = hlen;
  pool.vni[slot] = net.vni;
  const headroom = hoff - pool.base(slot);
  core.counters.c[C.flooded]++;
  for (let j = 1; j < k; j++) {
    const copy = pool.acquire();
    if (copy < 0) {
      core.counters.drop(Drop.pool_exhausted, net.vni);
      continue;
    }
    const coff = pool.base(copy) + headroom;
    d.copyWithin(coff, hoff, hoff + hlen);
    pool.off[copy] = coff;
    pool.len[copy] = hlen;
    pool.vni[copy] = net.vni;
    core.vteps.writeToSlot(list[j], pool, copy);
    core.counters.c[C.replicas]++;
    core.pushTx(copy);
  }
  core.vteps.writeToSlot(list[0], pool, slot);
  core.counters.c[C.replicas]++;
  core.pushTx(slot);
}
