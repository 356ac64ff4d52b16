// CPU accounting from /proc: per-process user+system ticks (/proc/<pid>/stat) and whole-host busy
// time (/proc/stat), sampled at the start and the end of a measurement window.
import { readFileSync } from 'node:fs';

/** Clock ticks per second of /proc counters (USER_HZ; 100 on every mainstream Linux). */
export const CLOCK_TICKS_PER_SECOND = 100;

/** utime+stime in ticks from the text of /proc/<pid>/stat, or undefined if it cannot be parsed (pure). */
export function parseProcStatTicks(text: string): number | undefined {
  // The command name (field 2) is in parentheses and may contain spaces or ')': split after the last ')'.
  const close = text.lastIndexOf(')');
  if (close < 0) return undefined;
  const rest = text.slice(close + 1).trim().split(/\s+/);
  // rest[0] is field 3 (state); utime and stime are fields 14 and 15.
  const utime = Number(rest[11]);
  const stime = Number(rest[12]);
  return Number.isFinite(utime) && Number.isFinite(stime) ? utime + stime : undefined;
}

/** Busy and total ticks of all CPUs from the text of /proc/stat (pure). */
export function parseHostStat(text: string): { busyTicks: number; totalTicks: number } | undefined {
  const line = text.split('\n').find((l) => l.startsWith('cpu '));
  if (!line) return undefined;
  const v = line.trim().split(/\s+/).slice(1).map(Number);
  if (v.length < 5 || v.some((x) => !Number.isFinite(x))) return undefined;
  const total = v.reduce((a, b) => a + b, 0);
  const idle = (v[3] ?? 0) + (v[4] ?? 0); // idle + iowait
  return { busyTicks: total - idle, totalTicks: total };
}

function readTicks(pid: number): number | undefined {
  try {
    return parseProcStatTicks(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return undefined; // exited, or not Linux
  }
}

function readHost(): { busyTicks: number; totalTicks: number } | undefined {
  try {
    return parseHostStat(readFileSync('/proc/stat', 'utf8'));
  } catch {
    return undefined;
  }
}

/** One sample of a set of named processes and of the host. */
export interface CpuSample {
  atMs: number;
  ticksByName: Map<string, number | undefined>;
  host: { busyTicks: number; totalTicks: number } | undefined;
}

/** Takes a sample of the named processes (name → pid). */
export function sampleCpu(pids: ReadonlyMap<string, number>): CpuSample {
  const ticksByName = new Map<string, number | undefined>();
  for (const [name, pid] of pids) ticksByName.set(name, readTicks(pid));
  return { atMs: performance.now(), ticksByName, host: readHost() };
}

/** CPU use over a window: each process in % of ONE core, the host in % of all cores. */
export interface CpuUsage {
  /** % of one core per named process; null when it was not alive at both ends of the window. */
  byName: Record<string, number | null>;
  /** Whole machine busy, 100 = every core busy. */
  hostBusyPct: number | null;
  /** CPU of everything not named (other users of the machine), % of one core. */
  otherPct: number | null;
}

/** The CPU used between two samples (pure). `cores` is the host's core count. */
export function cpuBetween(a: CpuSample, b: CpuSample, cores: number): CpuUsage {
  const seconds = Math.max(1e-3, (b.atMs - a.atMs) / 1000);
  const byName: Record<string, number | null> = {};
  let namedPct = 0;
  for (const [name, t0] of a.ticksByName) {
    const t1 = b.ticksByName.get(name);
    if (t0 === undefined || t1 === undefined || t1 < t0) {
      byName[name] = null;
      continue;
    }
    const pct = ((t1 - t0) / CLOCK_TICKS_PER_SECOND / seconds) * 100;
    byName[name] = Math.round(pct * 10) / 10;
    namedPct += pct;
  }
  let hostBusyPct: number | null = null;
  let otherPct: number | null = null;
  if (a.host && b.host && b.host.totalTicks > a.host.totalTicks) {
    const busy = (b.host.busyTicks - a.host.busyTicks) / (b.host.totalTicks - a.host.totalTicks);
    hostBusyPct = Math.round(busy * 1000) / 10;
    otherPct = Math.round(Math.max(0, busy * 100 * cores - namedPct) * 10) / 10;
  }
  return { byName, hostBusyPct, otherPct };
}
