/**
 * RFC 6479 anti-replay sliding window: a ring of 32-bit blocks; advancing the window clears
 * whole blocks instead of shifting bits. 256 blocks = 8192 bits, of which one block is the
 * slack the RFC needs, so 8160 counters behind the highest are tracked (wireguard-go: 8128).
 *
 * Counters are JS numbers, exact up to 2^53 − 1: counters from REJECT_AFTER_MESSAGES (that
 * bound) on are rejected, as the receive path rejects them too.
 */
import { REJECT_AFTER_MESSAGES } from './messages.js';

const BLOCK_BITS = 32;
const BLOCKS = 256;
const BLOCK_MASK = BLOCKS - 1;
export const REPLAY_WINDOW = (BLOCKS - 1) * BLOCK_BITS;
/** The largest counter a window accepts. */
const MAX_COUNTER = REJECT_AFTER_MESSAGES - 1;

export class ReplayWindow {
  private readonly bitmap = new Uint32Array(BLOCKS);
  /** Highest counter accepted so far, -1 before the first. */
  private last = -1;

  reset(): void {
    this.bitmap.fill(0);
    this.last = -1;
  }

  /** Cheap pre-check before decrypting: false when the counter is surely a replay or too old. */
  mayAccept(counter: number): boolean {
    if (counter > MAX_COUNTER) return false;
    if (counter > this.last) return true;
    if (this.last - counter >= REPLAY_WINDOW) return false;
    const block = Math.floor(counter / BLOCK_BITS) & BLOCK_MASK;
    return (this.bitmap[block] & (1 << (counter % BLOCK_BITS))) === 0;
  }

  /** Marks an authenticated counter as seen. Returns false (and changes nothing) for a replay. */
  accept(counter: number): boolean {
    if (!this.mayAccept(counter)) return false;
    const index = Math.floor(counter / BLOCK_BITS);
    if (counter > this.last) {
      const current = this.last < 0 ? -1 : Math.floor(this.last / BLOCK_BITS);
      let diff = index - current;
      if (diff > BLOCKS) diff = BLOCKS;
      for (let i = 1; i <= diff; i++) this.bitmap[(current + i) & BLOCK_MASK] = 0;
      this.last = counter;
    }
    this.bitmap[index & BLOCK_MASK] |= 1 << (counter % BLOCK_BITS);
    return true;
  }
}
