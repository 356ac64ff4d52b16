import { describe, expect, it } from 'vitest';
import { cpuBetween, parseHostStat, parseProcStatTicks, type CpuSample } from '../src/cpu.js';

describe('/proc parsing', () => {
  it('reads utime+stime even when the command name has spaces and parentheses', () => {
    const line = '4242 (node (worker) x) S 1 4242 4242 0 -1 4194560 1000 0 0 0 250 75 0 0 20 0 11 0 123 456 789';
    expect(parseProcStatTicks(line)).toBe(325);
  });

  it('returns undefined for garbage instead of throwing', () => {
    expect(parseProcStatTicks('nonsense')).toBeUndefined();
    expect(parseProcStatTicks('1 (x) S 1 2')).toBeUndefined();
    expect(parseHostStat('intr 1 2 3')).toBeUndefined();
  });

  it('counts idle and iowait as not busy on the host line', () => {
    expect(parseHostStat('cpu  100 0 50 800 50 0 0 0 0 0\ncpu0 1 2 3 4 5')).toEqual({ busyTicks: 150, totalTicks: 1000 });
  });
});

describe('cpuBetween', () => {
  const sample = (atMs: number, ticks: Record<string, number | undefined>, busy: number, total: number): CpuSample => ({
    atMs,
    ticksByName: new Map(Object.entries(ticks)),
    host: { busyTicks: busy, totalTicks: total },
  });

  it('gives % of one core per process, host busy %, and the rest as other', () => {
    // 2 s window, 2 cores: 400 ticks in total, 300 busy. n1 used 100 ticks (50 %), gen 60 ticks (30 %).
    const a = sample(0, { n1: 1000, gen1: 500 }, 1000, 10_000);
    const b = sample(2000, { n1: 1100, gen1: 560 }, 1300, 10_400);
    const u = cpuBetween(a, b, 2);
    expect(u.byName).toEqual({ n1: 50, gen1: 30 });
    expect(u.hostBusyPct).toBe(75);
    expect(u.otherPct).toBe(70); // 150 % of one core busy in total minus 80 % named
  });

  it('reports null for a process that was not alive at both ends (killed node)', () => {
    const u = cpuBetween(sample(0, { n1: 10 }, 0, 100), sample(1000, { n1: undefined }, 10, 300), 2);
    expect(u.byName).toEqual({ n1: null });
  });
});
