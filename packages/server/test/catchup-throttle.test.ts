// The adaptive catch-up throttle (src/catchup-throttle.ts) driven step by step with a hand-moved
// time: it learns the steady latency while idle, cuts the rate when the leader's latency rises
// during a catch-up, grows it back when healthy, stays within [min, ceiling], yields to the
// operator's pause and does not oscillate under a steady signal.
import { describe, expect, it } from 'vitest';
import {
  CATCHUP_RATE_MIN_BYTES_PER_SEC,
  CATCHUP_THROTTLE_STEP_MS,
  CatchupThrottle,
  type CatchupSignals,
} from '../src/catchup-throttle.js';

const MiB = 1024 * 1024;
const CEILING = 32 * MiB;

/** A controller plus a time that moves one step per call. */
function harness(floorMs = 1) {
  const c = new CatchupThrottle({ latencyFloorMs: floorMs });
  let nowMs = 0;
  const step = (s: Partial<CatchupSignals>) => {
    nowMs += CATCHUP_THROTTLE_STEP_MS;
    return c.step({ nowMs, commitP99Ms: 4, fsyncP99Ms: 2, active: true, paused: false, ceilingBytesPerSec: CEILING, ...s });
  };
  /** `n` idle steps at commit 4 ms / fsync 2 ms: the steady values. */
  const settle = (n = 40) => {
    for (let i = 0; i < n; i++) step({ active: false });
  };
  return { c, step, settle };
}

describe('adaptive catch-up throttle', () => {
  it('starts a catch-up below the ceiling and grows to it while the leader is healthy', () => {
    const { c, step, settle } = harness();
    settle();
    const first = step({});
    expect(first).toBeLessThan(CEILING);
    let r = first;
    for (let i = 0; i < 40; i++) r = step({});
    expect(r).toBe(CEILING);
    expect(c.status().state).toBe('increasing');
  });

  it('backs off multiplicatively when commit latency or fsync p99 rises, then recovers', () => {
    for (const slow of [{ commitP99Ms: 20 }, { fsyncP99Ms: 10 }]) {
      const { c, step, settle } = harness();
      settle();
      for (let i = 0; i < 40; i++) step({});
      expect(step({})).toBe(CEILING);
      expect(step(slow)).toBe(CEILING / 2);
      // Within the cooldown it holds the cut rate, then cuts again.
      const rates: number[] = [];
      for (let i = 0; i < 8; i++) rates.push(step(slow));
      expect(Math.max(...rates)).toBe(CEILING / 2);
      expect(Math.min(...rates)).toBeLessThanOrEqual(CEILING / 8);
      expect(c.status().state).toBe('backing-off');
      // Healthy again: additive increase back to the ceiling, never past it.
      const up: number[] = [];
      for (let i = 0; i < 40; i++) up.push(step({}));
      expect(up.every((r, i) => i === 0 || r >= up[i - 1]!)).toBe(true);
      expect(up[1]! - up[0]!).toBeLessThan(CEILING / 4);
      expect(up.at(-1)).toBe(CEILING);
    }
  });

  it('never goes below the minimum nor above the ceiling, which the operator may move', () => {
    const { step, settle } = harness();
    settle();
    let r = 0;
    for (let i = 0; i < 200; i++) r = step({ commitP99Ms: 1000 });
    expect(r).toBe(CATCHUP_RATE_MIN_BYTES_PER_SEC);
    for (let i = 0; i < 200; i++) r = step({ ceilingBytesPerSec: 4 * MiB });
    expect(r).toBe(4 * MiB);
    expect(step({ ceilingBytesPerSec: 2 * MiB })).toBe(2 * MiB);
    // A ceiling under the minimum: the ceiling wins. Unlimited (0) leaves the throttle out.
    expect(step({ ceilingBytesPerSec: 100_000, commitP99Ms: 1000 })).toBe(100_000);
    expect(step({ ceilingBytesPerSec: 0 })).toBe(0);
  });

  it("the operator's pause wins: frozen while paused, and on resume it goes on from the same rate", () => {
    const { c, step, settle } = harness();
    settle();
    for (let i = 0; i < 40; i++) step({});
    const before = step({ commitP99Ms: 20 });
    for (let i = 0; i < 50; i++) expect(step({ paused: true })).toBe(before); // healthy signals do not raise it
    expect(c.status().state).toBe('paused');
    expect(step({ commitP99Ms: 4 })).toBeGreaterThan(before);
  });

  it('does not oscillate under a steady signal inside the hysteresis band', () => {
    const { c, step, settle } = harness();
    settle();
    for (let i = 0; i < 40; i++) step({});
    step({ commitP99Ms: 40 }); // one cut
    const held = new Set<number>();
    for (let i = 0; i < 200; i++) held.add(step({ commitP99Ms: 5.2 })); // 1.3 × steady: between LOW and HIGH
    expect(held.size).toBe(1);
    expect(c.status().state).toBe('holding');
    expect(c.status().decreases).toBe(1);
  });

  it('learns the steady value only while no catch-up runs, and never below the floor', () => {
    const { c, step, settle } = harness(10);
    settle();
    expect(c.status().steadyCommitMs).toBeCloseTo(4);
    for (let i = 0; i < 200; i++) step({ commitP99Ms: 14 }); // 14 / max(4, floor 10) = 1.4: holds, does not learn
    expect(c.status().steadyCommitMs).toBeCloseTo(4);
    expect(c.status().decreases).toBe(0);
    const held = c.status().effectiveBytesPerSec;
    expect(step({ commitP99Ms: 16 })).toBe(held / 2); // 1.6 × floor: cut
    expect(c.status().decreases).toBe(1);
  });
});
