/**
 * TCP clients for the VIP tests and benchmarks (backends are vip-server.ts: a greeting line with
 * the backend's name, then an echo of each line prefixed by the name). Run inside a namespace.
 *
 *   tcp-client.ts short ADDRESS[,ADDRESS...] PORT COUNT IN_FLIGHT MAX_MS
 *     (several addresses: taken in turn, connection by connection; RESULT then also has
 *     `byAddress`: {address: {n, connectUs, greetUs}}, e.g. to compare two paths within one run)
 *     Short connections: keeps IN_FLIGHT connecting, each connects, reads the greeting, ends; a new
 *     one starts the moment one is greeted or fails (closes finish in the background). Bounded: stops after COUNT connections or MAX_MS or SIGTERM.
 *     Live: `ERR <Date.now()> <code>` per failed connection (error, close before the greeting,
 *     or no greeting within 2 s). Last: `RESULT {"ok","errors","ms","perSecond","share":{name:n},
 *     "connectUs":[p50,p99],"greetUs":[p50,p99],"firstErr","lastErr"}` — connect is connect() to
 *     the handshake's end, greet is connect() to the backend's greeting (for a proxy the time that
 *     includes its own connect to the backend); times of the successful connections.
 *     First line: `START <Date.now()>` as the first connections begin.
 *     `mark` on stdin prints `MARK <Date.now()>` and starts a second share count (`shareAfter`)
 *     for connections started after it.
 *
 *   tcp-client.ts hold ADDRESS PORT COUNT
 *     Opens COUNT connections and prints `HELD {"names":[...]}` (backend per connection, in
 *     order). Each `use` on stdin sends one line on every connection and prints `USED {"ok",
 *     "same","failed","names":[...]}` — same: the answer came from the backend that greeted it.
 *     Connections that fail are reported, never retried. Exits when stdin closes.
 */
import { connect, type Socket } from 'node:net';
import { createInterface } from 'node:readline';

const [mode, address, portArg, countArg, inFlightArg, maxMsArg] = process.argv.slice(2);
const port = Number(portArg);
const count = Number(countArg);
const GREET_TIMEOUT_MS = 2000;

function percentile(sorted: Float64Array, p: number): number {
  if (sorted.length === 0) return -1;
  return Math.round(sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]);
}

function short(): void {
  const inFlight = Number(inFlightArg);
  const addresses = address.split(',');
  const maxMs = Number(maxMsArg);
  if (!(inFlight > 0) || !(maxMs > 0)) usage();
  const connectUs = new Float64Array(count);
  const greetUs = new Float64Array(count);
  /** Index into `addresses` of each successful connection. */
  const addrOf = new Uint16Array(count);
  const share: Record<string, number> = {};
  let shareAfter: Record<string, number> | undefined;
  let started = 0;
  let ok = 0;
  let errors = 0;
  let active = 0;
  let firstErr = -1;
  let lastErr = -1;
  let stopping = false;
  const t0 = performance.now();
  const open = new Set<Socket>();

  const fail = (code: string) => {
    errors++;
    const now = Date.now();
    if (firstErr < 0) firstErr = now;
    lastErr = now;
    process.stdout.write(`ERR ${now} ${code}\n`);
  };
  const one = (): void => {
    if (stopping || started >= count || performance.now() - t0 >= maxMs) return void (active === 0 && finish());
    started++;
    active++;
    const counts = shareAfter;
    const begin = performance.now();
    let connected = -1;
    let done = false;
    const which = started % addresses.length;
    const s = connect({ host: addresses[which], port });
    open.add(s);
    s.setNoDelay(true);
    const timer = setTimeout(() => end('timeout'), GREET_TIMEOUT_MS);
    const end = (err?: string) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      if (err !== undefined) {
        fail(err);
        s.destroy();
      }
      // The slot is free once the greeting (or the failure) is in: the close goes on in the background.
      active--;
      setImmediate(one);
    };
    s.on('connect', () => {
      connected = performance.now();
    });
    s.setEncoding('utf8');
    let got = '';
    s.on('data', (d: string) => {
      if (done) return;
      got += d;
      const i = got.indexOf('\n');
      if (i < 0) return;
      const name = got.slice(0, i);
      connectUs[ok] = (connected - begin) * 1000;
      greetUs[ok] = (performance.now() - begin) * 1000;
      addrOf[ok] = which;
      ok++;
      share[name] = (share[name] ?? 0) + 1;
      if (counts) counts[name] = (counts[name] ?? 0) + 1;
      end();
      s.end();
    });
    s.on('error', (e: NodeJS.ErrnoException) => end(e.code ?? 'error'));
    s.on('close', () => {
      end('closed');
      open.delete(s);
    });
  };
  let finished = false;
  const finish = () => {
    if (finished) return;
    finished = true;
    const ms = performance.now() - t0;
    const c = connectUs.slice(0, ok).sort();
    const g = greetUs.slice(0, ok).sort();
    const byAddress: Record<string, { n: number; connectUs: number[]; greetUs: number[] }> = {};
    if (addresses.length > 1) {
      for (const a of new Set(addresses)) {
        const idx = [...addrOf.subarray(0, ok).keys()].filter((i) => addresses[addrOf[i]] === a);
        const ca = Float64Array.from(idx, (i) => connectUs[i]).sort();
        const ga = Float64Array.from(idx, (i) => greetUs[i]).sort();
        byAddress[a] = { n: idx.length, connectUs: [percentile(ca, 50), percentile(ca, 99)], greetUs: [percentile(ga, 50), percentile(ga, 99)] };
      }
    }
    const result = {
      ok, errors, ms: Math.round(ms), perSecond: Math.round((ok / ms) * 1000), share, shareAfter,
      connectUs: [percentile(c, 50), percentile(c, 99)], greetUs: [percentile(g, 50), percentile(g, 99)], firstErr, lastErr, byAddress,
    };
    process.stdout.write(`RESULT ${JSON.stringify(result)}\n`, () => process.exit(0));
  };
  process.once('SIGTERM', () => {
    stopping = true;
    for (const s of open) s.destroy();
    if (active === 0) finish();
  });
  setTimeout(() => {
    stopping = true;
    for (const s of open) s.destroy();
  }, maxMs + GREET_TIMEOUT_MS).unref();
  createInterface({ input: process.stdin }).on('line', (l) => {
    if (l.trim() === 'mark') {
      shareAfter = {};
      process.stdout.write(`MARK ${Date.now()}\n`);
    }
  });
  process.stdout.write(`START ${Date.now()}\n`);
  for (let i = 0; i < inFlight; i++) one();
}

