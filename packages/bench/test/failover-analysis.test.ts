import { describe, expect, it } from 'vitest';
import { analyseRound, longestGap, lowerBound, medianMax, type RoundEvents } from '../src/failover-analysis.js';

describe('longestGap', () => {
  it('finds the longest interval between successes inside the window', () => {
    expect(longestGap([0, 10, 20, 500, 510], 0, 510)).toEqual({ gapMs: 480, start: 20, end: 500 });
  });

  it('counts the window edges, so no success at all is one gap of the whole window', () => {
    expect(longestGap([], 100, 1100).gapMs).toBe(1000);
    expect(longestGap([50, 2000], 100, 1100)).toEqual({ gapMs: 1000, start: 100, end: 1100 });
    expect(longestGap([150], 100, 1100)).toEqual({ gapMs: 950, start: 150, end: 1100 });
  });

  it('lowerBound finds the first element not below x', () => {
    expect(lowerBound([1, 2, 2, 5], 2)).toBe(1);
    expect(lowerBound([1, 2, 2, 5], 6)).toBe(4);
    expect(lowerBound([], 1)).toBe(0);
  });
});

describe('analyseRound', () => {
  it('reports the gap, errors after the kill, and the restart timings relative to their events', () => {
    const kill = 10_000;
    const ok = [9_100, 9_600, 9_700, 9_900, 11_200, 11_210, 11_300, 11_900, 20_000];
    const err = [9_800, 10_100, 10_500, 10_900, 30_000];
    const ev: RoundEvents = {
      round: 1, killed: 'n1', killedTerm: 2, killAtMs: kill, electedAtMs: 11_000, newLeader: 'n2',
      restartAtMs: 13_000, servingAtMs: 13_400, caughtUpAtMs: 14_000, endAtMs: 12_000,
    };
    expect(analyseRound(ev, ok, err)).toEqual({
      round: 1, killed: 'n1', newLeader: 'n2', electedAfterMs: 1000,
      gapMs: 1300, gapStartMs: -100, gapEndMs: 1200, // last success before the kill → first after
      errors: 3, okPerSecBeforeKill: 4, restartToServingMs: 400, restartToCaughtUpMs: 1000, // error at 30 000: outside the round
    });
  });

  it('reports null timings for events that never happened', () => {
    const ev: RoundEvents = {
      round: 2, killed: 'n3', killedTerm: 5, killAtMs: 0, electedAtMs: undefined, newLeader: undefined,
      restartAtMs: 100, servingAtMs: undefined, caughtUpAtMs: undefined, endAtMs: 1000,
    };
    const r = analyseRound(ev, [], []);
    expect(r.electedAfterMs).toBeNull();
    expect(r.restartToCaughtUpMs).toBeNull();
    expect(r.gapMs).toBe(1500);
  });

  it('medianMax ignores nulls', () => {
    expect(medianMax([3, null, 1, 2])).toEqual({ median: 2, max: 3 });
    expect(medianMax([4, 1])).toEqual({ median: 2.5, max: 4 });
    expect(medianMax([null])).toEqual({ median: null, max: null });
  });
});
