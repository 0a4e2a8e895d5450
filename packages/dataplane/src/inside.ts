import { ARP_LENGTH, ARP_REQUEST, arpTargetIp, isEthernetIpv4Arp, rewriteArpRequestAsReply } from './codec/arp.js';
import { ETHERNET_HEADER_LENGTH, ETHERTYPE_ARP, ETHERTYPE_IPV6, etherTypeAt, ethernetHeaderLength } from './codec/ethernet.js';
import { isGroupMac, readMacHi, readMacLo } from './codec/mac.js';
import { ND_ADVERTISEMENT_LENGTH, neighborSolicitationTarget, rewriteSolicitationAsAdvertisement } from './codec/nd.js';
import { encodeVxlan, VXLAN_HEADER_LENGTH } from './codec/vxlan.js';
import { readI32 } from './codec/bytes.js';
import type { Core } from './core.js';
import { C, Drop } from './counters.js';
import { FDB_LEARNED, type Network } from './network.js';
import type { PacketBatch } from './pool.js';

/**
 * inside: device → lookup → encap → transport, for one batch of frames read from `net`'s
 * device. Every slot of the batch is forwarded or released before returning. Per frame:
 *
 * 1. drop frames longer than MTU + 18 (`frame_too_big`) or shorter than 14 (`frame_malformed`);
 * 2. a broadcast ARP request or multicast IPv6 neighbour solicitation for a known neighbour
 *    is answered in place and written back to the device (ARP/ND suppression); nothing
 *    crosses the underlay;
 * 3. a unicast destination found in the FDB gets the 8-byte VXLAN header written into its
 *    headroom and goes to that VTEP;
 * 4. anything else (broadcast, multicast, unknown unicast) is flooded to the network's VTEP
 *    list by head-end replication (one copy per extra VTEP) or dropped, per policy.
 *
 * Allocates nothing: counters are typed arrays, the clock is read at most once per batch (and
 * only for learned entries), headers are written in place.
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
  const fdb = net.fdb;
  const vni = net.vni;
  let clockRead = false;
  for (let i = 0; i < n; i++) {
    const slot = batch.slots[i];
    const off = pool.off[slot];
    const len = pool.len[slot];
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
    if (isGroupMac(d, off)) {
      if (net.arpSuppression && (suppressArp(core, net, slot, off, len) || suppressNd(core, net, slot, off, len))) continue;
      floodOrDrop(core, net, slot, off, len, Drop.bum_dropped);
      continue;
    }
    let e = fdb.find(readMacHi(d, off), readMacLo(d, off));
    if (e >= 0 && fdb.flags[e] === FDB_LEARNED) {
      if (!clockRead) {
        core.readClock();
        clockRead = true;
      }
      if (core.clock[0] - fdb.stamp[e] > net.ageingMs) {
        net.removeFdbAt(e, core.vteps);
        e = -1;
      }
    }
    if (e < 0) {
      floodOrDrop(core, net, slot, off, len, Drop.no_fdb_entry);
      continue;
    }
    encodeVxlan(d, off - VXLAN_HEADER_LENGTH, vni);
    pool.off[slot] = off - VXLAN_HEADER_LENGTH;
    pool.len[slot] = len + VXLAN_HEADER_LENGTH;
    pool.vni[slot] = vni;
    core.vteps.writeToSlot(fdb.va[e], pool, slot);
    core.pushTx(slot);
  }
  core.flushTx();
  core.flushDevices(); // ARP replies; also resets the dirty list so it cannot grow
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
  encodeVxlan(d, hoff, net.vni);
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

/**
 * ARP suppression: if the frame is a broadcast ARP request (optionally 802.1Q-tagged) for an
 * IPv4 address in the neighbour table, rewrite it in place into the reply and queue it for
 * the device. Returns true when the frame was consumed. Gratuitous ARP (sender IP = target
 * IP) and requests for unknown addresses are left to the flood policy.
 */
function suppressArp(core: Core, net: Network, slot: number, off: number, len: number): boolean {
  const d = core.pool.data;
  const hl = ethernetHeaderLength(d, off, len);
  if (hl < 0 || etherTypeAt(d, off, hl) !== ETHERTYPE_ARP) return false;
  const arpOff = off + hl;
  if (arpOff + ARP_LENGTH > off + len) return false;
  if (!isEthernetIpv4Arp(d, arpOff) || ((d[arpOff + 6] << 8) | d[arpOff + 7]) !== ARP_REQUEST) return false;
  const tpa = arpTargetIp(d, arpOff);
  const spa = readI32(d, arpOff + 14);
  if (tpa === spa) return false;
  const e = net.neighbours.find(0, tpa);
  if (e < 0) return false;
  const replyLen = rewriteArpRequestAsReply(d, off, arpOff, net.neighbours.va[e], net.neighbours.vb[e]);
  core.pool.len[slot] = replyLen;
  core.counters.c[C.arpSuppressed]++;
  core.pushDevice(net, slot);
  return true;
}

/**
 * ND suppression, the IPv6 counterpart: a multicast Neighbor Solicitation (optionally
 * 802.1Q-tagged) for an address in the IPv6 neighbour table is rewritten in place into the
 * Neighbor Advertisement and queued for the device. Duplicate address detection (source ::)
 * and unknown targets are left to the flood policy. Counted in `arpSuppressed` as well.
 */
function suppressNd(core: Core, net: Network, slot: number, off: number, len: number): boolean {
  if (net.neighbours6.size === 0) return false;
  const pool = core.pool;
  const d = pool.data;
  const hl = ethernetHeaderLength(d, off, len);
  if (hl < 0 || etherTypeAt(d, off, hl) !== ETHERTYPE_IPV6) return false;
  const ipOff = off + hl;
  const target = neighborSolicitationTarget(d, ipOff, off + len);
  if (target < 0) return false;
  // The advertisement may be longer than a solicitation without options: it must fit the slot.
  if (ipOff + ND_ADVERTISEMENT_LENGTH > pool.limit(slot)) return false;
  const e = net.neighbours6.find(d, target);
  if (e < 0) return false;
  pool.len[slot] = rewriteSolicitationAsAdvertisement(d, off, ipOff, net.neighbours6.hi(e), net.neighbours6.lo(e));
  core.counters.c[C.arpSuppressed]++;
  core.pushDevice(net, slot);
  return true;
}
