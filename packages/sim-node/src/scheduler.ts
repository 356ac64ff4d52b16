// The simulation's only source of time: a seeded, single-threaded event queue. Every timer of
// every node, every network delivery and every client step is an event at a simulated instant;
// events at one instant run in the order they were scheduled. After each event the scheduler lets
// the event loop's microtasks run to completion (the memory store is all promises, no I/O), so an
// event's whole consequence settles before the next event: same seed, same order, same trace.
import { promiseHooks } from 'node:v8';
import type { Clock, TimerHandle } from '@quorumkv/server';

interface SimEvent {
  atMs: number;
  seq: number;
  fn: () => void;
}

/** Something that may die (a crashed node): its pending timers then never run. */
export interface Liveness {
  alive(): boolean;
  /**
   * While paused (an event-loop stall), the simulated instant it resumes; 0 or a past instant
   * when running. Nothing of a paused node runs until then (see SimScheduler.whenRunning).
   */
  resumeAtMs?(): number;
}

/**
 * Promise reaction jobs run so far while a scheduler runs (V8's promise "before" hook counts each
 * job: a `then` callback or an `await` resuming).
 */
let promiseJobs = 0;
/** Consecutive turns in which only the drain's own job ran before the queue counts as empty. */
const QUIET_TURNS = 2;
/**
 * Every this many events the run yields to the real event loop once (setImmediate), so the test
 * runner's own timers and messages are not starved during a long seed. No simulated work is
 * waiting on the real event loop (nothing in the simulated world uses real timers or I/O).
 */
const EVENTS_PER_MACROTASK_YIELD = 2_000;

/**
 * Resolves once every microtask queued so far, and every one those queue, has run — without
 * leaving the microtask queue. Each `await null` lets the jobs queued before it run (the queue is
 * FIFO); a turn in which no job but the drain's own ran means nothing is left, since only a
 * running job can queue another. This replaced a setImmediate per event (a trip through the
 * event loop and an epoll call for each of ~50,000 events a seed), the simulation's largest cost.
 */
async function drainMicrotasks(): Promise<void> {
  for (let quiet = 0; quiet < QUIET_TURNS; ) {
    const before = promiseJobs;
    await null;
    quiet = promiseJobs - before <= 1 ? quiet + 1 : 0;
  }
}

function yieldToEventLoop(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

export class SimScheduler {
  private now = 0;
  private seq = 0;
  private readonly heap: SimEvent[] = [];
  private readonly cancelled = new Set<number>();
  /** Timers their node cleared (a timer held by a pause runs as another event than its id). */
  private readonly clearedTimers = new WeakSet<TimerHandle>();
  /** Events run so far. */
  eventsRun = 0;

  nowMs(): number {
    return this.now;
  }

  /** Schedules `fn` at `delayMs` from now (0: after the events already due now); returns its id. */
  after(delayMs: number, fn: () => void): number {
    const ev = { atMs: this.now + Math.max(0, delayMs), seq: ++this.seq, fn };
    this.push(ev);
    return ev.seq;
  }

  cancel(id: number): void {
    this.cancelled.add(id);
  }

  /**
   * Runs `fn` now, or, while `owner` is paused, at the instant it resumes: what reached a stalled
   * event loop (timers, messages, disk completions, requests) runs after the stall, in the order
   * it arrived.
   */
  whenRunning(owner: Liveness, fn: () => void): void {
    const resumeAt = owner.resumeAtMs?.() ?? 0;
    if (resumeAt > this.now) this.after(resumeAt - this.now, () => this.whenRunning(owner, fn));
    else fn();
  }

  /** A Clock for one node: its timers are dropped once `owner` is dead (crashed), held while it is paused. */
  clockFor(owner: Liveness): Clock {
    return {
      nowMs: () => this.now,
      setTimer: (ms, fn): TimerHandle => {
        // A timer due during a pause fires after it, from another event: clearing it must stop that one too.
        const handle = { timerId: this.after(ms, () => this.whenRunning(owner, () => !this.clearedTimers.has(handle) && owner.alive() && fn())) };
        return handle;
      },
      clearTimer: (h) => {
        this.cancel(h.timerId);
        this.clearedTimers.add(h);
      },
    };
  }

  /**
   * Runs events up to `untilMs` (inclusive), settling microtasks after each, and calls `afterEach`
   * (the checks) after every event. Stops early when `stop()` returns true after an event.
   */
  async runUntil(untilMs: number, afterEach: () => void, stop: () => boolean = () => false): Promise<void> {
    // Settle what ran before this call (a boot started outside an event) on a fresh count.
    const stopCounting = promiseHooks.onBefore(() => void promiseJobs++);
    try {
      await drainMicrotasks();
      while (this.heap.length > 0 && this.heap[0]!.atMs <= untilMs) {
        const ev = this.pop();
        if (this.cancelled.delete(ev.seq)) continue;
        this.now = ev.atMs;
        this.eventsRun++;
        ev.fn();
        await drainMicrotasks();
        afterEach();
        if (stop()) return;
        if (this.eventsRun % EVENTS_PER_MACROTASK_YIELD === 0) await yieldToEventLoop();
      }
      this.now = Math.max(this.now, untilMs);
    } finally {
      stopCounting();
    }
  }

  private push(ev: SimEvent): void {
    const h = this.heap;
    h.push(ev);
    let i = h.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!before(h[i]!, h[p]!)) break;
      [h[i], h[p]] = [h[p]!, h[i]!];
      i = p;
    }
  }

  private pop(): SimEvent {
    const h = this.heap;
    const top = h[0]!;
    const last = h.pop()!;
    if (h.length > 0) {
      h[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < h.length && before(h[l]!, h[m]!)) m = l;
        if (r < h.length && before(h[r]!, h[m]!)) m = r;
        if (m === i) break;
        [h[i], h[m]] = [h[m]!, h[i]!];
        i = m;
      }
    }
    return top;
  }
}

function before(a: SimEvent, b: SimEvent): boolean {
  return a.atMs < b.atMs || (a.atMs === b.atMs && a.seq < b.seq);
}
