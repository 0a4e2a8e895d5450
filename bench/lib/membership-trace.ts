/**
 * Preload for bench/loss-soak.ts --trace DIR: wraps Membership's state changes and writes one line
 * per suspicion, confirmation, refutation, alive-after-suspect and death to DIR/<agent>.log, with
 * the wall time and the event loop's lag, so each false death can be traced to the path that did
 * not refute it in time. Diagnostic only; the agent itself is unchanged.
 */
import { appendFileSync, mkdirSync } from 'node:fs';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { Membership } from '../../packages/agent/src/membership.js';

const dir = process.env.MEMBERSHIP_TRACE_DIR;
if (dir) {
  mkdirSync(dir, { recursive: true });
  const lag = monitorEventLoopDelay({ resolution: 10 });
  lag.enable();
  const t0 = Date.now();
  const proto = Membership.prototype as unknown as Record<string, (...a: unknown[]) => unknown>;
  const line = (m: Membership, s: string) => appendFileSync(`${dir}/${m.name}.log`, `${((Date.now() - t0) / 1000).toFixed(3)} lagmax=${(lag.max / 1e6).toFixed(0)}ms aw=${m.awareness} ${s}\n`);
  let last = Date.now();
  setInterval(() => { if (Date.now() - last > 5000) { last = Date.now(); lag.reset(); } }, 1000).unref();
  const wrap = (name: string, fmt: (self: Membership, args: unknown[]) => string | null) => {
    const orig = proto[name];
    proto[name] = function (this: Membership, ...args: unknown[]) {
      const s = fmt(this, args);
      if (s) line(this, s);
      return orig.apply(this, args);
    };
  };
  const st = (m: Membership, n: string) => `${m.stateOf(n)}@${m.get(n)?.incarnation}`;
  wrap('suspect', (m, [s]) => { const x = s as { name: string; incarnation: number; from: string }; return `suspect ${x.name}@${x.incarnation} from ${x.from} (was ${st(m, x.name)})`; });
  wrap('dead', (m, [d]) => { const x = d as { name: string; incarnation: number; from: string }; return m.stateOf(x.name) === 'dead' ? null : `dead ${x.name}@${x.incarnation} from ${x.from} (was ${st(m, x.name)})`; });
  wrap('alive', (m, [a]) => { const x = a as { name: string; incarnation: number }; const s = m.stateOf(x.name); return s === 'suspect' || s === 'dead' || x.name === m.name ? `alive ${x.name}@${x.incarnation} (was ${st(m, x.name)})` : null; });
  wrap('refute', (m, [inc]) => `refute at ${String(inc)} (self was @${m.incarnation})`);
}
