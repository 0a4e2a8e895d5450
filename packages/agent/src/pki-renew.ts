/**
 * Certificate renewal (issue 13; docs/pki.md "Renewal"). A node certificate is renewed from
 * `renewAt` = notBefore + 2/3 of its lifetime: the node asks the signer again with its join token
 * (join-http) for a certificate for the SAME identity and WireGuard keys, and swaps it in
 * (`Agent.renewCert`: our meta carries the new certificate and a higher incarnation, so every peer
 * re-admits us with the new notAfter; tunnels are not touched, the WireGuard key is the same).
 *
 * A failed attempt (signer unreachable, a refusal, an answer that does not check) is counted
 * (`renew_failures`), reported through `warn`, and tried again with backoff: 1 s doubling, at most
 * a tenth of what is left of the certificate (≥ 1 s) and at most MAX_BACKOFF_MS. Attempts go on
 * after notAfter (a fresh certificate re-admits a node its peers dropped). A success counts
 * `renewed` and re-arms for the new certificate.
 *
 * Timers come from the agent's Clock, so the simulation drives it in virtual time.
 */
import { parseCert, renewAt, type Certificate } from '@overlay/pki';
import type { Clock, TimerHandle } from './env.js';

export const FIRST_BACKOFF_MS = 1000;
export const MAX_BACKOFF_MS = 5 * 60_000;
/** setTimeout's range is ~24.8 days; a 7-day certificate renews within it, a longer one re-arms. */
const MAX_TIMER_MS = 86_400_000;

export interface RenewerDeps {
  clock: Clock;
  /** The certificate in use now (bytes or parsed). */
  cert: Uint8Array | Certificate;
  /** Ask the signer for a certificate for the same keys; rejects on any failure. */
  obtain(): Promise<Uint8Array>;
  /** Swap the new certificate in (agent meta, file); throws when it is refused. */
  install(cert: Uint8Array): void;
  /** Counted outcomes. */
  renewed(): void;
  failed(err: unknown, attempt: number, retryInMs: number): void;
}

export class CertRenewer {
  private cert: Certificate;
  private timer: TimerHandle | null = null;
  private stopped = false;
  private busy = false;
  private attempt = 0;
  /** When the next attempt is due (ms), for status. */
  dueAt = 0;

  constructor(private readonly d: RenewerDeps) {
    this.cert = d.cert instanceof Uint8Array ? parseCert(d.cert) : d.cert;
  }

  start(): void {
    this.schedule(renewAt(this.cert));
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) this.d.clock.clearTimeout(this.timer);
    this.timer = null;
  }

  /**
   * The certificate changed by other means (a new cert file, a CA rollover): renew from its own
   * renewAt instead, failures forgotten.
   */
  replaced(cert: Uint8Array | Certificate): void {
    this.cert = cert instanceof Uint8Array ? parseCert(cert) : cert;
    this.attempt = 0;
    if (!this.busy) this.schedule(renewAt(this.cert));
  }

  /** An attempt is waiting for the signer's answer. */
  get pending(): boolean {
    return this.busy;
  }

  get current(): Certificate {
    return this.cert;
  }

  private schedule(at: number): void {
    if (this.stopped) return;
    if (this.timer) this.d.clock.clearTimeout(this.timer);
    this.dueAt = at;
    const wait = Math.max(0, at - this.d.clock.now());
    this.timer = this.d.clock.setTimeout(() => {
      this.timer = null;
      if (this.d.clock.now() < this.dueAt) this.schedule(this.dueAt);
      else void this.run();
    }, Math.min(wait, MAX_TIMER_MS));
  }

  /** One attempt now (the timer's, or a caller's). */
  async run(): Promise<boolean> {
    if (this.stopped || this.busy) return false;
    this.busy = true;
    const was = this.cert;
    try {
      const bytes = await this.d.obtain();
      if (this.stopped) return false;
      if (this.cert !== was) {
        this.schedule(renewAt(this.cert));
        return false;
      }
      this.d.install(bytes);
      this.cert = parseCert(bytes);
      this.attempt = 0;
      this.d.renewed();
      this.schedule(renewAt(this.cert));
      return true;
    } catch (e) {
      if (this.stopped) return false;
      if (this.cert !== was) {
        // Replaced while we were asking: follow the new certificate.
        this.schedule(renewAt(this.cert));
        return false;
      }
      this.attempt++;
      const left = this.cert.notAfter - this.d.clock.now();
      const retry = Math.min(MAX_BACKOFF_MS, Math.max(FIRST_BACKOFF_MS, Math.floor(left / 10)), FIRST_BACKOFF_MS * 2 ** Math.min(this.attempt - 1, 20));
      this.d.failed(e, this.attempt, retry);
      this.schedule(this.d.clock.now() + retry);
      return false;
    } finally {
      this.busy = false;
    }
  }
}
