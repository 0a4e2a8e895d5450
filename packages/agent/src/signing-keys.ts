/**
 * Members' record-signing keys, pinned on first use (TOFU): the key a name first advertises is
 * the only one its records verify against until the member is reaped, so a name cannot be taken
 * over with a new key. Refusals are counted (`bad_member_meta`, `sign_key_changed`).
 *
 * Single-threaded; owned by one agent.
 */
import type { AgentDrops } from './counters.js';
import type { NodeMeta } from './wire.js';

export class SigningKeys {
  private readonly pinned = new Map<string, Uint8Array>();

  constructor(
    private readonly self: string,
    private readonly selfKey: Uint8Array,
    private readonly drops: AgentDrops,
    /** The key a member advertises now (membership meta). */
    private readonly advertised: (name: string) => Uint8Array | undefined,
  ) {}

  /** Accept (pinning on first sight) or refuse a member's new or changed meta. */
  accept(name: string, meta: NodeMeta): boolean {
    const d = this.drops;
    if (meta.signKey.length !== 32) return (d.add(d.at.bad_member_meta), false);
    const pinned = this.pinned.get(name);
    if (!pinned) {
      this.pinned.set(name, meta.signKey);
      return true;
    }
    if (Buffer.compare(pinned, meta.signKey) !== 0) return (d.add(d.at.sign_key_changed), false);
    return true;
  }

  /** The key `owner`'s records must verify against. */
  keyOf(owner: string): Uint8Array | undefined {
    return owner === this.self ? this.selfKey : this.advertised(owner);
  }

  /** Forget a reaped member. */
  forget(name: string): void {
    this.pinned.delete(name);
  }
}
