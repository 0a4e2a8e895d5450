/** CPU time and memory of a process, read from /proc (Linux). */
import { readFileSync } from 'node:fs';

const TICK = 100; // USER_HZ on Linux

export function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // fields after ')' start at index 3 (state); utime=14, stime=15 → offsets 11, 12
  return (Number(f[11]) + Number(f[12])) / TICK;
}

export function rssMiB(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : NaN;
}

export interface Mapping {
  /** Address range as /proc prints it. */
  range: string;
  sizeMiB: number;
  rssMiB: number;
}

/**
 * Anonymous read-write mappings of at least `minMiB` (large ArrayBuffers such as the buffer pools' slabs get
 * a mapping of their own), with how much of each is resident: a slab is counted whole in
 * process.memoryUsage().arrayBuffers at once, but enters RSS page by page as it is first written.
 */
export function anonMappings(pid: number, minMiB = 4): Mapping[] {
  const out: Mapping[] = [];
  let cur: Mapping | null = null;
  let anon = false;
  for (const line of readFileSync(`/proc/${pid}/smaps`, 'utf8').split('\n')) {
    const head = /^([0-9a-f]+-[0-9a-f]+)\s+(\S+)\s+\S+\s+\S+\s+\S+\s*(.*)$/.exec(line);
    if (head) {
      cur = { range: head[1], sizeMiB: 0, rssMiB: 0 };
      // readable and writable, no file: heap arenas and large buffers (V8's reservations are ---p)
      anon = head[3].trim() === '' && head[2].startsWith('rw');
      continue;
    }
    const kv = /^(Size|Rss):\s+(\d+) kB/.exec(line);
    if (!kv || !cur) continue;
    if (kv[1] === 'Size') cur.sizeMiB = Number(kv[2]) / 1024;
    else {
      cur.rssMiB = Number(kv[2]) / 1024;
      if (anon && cur.sizeMiB >= minMiB) out.push(cur);
    }
  }
  return out.sort((a, b) => b.sizeMiB - a.sizeMiB);
}
