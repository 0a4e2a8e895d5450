import { execFile } from 'node:child_process';
import { createSocket, type Socket } from 'node:dgram';
import { connect, createServer, type Server } from 'node:net';
import * as dnsPacket from 'dns-packet';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DnsServer } from '../src/dns/server.js';
import { fixtureDirectory } from './dns-fixture.js';

// The socket server on loopback, asked by the real `dig` (bind9-dnsutils), forwarding other names
// to a small upstream written here (UDP and TCP on 127.0.0.1) that counts what it is asked.

function dig(args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile('dig', ['+tries=1', '+time=3', ...args], { timeout: 20_000 }, (err, stdout) => (err && !stdout ? reject(err) : resolve(stdout)));
  });
}
const status = (out: string) => /status: (\w+)/.exec(out)?.[1];

interface Upstream {
  udp: Socket;
  tcp: Server;
  port: number;
  asked: Map<string, number>;
}

async function startUpstream(): Promise<Upstream> {
  const asked = new Map<string, number>();
  const reply = (msg: Buffer): Buffer | undefined => {
    const q = dnsPacket.decode(msg);
    const name = q.questions![0].name.toLowerCase();
    asked.set(name, (asked.get(name) ?? 0) + 1);
    if (name.startsWith('slow')) return undefined;
    if (name.startsWith('lost') && asked.get(name) === 1) return undefined; // the first copy is lost
    const base = { type: 'response' as const, id: q.id, flags: dnsPacket.RECURSION_AVAILABLE, questions: q.questions };
    if (name === 'example.test' || name.startsWith('lost')) return dnsPacket.encode({ ...base, answers: [{ type: 'A', name: q.questions![0].name, ttl: 60, data: '198.19.7.7' }] });
    const soa = { type: 'SOA' as const, name: 'test', ttl: 120, data: { mname: 'ns.test', rname: 'h.test', serial: 1, refresh: 1, retry: 1, expire: 1, minimum: 60 } };
    return dnsPacket.encode({ ...base, flags: dnsPacket.RECURSION_AVAILABLE | 3, authorities: [soa] }); // rcode 3: NXDOMAIN
  };
  const udp = createSocket('udp4');
  udp.on('message', (m, r) => {
    const out = reply(m);
    if (out) udp.send(out, r.port, r.address);
  });
  await new Promise<void>((r) => udp.bind(0, '127.0.0.1', () => r()));
  const port = udp.address().port;
  const tcp = createServer((s) => {
    let buf = Buffer.alloc(0);
    s.on('error', () => {});
    s.on('data', (d) => {
      buf = Buffer.concat([buf, d]);
      if (buf.length < 2 || buf.length < 2 + buf.readUInt16BE(0)) return;
      const out = reply(buf.subarray(2, 2 + buf.readUInt16BE(0)));
      if (out) s.end(Buffer.concat([Buffer.from([out.length >> 8, out.length & 255]), out]));
    });
  });
  await new Promise<void>((r) => tcp.listen(port, '127.0.0.1', () => r()));
  return { udp, tcp, port, asked };
}

