// The loop around the adaptive catch-up throttle (src/catchup-throttle-loop.ts) on a ManualClock:
// it steps every CATCHUP_THROTTLE_STEP_MS, drains the step's samples, and sets the sender's rate;
// in fixed mode it never touches the rate.
import { describe, expect, it } from 'vitest';
import { CATCHUP_THROTTLE_STEP_MS } from '../src/catchup-throttle.js';
import { CatchupThrottleLoop, type ThrottledSender } from '../src/catchup-throttle-loop.js';
import { RecentSamples } from '../src/metrics.js';
import { ManualClock } from '../src/world.js';

const CEILING = 8 * 1024 * 1024;

function world(mode: 'adaptive' | 'fixed') {
  const clock = new ManualClock();
  const set: number[] = [];
  const sender: ThrottledSender & { sending: boolean } = {
    rateBytesPerSec: CEILING,
    effectiveRateBytesPerSec: CEILING,
    sending: false,
    sendsPaused: false,
    setThrottledRate: (r) => set.push(r),
  };
  const samples = { commitStep: new RecentSamples(64), fsyncStep: new RecentSamples(64) };
  const loop = new CatchupThrottleLoop(mode, { clock, sender, samples, latencyFloorMs: 1 });
  return { clock, sender, samples, loop, set };
}

describe('catch-up throttle loop', () => {
  it('steps on the clock, drains each step, and cuts the sender when the step is slow', () => {
    const { clock, sender, samples, loop, set } = world('adaptive');
    loop.start();
    for (let i = 0; i < 20; i++) {
      samples.commitStep.add(0.004);
      clock.advance(CATCHUP_THROTTLE_STEP_MS);
    }
    expect(set.length).toBe(21);
    expect(set.at(-1)).toBe(CEILING / 4); // idle: the start rate
    sender.sending = true;
    samples.commitStep.add(0.004);
    clock.advance(CATCHUP_THROTTLE_STEP_MS);
    const grown = set.at(-1)!;
    expect(grown).toBeGreaterThan(CEILING / 4);
    samples.commitStep.add(0.1); // 25 × steady
    clock.advance(CATCHUP_THROTTLE_STEP_MS);
    expect(set.at(-1)).toBe(Math.floor(grown / 2));
    // A step with no samples (the last one was drained) is no pressure.
    clock.advance(CATCHUP_THROTTLE_STEP_MS);
    expect(set.at(-1)).toBeGreaterThan(Math.floor(grown / 2));
    expect(loop.view()).toMatchObject({ mode: 'adaptive', state: 'increasing', decreases: 1 });
    loop.stop();
    const n = set.length;
    clock.advance(10 * CATCHUP_THROTTLE_STEP_MS);
    expect(set.length).toBe(n);
  });

  it('fixed mode: no steps, the configured rate holds', () => {
    const { clock, loop, set } = world('fixed');
    loop.start();
    clock.advance(10 * CATCHUP_THROTTLE_STEP_MS);
    expect(set).toEqual([]);
    expect(loop.view()).toEqual({ mode: 'fixed', effectiveBytesPerSec: CEILING, ceilingBytesPerSec: CEILING });
  });
});