function hold(): void {
  const socks: Socket[] = [];
  const names: string[] = new Array<string>(count).fill('');
  const pending: Array<((line: string | undefined) => void) | undefined> = new Array(count);
  const failed: boolean[] = new Array<boolean>(count).fill(false);
  let greeted = 0;
  for (let i = 0; i < count; i++) {
    const s = connect({ host: address, port });
    socks.push(s);
    s.setEncoding('utf8');
    let buf = '';
    s.on('data', (d: string) => {
      buf += d;
      let j;
      while ((j = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, j);
        buf = buf.slice(j + 1);
        if (names[i] === '') {
          names[i] = line;
          if (++greeted === count) process.stdout.write(`HELD ${JSON.stringify({ names })}\n`);
        } else {
          const p = pending[i];
          pending[i] = undefined;
          p?.(line);
        }
      }
    });
    const lost = () => {
      failed[i] = true;
      const p = pending[i];
      pending[i] = undefined;
      p?.(undefined);
    };
    s.on('error', lost);
    s.on('close', lost);
  }
  let round = 0;
  const use = async () => {
    round++;
    const answers = await Promise.all(
      socks.map(
        (s, i) =>
          new Promise<string | undefined>((resolve) => {
            if (failed[i]) return resolve(undefined);
            const t = setTimeout(() => resolve(undefined), GREET_TIMEOUT_MS);
            pending[i] = (line) => {
              clearTimeout(t);
              resolve(line);
            };
            s.write(`ping${round}\n`);
          }),
      ),
    );
    const got = answers.map((a) => (a === undefined ? '' : a.split(' ')[0]));
    const ok = answers.filter((a, i) => a === `${got[i]} ping${round}`).length;
    const same = got.filter((n, i) => n !== '' && n === names[i]).length;
    process.stdout.write(`USED ${JSON.stringify({ ok, same, failed: count - ok, names: got })}\n`);
  };
  const rl = createInterface({ input: process.stdin });
  rl.on('line', (l) => {
    if (l.trim() === 'use') void use();
  });
  rl.on('close', () => {
    for (const s of socks) s.destroy();
    process.exit(0);
  });
}

function usage(): never {
  process.stderr.write('usage: tcp-client.ts short ADDRESS PORT COUNT IN_FLIGHT MAX_MS | hold ADDRESS PORT COUNT\n');
  process.exit(2);
}

if (!address || !(port > 0) || !(count > 0) || count > 10_000_000) usage();
if (mode === 'short') short();
else if (mode === 'hold') hold();
else usage();
