// The node's world: what the host and its modules take as arguments instead of reaching for
// globals (DESIGN.md "The node"). Production passes `realClock`; tests and the simulation pass a
// `ManualClock` whose time moves only when they say so. Randomness comes in the same way, as the
// consensus core's `RandomSource` (packages/raft).
import type { RandomSource } from '@quorumkv/raft';

/** An opaque handle of a timer set with {@link Clock.setTimer}. */
export type TimerHandle = { readonly timerId: number };

/**
 * Time and timers. The only way host code reads the time or waits: nothing else calls
 * `Date.now`, `performance.now`, `setTimeout` or `setInterval`.
 *
 * Contract: `nowMs()` never goes backwards between two calls on one clock; a timer's callback runs
 * once, on its own turn (never inside `setTimer`), no earlier than `ms` after it was set, unless
 * it was cleared first. Clearing a timer that already ran, or twice, does nothing.
 */
export interface Clock {
  /** Milliseconds; production uses wall-clock time so client deadlines (also wall-clock) compare. */
  nowMs(): number;
  /** Runs `fn` once after `ms` milliseconds. */
  setTimer(ms: number, fn: () => void): TimerHandle;
  clearTimer(handle: TimerHandle): void;
}

/** Uniform random integers, seeded in tests (the consensus core's interface). */
export type Random = RandomSource;

/**
 * The production clock: `Date.now()` (held monotonic: a wall clock stepped back reads as the last
 * value until it catches up) and `setTimeout`. Its timers do not keep the process alive.
 */
export function createRealClock(): Clock {
  let last = 0;
  const timers = new Map<number, NodeJS.Timeout>();
  let nextId = 1;
  return {
    nowMs() {
      last = Math.max(last, Date.now());
      return last;
    },
    setTimer(ms, fn) {
      const timerId = nextId++;
      const t = setTimeout(() => {
        timers.delete(timerId);
        fn();
      }, Math.max(0, ms));
      t.unref();
      timers.set(timerId, t);
      return { timerId };
    },
    clearTimer(h) {
      const t = timers.get(h.timerId);
      if (t) clearTimeout(t);
      timers.delete(h.timerId);
    },
  };
}

/**
 * A clock whose time moves only through {@link ManualClock.advance}: the unit tests' and the
 * simulation's clock. Timers due at the same instant run in the order they were set.
 */
export class ManualClock implements Clock {
  private now: number;
  private nextId = 1;
  private readonly timers = new Map<number, { dueMs: number; fn: () => void }>();

  constructor(startMs = 0) {
    this.now = startMs;
  }

  nowMs(): number {
    return this.now;
  }

  setTimer(ms: number, fn: () => void): TimerHandle {
    const timerId = this.nextId++;
    this.timers.set(timerId, { dueMs: this.now + Math.max(0, ms), fn });
    return { timerId };
  }

  clearTimer(h: TimerHandle): void {
    this.timers.delete(h.timerId);
  }

  /** Timers set and not yet run or cleared. */
  pendingTimers(): number {
    return this.timers.size;
  }

  /** When the next timer is due, or null when none is set. */
  nextDueMs(): number | null {
    let due: number | null = null;
    for (const t of this.timers.values()) if (due === null || t.dueMs < due) due = t.dueMs;
    return due;
  }

  /**
   * Moves time forward by `ms`, running every timer that falls due on the way, in due order (time
   * stands at each timer's due instant while it runs; timers it sets run too if due in the span).
   */
  advance(ms: number): void {
    if (!(ms >= 0)) throw new RangeError(`advance needs a non-negative number of ms, got ${ms}`);
    const until = this.now + ms;
    for (;;) {
      const next = this.nextDue(until);
      if (!next) break;
      this.timers.delete(next.id);
      this.now = Math.max(this.now, next.dueMs);
      next.fn();
    }
    this.now = until;
  }

  private nextDue(untilMs: number): { id: number; dueMs: number; fn: () => void } | undefined {
    let best: { id: number; dueMs: number; fn: () => void } | undefined;
    for (const [id, t] of this.timers) {
      if (t.dueMs > untilMs) continue;
      if (!best || t.dueMs < best.dueMs) best = { id, ...t }; // Map order = set order breaks ties
    }
    return best;
  }
}
