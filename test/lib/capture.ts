/** Packet captures in a testbed namespace, for asserting what crossed a link. */
import type { ChildProcess } from 'node:child_process';
import type { TestHost } from './testbed.js';

export interface Capture {
  /** Stop capturing (SIGINT, so the tool flushes) and return its stdout lines. */
  stop(): Promise<string[]>;
}

function started(child: ChildProcess, re: RegExp, timeoutMs: number): Promise<void> {
  return new Promise((resolve, reject) => {
    let err = '';
    const t = setTimeout(() => reject(new Error(`capture did not start: ${err}`)), timeoutMs);
    const on = (d: Buffer) => {
      err += d.toString();
      if (re.test(err)) {
        clearTimeout(t);
        child.stderr?.off('data', on);
        resolve();
      }
    };
    child.stderr?.on('data', on);
    child.once('exit', (c) => {
      clearTimeout(t);
      reject(new Error(`capture exited (${c}): ${err}`));
    });
  });
}

function collect(child: ChildProcess): () => Promise<string[]> {
  let out = '';
  child.stdout?.on('data', (d: Buffer) => (out += d.toString()));
  return () =>
    new Promise((resolve) => {
      const t = setTimeout(() => child.kill('SIGKILL'), 5000);
      child.once('exit', () => {
        clearTimeout(t);
        resolve(out.split('\n').filter(Boolean));
      });
      // The capture tools lag the wire a little: let them print the last packets first.
      setTimeout(() => child.kill('SIGINT'), 750);
    });
}

/** tcpdump text output (-n -l), one line per packet. Bounded by `maxSeconds`. */
export async function tcpdump(host: TestHost, iface: string, filter: string, maxSeconds = 60): Promise<Capture> {
  const child = host.spawn('timeout', [String(maxSeconds), 'tcpdump', '-n', '-l', '-i', iface, ...filter.split(' ')]);
  const stop = collect(child);
  await started(child, /listening on/, 10_000);
  return { stop };
}

/**
 * tshark dissecting live (`-T fields -E separator=|`) with the given fields, decoding UDP
 * `port` as VXLAN. A field that occurs more than once (outer and inner ip.src) is joined with
 * ','. Bounded by `maxSeconds`.
 */
export async function tsharkFields(host: TestHost, iface: string, filter: string, fields: string[], port = 4789, maxSeconds = 60): Promise<Capture> {
  const args = ['-n', '-l', '-i', iface, '-f', filter, '-a', `duration:${maxSeconds}`, '-d', `udp.port==${port},vxlan`, '-T', 'fields', '-E', 'separator=|'];
  for (const f of fields) args.push('-e', f);
  const child = host.spawn('tshark', args);
  const stop = collect(child);
  await started(child, /Capturing on/, 20_000);
  // dumpcap announces itself slightly before its filter is attached.
  await new Promise((r) => setTimeout(r, 500));
  return { stop };
}
