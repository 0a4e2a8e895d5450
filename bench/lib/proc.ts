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