describe('DNS server on loopback sockets, asked by dig', () => {
  let up: Upstream;
  let server: DnsServer;
  let port: string;
  beforeAll(async () => {
    up = await startUpstream();
    server = await DnsServer.listen({
      directory: fixtureDirectory(),
      networks: ['blue'],
      address: '127.0.0.1',
      port: 0,
      forward: { upstreams: [`127.0.0.1:${up.port}`], timeoutMs: 4000, maxPending: 8, minShare: 2 },
      tcpIdleMs: 2000,
    });
    port = String(server.port);
  });
  afterAll(async () => {
    await server?.close();
    up?.udp.close();
    up?.tcp.close();
  });

  it('answers our names: VIP, tasks, SRV, PTR, NODATA AAAA', async () => {
    expect((await dig(['@127.0.0.1', '-p', port, '+short', 'web'])).trim()).toBe('198.19.1.10');
    expect((await dig(['@127.0.0.1', '-p', port, '+short', 'tasks.web'])).trim().split('\n').sort()).toEqual(['198.19.0.11', '198.19.0.12']);
    expect((await dig(['@127.0.0.1', '-p', port, '+short', '_pg._tcp.db', 'SRV'])).trim()).toBe('0 1 5432 db-1.tasks.db.');
    expect((await dig(['@127.0.0.1', '-p', port, '+short', '-x', '198.19.0.12'])).trim()).toBe('web-2.tasks.web.');
    const nodata = await dig(['@127.0.0.1', '-p', port, 'v4only', 'AAAA']);
    expect(status(nodata)).toBe('NOERROR');
    expect(nodata).toMatch(/ANSWER: 0,/);
    expect(status(await dig(['@127.0.0.1', '-p', port, 'secret']))).toBe('NXDOMAIN');
  });

  it('a 300-instance RRset: truncated over UDP (TC), complete over TCP, and dig falls back to TCP by itself', async () => {
    const udp = await dig(['@127.0.0.1', '-p', port, '+ignore', '+bufsize=1232', 'all.tasks.big']);
    expect(udp).toMatch(/flags: qr aa tc/);
    expect(udp).toMatch(/ANSWER: 74,/);
    const tcp = await dig(['@127.0.0.1', '-p', port, '+tcp', '+short', 'all.tasks.big']);
    expect(new Set(tcp.trim().split('\n')).size).toBe(300);
    const fallback = await dig(['@127.0.0.1', '-p', port, '+short', 'all.tasks.big']);
    expect(new Set(fallback.trim().split('\n')).size).toBe(300);
  });

  it('forwards other names upstream over UDP and TCP', async () => {
    expect((await dig(['@127.0.0.1', '-p', port, '+short', 'example.test'])).trim()).toBe('198.19.7.7');
    expect((await dig(['@127.0.0.1', '-p', port, '+tcp', '+short', 'EXAMPLE.test'])).trim()).toBe('198.19.7.7');
    expect(server.counters.get('forward_answered')).toBeGreaterThanOrEqual(2);
  });

  it('keeps NXDOMAIN from upstream in the negative cache (SOA minimum): the second ask stays local', async () => {
    const before = server.counters.get('negative_cache_hits');
    expect(status(await dig(['@127.0.0.1', '-p', port, 'nothing.test']))).toBe('NXDOMAIN');
    expect(status(await dig(['@127.0.0.1', '-p', port, 'Nothing.Test']))).toBe('NXDOMAIN');
    expect(up.asked.get('nothing.test')).toBe(1);
    expect(server.counters.get('negative_cache_hits')).toBe(before + 1);
  });

  it('an upstream that never answers: SERVFAIL after the timeout, counted', { timeout: 30_000 }, async () => {
    const before = server.counters.get('forward_timeouts');
    expect(status(await dig(['@127.0.0.1', '-p', port, '+time=8', 'slow1.test']))).toBe('SERVFAIL');
    expect(server.counters.get('forward_timeouts')).toBe(before + 1);
  });

  it('a client retry joins its pending query: the upstream is asked again at once, the client gets one answer and no late SERVFAIL', async () => {
    // The first upstream copy is lost; without joining, the retry would be a second query answered
    // at once while the first ran into its timeout and sent the client a SERVFAIL for the same ID.
    const quick = await DnsServer.listen({ directory: fixtureDirectory(), networks: ['blue'], address: '127.0.0.1', port: 0, forward: { upstreams: [`127.0.0.1:${up.port}`], timeoutMs: 400 } });
    const c = createSocket('udp4');
    try {
      await new Promise<void>((r) => c.bind(0, '127.0.0.1', () => r()));
      const got: dnsPacket.Packet[] = [];
      c.on('message', (m) => got.push(dnsPacket.decode(m)));
      const q = dnsPacket.encode({ type: 'query', id: 4242, flags: dnsPacket.RECURSION_DESIRED, questions: [{ type: 'A', name: 'lost1.test' }] });
      c.send(q, quick.port, '127.0.0.1');
      await new Promise((r) => setTimeout(r, 150));
      expect(got).toHaveLength(0);
      c.send(q, quick.port, '127.0.0.1'); // the client's retry: same socket, ID and question
      // Past the first copy's timeout (400 ms) and the sweep that would have sent its SERVFAIL.
      await new Promise((r) => setTimeout(r, 1200));
      expect(got).toHaveLength(1);
      expect(got[0].id).toBe(4242);
      expect((got[0].flags ?? -1) & 15).toBe(0); // rcode NOERROR
      expect(got[0].answers?.map((a) => (a.type === 'A' ? a.data : a.type))).toEqual(['198.19.7.7']);
      expect(up.asked.get('lost1.test')).toBe(2);
      expect(quick.counters.get('forward_client_retries')).toBe(1);
      expect(quick.counters.get('forward_timeouts')).toBe(0);
      expect(quick.counters.get('forwarded')).toBe(1);
    } finally {
      c.close();
      await quick.close();
    }
  });

  it('per-client fair share: a client over its share is REFUSED, another client is still served meanwhile', { timeout: 30_000 }, async () => {
    // maxPending 8, minShare 2: a lone client may hold 8 / (1 + 1) = 4; the rest of its slow names are refused.
    const a = createSocket('udp4');
    await new Promise<void>((r) => a.bind(0, '127.0.0.2', () => r()));
    const rcodes: string[] = [];
    a.on('message', (m) => rcodes.push((dnsPacket.decode(m) as { rcode?: string }).rcode ?? '?'));
    const before = server.counters.get('forward_over_share');
    try {
      for (let i = 0; i < 12; i++) a.send(dnsPacket.encode({ type: 'query', id: i, questions: [{ type: 'A', name: `slow-${i}.test` }] }), Number(port), '127.0.0.1');
      for (let t = 0; t < 250 && rcodes.length < 8; t++) await new Promise((r) => setTimeout(r, 20));
      expect(rcodes).toEqual(Array(8).fill('REFUSED'));
      expect(server.forwarder!.pendingCount).toBe(4);
      // Client 127.0.0.1 is served while 127.0.0.2 holds its share.
      expect((await dig(['@127.0.0.1', '-p', port, '+short', 'example.test'])).trim()).toBe('198.19.7.7');
      expect(server.forwarder!.pendingCount).toBe(4);
      expect(server.counters.get('forward_over_share')).toBe(before + 8);
    } finally {
      for (let t = 0; t < 400 && server.forwarder!.pendingCount > 0; t++) await new Promise((r) => setTimeout(r, 20));
      // The held queries' SERVFAILs leave as the last one times out; let them arrive before closing.
      for (let t = 0; t < 100 && rcodes.length < 12; t++) await new Promise((r) => setTimeout(r, 20));
      a.close();
    }
    expect(rcodes.filter((r) => r === 'SERVFAIL')).toHaveLength(4);
  });

  it('TCP: queries split anywhere over segments (inside the length, inside the message, across two queries) are answered in order', async () => {
    const q1 = dnsPacket.encode({ type: 'query', id: 1, questions: [{ type: 'A', name: 'web' }] });
    const q2 = dnsPacket.encode({ type: 'query', id: 2, questions: [{ type: 'A', name: 'tasks.web' }] });
    const stream = Buffer.concat([Buffer.from([0, q1.length]), q1, Buffer.from([0, q2.length]), q2]);
    const cuts = [1, 7, q1.length + 3, stream.length];
    const got = await new Promise<Buffer>((resolve, reject) => {
      const chunks: Buffer[] = [];
      const s = connect(Number(port), '127.0.0.1', async () => {
        s.setNoDelay(true); // each write its own segment
        let from = 0;
        for (const to of cuts) {
          s.write(stream.subarray(from, to));
          from = to;
          await new Promise((r) => setTimeout(r, 40));
        }
      });
      s.on('data', (d) => {
        chunks.push(d);
        const all = Buffer.concat(chunks);
        if (all.length >= 2 && all.length >= 2 + all.readUInt16BE(0)) {
          const second = 2 + all.readUInt16BE(0);
          if (all.length >= second + 2 && all.length >= second + 2 + all.readUInt16BE(second)) {
            s.destroy();
            resolve(all);
          }
        }
      });
      s.on('error', reject);
    });
    const first = dnsPacket.decode(got.subarray(2, 2 + got.readUInt16BE(0)));
    const at = 2 + got.readUInt16BE(0);
    const second = dnsPacket.decode(got.subarray(at + 2, at + 2 + got.readUInt16BE(at)));
    expect(first.id).toBe(1);
    expect(first.answers?.map((a) => (a as { data: string }).data)).toEqual(['198.19.1.10']);
    expect(second.id).toBe(2);
    expect(second.answers?.map((a) => (a as { data: string }).data).sort()).toEqual(['198.19.0.11', '198.19.0.12']);
  });

  it('TCP: a length under a header closes the connection (counted); an idle connection is closed', async () => {
    const before = server.counters.get('tcp_bad_length');
    await new Promise<void>((resolve) => {
      const s = connect(Number(port), '127.0.0.1', () => s.write(Buffer.from([0, 3, 1, 2, 3])));
      s.on('close', () => resolve());
      s.on('error', () => {});
    });
    expect(server.counters.get('tcp_bad_length')).toBe(before + 1);
    const idle = server.counters.get('tcp_idle_closed');
    const t0 = Date.now();
    await new Promise<void>((resolve) => {
      const s = connect(Number(port), '127.0.0.1');
      s.on('close', () => resolve());
      s.on('error', () => {});
    });
    expect(Date.now() - t0).toBeGreaterThanOrEqual(1500);
    expect(server.counters.get('tcp_idle_closed')).toBe(idle + 1);
  });
});
