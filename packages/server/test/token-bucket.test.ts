// The snapshot send rate limit (src/token-bucket.ts) on a ManualClock: grants happen at the
// simulated instants the rate allows, in request order.
import { describe, expect, it } from 'vitest';
import { TokenBucket } from '../src/token-bucket.js';
import { ManualClock } from '../src/world.js';

/** Requests `sizes` at once and returns the simulated time each was granted. */
function grantTimes(bucket: TokenBucket, clock: ManualClock, sizes: number[]): number[] {
  const at: number[] = [];
  for (const n of sizes) bucket.take(n, () => at.push(clock.nowMs()));
  clock.advance(60_000);
  return at;
}

describe('token bucket on an injected clock', () => {
  it('grants a burst at once, then at the rate', () => {
    const clock = new ManualClock();
    const bucket = new TokenBucket(1000, 100, clock); // burst = max(1000/10, 100) = 100 bytes
    expect(grantTimes(bucket, clock, [100, 100, 100, 50])).toEqual([0, 100, 200, 250]);
  });

  it('a rate change applies to the waiters at once; rate 0 is unlimited', () => {
    const clock = new ManualClock();
    const bucket = new TokenBucket(1000, 100, clock);
    const at: number[] = [];
    for (let i = 0; i < 3; i++) bucket.take(100, () => at.push(clock.nowMs()));
    clock.advance(100); // the first two: at 0 and at 100
    bucket.setRate(0);
    expect(at).toEqual([0, 100, 100]);
    let sync = false;
    bucket.take(1_000_000, () => (sync = true));
    expect(sync).toBe(true);
  });

  it('a paused bucket grants nothing, at any rate (0 too), until resumed; then in order', () => {
    const clock = new ManualClock();
    for (const rate of [1000, 0]) {
      const bucket = new TokenBucket(rate, 100, clock);
      bucket.setPaused(true);
      const at: string[] = [];
      bucket.take(50, () => at.push(`a@${clock.nowMs()}`));
      bucket.take(50, () => at.push(`b@${clock.nowMs()}`));
      clock.advance(10_000);
      expect(at, `rate ${rate}`).toEqual([]);
      bucket.setPaused(false);
      expect(at, `rate ${rate}`).toEqual([`a@${clock.nowMs()}`, `b@${clock.nowMs()}`]);
    }
  });

  it('a withdrawn request is never granted and does not delay the next', () => {
    const clock = new ManualClock();
    const bucket = new TokenBucket(1000, 100, clock);
    bucket.take(100, () => undefined); // the burst
    const gone = bucket.take(100, () => expect.unreachable('withdrawn'));
    const at: number[] = [];
    bucket.take(100, () => at.push(clock.nowMs()));
    gone.cancel();
    clock.advance(1000);
    expect(at).toEqual([100]);
  });

  it('close grants every waiter (shutdown)', () => {
    const clock = new ManualClock();
    const bucket = new TokenBucket(10, 100, clock);
    const granted: number[] = [];
    for (let i = 0; i < 3; i++) bucket.take(100, () => granted.push(i));
    bucket.close();
    expect(granted).toEqual([0, 1, 2]);
    expect(clock.pendingTimers()).toBe(0);
  });
});
