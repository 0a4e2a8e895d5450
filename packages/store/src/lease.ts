/**
 * An owner's lease kept alive: grant (LEASE_TTL_MS), refresh every KEEPALIVE_MS, and when the
 * lease is gone (it expired while the store was unreachable, or was revoked) grant a new one and
 * tell the owner (`onLease`) so it writes its keys again under it. Stopping the keeper (or the
 * process dying) lets the lease lapse: the owner's keys go within the TTL.
 */
import type { EndpointStore, Lease } from './store.js';
import { KEEPALIVE_MS, LEASE_TTL_MS } from './store.js';

export interface LeaseKeeperOptions {
  ttlMs?: number;
  intervalMs?: number;
  /** A (new) lease is in force: write the owner's keys under it. Awaited before the next refresh. */
  onLease?(lease: Lease): Promise<void> | void;
  /** A refresh or grant failed (the store is unreachable); the keeper retries on the next tick. */
  onError?(e: unknown): void;
}

export class LeaseKeeper {
  private timer: ReturnType<typeof setTimeout> | undefined;
  private current: Lease | undefined;
  private stopped = false;
  readonly counters = { refreshes: 0, grants: 0, lost: 0, errors: 0 };

  constructor(
    private readonly store: EndpointStore,
    private readonly opts: LeaseKeeperOptions = {},
  ) {}

  get lease(): Lease | undefined {
    return this.current;
  }

  /** Grant the first lease (throws when the store is unreachable) and start refreshing. */
  async start(): Promise<Lease> {
    const l = await this.grant();
    this.schedule();
    return l;
  }

  private async grant(): Promise<Lease> {
    const l = await this.store.grantLease(this.opts.ttlMs ?? LEASE_TTL_MS);
    this.counters.grants++;
    this.current = l;
    await this.opts.onLease?.(l);
    return l;
  }

  private schedule(): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => void this.tick(), this.opts.intervalMs ?? KEEPALIVE_MS);
    this.timer.unref?.();
  }

  private async tick(): Promise<void> {
    try {
      if (!this.current) await this.grant();
      else if (await this.store.keepAlive(this.current.id)) this.counters.refreshes++;
      else {
        this.counters.lost++;
        this.current = undefined;
        if (!this.stopped) await this.grant();
      }
    } catch (e) {
      this.counters.errors++;
      this.opts.onError?.(e);
    }
    this.schedule();
  }

  /** Stop refreshing; `revoke` also deletes the owner's keys now. */
  async stop(revoke = false): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    if (revoke && this.current) await this.store.revokeLease(this.current.id).catch(() => false);
  }
}
