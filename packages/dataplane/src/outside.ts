import { ETHERNET_HEADER_LENGTH } from './codec/ethernet.js';
import { isGroupMac, readMacHi, readMacLo } from './codec/mac.js';
import { VXLAN_FLAG_G, VXLAN_FLAG_I, VXLAN_GBP_DONT_LEARN, VXLAN_HEADER_LENGTH } from './codec/vxlan.js';
import type { Core } from './core.js';
import { C, Drop } from './counters.js';
import type { PacketBatch } from './pool.js';
import { PASS } from './stage.js';

/**
 * outside: transport → decap → VNI demux → device, for one batch of received datagrams.
 * Every slot is forwarded or released before returning. Per datagram: check the VXLAN header
 * (`vxlan_too_short`, `vxlan_no_i_flag`), find the network by VNI (`unknown_vni`), strip the
 * header in place (offset moves by 8, no copy), check the inner frame (`frame_malformed`,
 * `frame_too_big`), learn the source MAC if the network learns, run the network's outside
 * stages if it has any (stage.ts: translators, filters, responders; a REPLY goes back to the
 * source VTEP), and queue the frame for that network's device. A frame is only ever queued to the network its VNI names, which is what
 * keeps networks isolated. Frames from remote VTEPs are never flooded on (split horizon).
 *
 * Allocates nothing in the steady state (learning a new or moved MAC interns its VTEP once).
 */
export function outside(core: Core, batch: PacketBatch): void {
  const pool = core.pool;
  const d = pool.data;
  const c = core.counters.c;
  const counters = core.counters;
  const networks = core.networks;
  const n = batch.count;
  let clockRead = false;
  core.clockRead = false; // for frames stages forward during this batch (ctx.toNetwork)
  for (let i = 0; i < n; i++) {
    const slot = batch.slots[i];
    const off = pool.off[slot];
    const len = pool.len[slot];
    c[C.outsideDatagrams]++;
    c[C.outsideBytes] += len;
    if (len < VXLAN_HEADER_LENGTH) {
      counters.drop(Drop.vxlan_too_short, -1);
      pool.release(slot);
      continue;
    }
    if ((d[off] & VXLAN_FLAG_I) === 0) {
      counters.drop(Drop.vxlan_no_i_flag, -1);
      pool.release(slot);
      continue;
    }
    const vni = (d[off + 4] << 16) | (d[off + 5] << 8) | d[off + 6];
    const net = networks.get(vni);
    if (net === undefined) {
      counters.drop(Drop.unknown_vni, vni);
      pool.release(slot);
      continue;
    }
    const foff = off + VXLAN_HEADER_LENGTH;
    const flen = len - VXLAN_HEADER_LENGTH;
    if (flen < ETHERNET_HEADER_LENGTH) {
      counters.drop(Drop.frame_malformed, vni);
      pool.release(slot);
      continue;
    }
    if (flen > net.maxFrame) {
      counters.drop(Drop.frame_too_big, vni);
      pool.release(slot);
      continue;
    }
    pool.off[slot] = foff;
    pool.len[slot] = flen;
    pool.vni[slot] = vni;
    // VXLAN-GBP: the sender's Group Policy ID, where this network takes it; D = don't learn.
    const gbp = net.gbp && (d[off] & VXLAN_FLAG_G) !== 0;
    pool.group[slot] = gbp ? (d[off + 2] << 8) | d[off + 3] : -1;
    if (net.learning && !(gbp && (d[off + 1] & VXLAN_GBP_DONT_LEARN) !== 0) && !isGroupMac(d, foff + 6)) {
      if (!clockRead) {
        core.readClock();
        clockRead = true;
      }
      const hi = readMacHi(d, foff + 6);
      const lo = readMacLo(d, foff + 6);
      if (hi !== 0 || lo !== 0) core.learn(net, hi, lo, slot);
    }
    const chain = net.chain;
    const mode = chain.outMode; // literals, not imported constants: no binding check per frame
    if (mode !== 0 /* MODE_NONE */) {
      const group = isGroupMac(d, foff);
      if ((group || mode === 2 /* MODE_ALL */) && chain.runOutside(slot, group) !== PASS) continue;
    }
    core.pushDevice(net, slot);
  }
  core.flushDevices();
  core.flushTx(); // stage replies to the source VTEP, frames stages forwarded
  if (clockRead) core.maybeSweep();
}
