import { describe, expect, it } from 'vitest';
import { Keyring, SimCluster, type AgentDropReason } from '@overlay/agent';

const blue = { name: 'blue', vni: 100 };
const dropped = (a: SimCluster['agents'][number], name: AgentDropReason) => a.drops.get(name);

describe('push-pull freshness', () => {
  it('a captured push-pull exchange replayed later is refused and counted, never merged or answered with state', async () => {
    const c = new SimCluster({ n: 3, seed: 21, encrypt: true, networks: [blue] });
    c.bootstrapAll();
    for (let i = 0; i < 3; i++) c.agents[i].publish(blue, { id: `e${i}`, mac: Uint8Array.of(2, 0, 0, 0, 0, i) });
    c.run(3000);
    const a0 = c.agents[0];
    // Capture the sealed chunks node-1 sends node-0 in one genuine exchange.
    let captured: Uint8Array[] | null = null;
    const orig = a0.handleExchange.bind(a0);
    a0.handleExchange = (from, chunks) => {
      const reply = orig(from, chunks);
      if (!captured && reply.length > 0 && chunks.length > 0 && chunks[0].length > 200) captured = chunks;
      return reply;
    };
    const p = c.agents[1].pushPull(c.addrs[0], false, 5000);
    c.run(50);
    await p;
    a0.handleExchange = orig;
    expect(captured).not.toBeNull();

    // Replay it 100 times: right away, and after the sender sent newer exchanges.
    let answered = 0;
    for (let i = 0; i < 50; i++) if (a0.handleExchange(c.addrs[1], captured!).length > 0) answered++;
    const q = c.agents[1].pushPull(c.addrs[0], false, 5000);
    c.run(50);
    await q; // a fresh exchange from the same node still works
    c.run(600_000); // and ten minutes later (past the clock-skew bound)
    for (let i = 0; i < 50; i++) if (a0.handleExchange(c.addrs[1], captured!).length > 0) answered++;
    console.log(`replayed push-pull exchanges answered with state: ${answered} of 100; refused as replayed ${dropped(a0, 'pushpull_replayed')}, as stale ${dropped(a0, 'pushpull_stale_timestamp')}`);
    expect(answered).toBe(0);
    expect(dropped(a0, 'pushpull_replayed') + dropped(a0, 'pushpull_stale_timestamp')).toBe(100);
    expect(dropped(a0, 'pushpull_stale_timestamp')).toBeGreaterThanOrEqual(50);
  });

  it('a reply replayed to an initiator (not the answer to its request) is refused and counted', async () => {
    const c = new SimCluster({ n: 2, seed: 22, networks: [blue] });
    c.bootstrapAll();
    c.run(1000);
    const a1 = c.agents[1];
    let oldReply: Uint8Array[] | null = null;
    const orig = c.agents[0].handleExchange.bind(c.agents[0]);
    c.agents[0].handleExchange = (from, chunks) => (oldReply ??= orig(from, chunks));
    const p = a1.pushPull(c.addrs[0], false, 5000);
    c.run(50);
    await p;
    // From now on node-0 "answers" every request with the old captured reply.
    const q = a1.pushPull(c.addrs[0], false, 5000);
    c.run(50);
    await expect(q).rejects.toThrow();
    expect(dropped(a1, 'pushpull_replayed')).toBe(1);
  });
});

describe('push-pull input that is not a genuine exchange', () => {
  it('garbage, wrongly keyed, bit-flipped and spliced streams are refused and counted; state unchanged', async () => {
    const c = new SimCluster({ n: 3, seed: 23, encrypt: true, networks: [blue] });
    c.bootstrapAll();
    for (let i = 0; i < 3; i++) c.agents[i].publish(blue, { id: `e${i}`, mac: Uint8Array.of(2, 0, 0, 0, 0, i) });
    c.run(3000);
    const a0 = c.agents[0];
    const captured: Uint8Array[][] = [];
    const orig = a0.handleExchange.bind(a0);
    a0.handleExchange = (from, chunks) => {
      if (chunks[0].length > 200) captured.push(chunks);
      return orig(from, chunks);
    };
    for (const i of [1, 2]) {
      const p = c.agents[i].pushPull(c.addrs[0], false, 5000);
      c.run(50);
      await p;
    }
    a0.handleExchange = orig;
    expect(captured).toHaveLength(2);
    const digest = a0.table.digest();
    const before = a0.drops.total();
    let answered = 0;
    const ask = (chunks: Uint8Array[]) => void (a0.handleExchange(c.addrs[1], chunks).length > 0 && answered++);
    const rnd = seeded(7);
    for (let i = 0; i < 300; i++) ask([Uint8Array.from({ length: 1 + Math.floor(rnd() * 3000) }, () => Math.floor(rnd() * 256))]);
    const wrong = new Keyring([Buffer.alloc(32, 99)]);
    for (let i = 0; i < 300; i++) ask([wrong.seal(Uint8Array.from({ length: 600 }, () => Math.floor(rnd() * 256)))]);
    for (let i = 0; i < 300; i++) {
      const g = captured[i % 2].map((x) => Buffer.from(x));
      const b = g[0];
      b[Math.floor(rnd() * b.length)] ^= 1 << Math.floor(rnd() * 8);
      ask(g);
    }
    // A genuine chunk of one exchange spliced onto another's: bound to different (from, seq).
    ask([...captured[0], ...captured[1]]);
    ask([]);
    expect(answered).toBe(0);
    expect(a0.drops.total() - before).toBe(902);
    expect(a0.drops.get('pushpull_bad_stream')).toBeGreaterThanOrEqual(2);
    expect(a0.table.digest()).toBe(digest);
  });
});

function seeded(s: number): () => number {
  return () => ((s = (s * 1103515245 + 12345) >>> 0) / 2 ** 32);
}
