// A token bucket in bytes per second, shared by every outgoing snapshot transfer of a node and
// adjustable at run time. Rate 0 means unlimited; a paused bucket grants nothing until resumed
// (`quorumkv snapshot-rate pause`, ops-switches.ts). The burst is a tenth of a second of rate (at
// least one chunk), so a transfer of S bytes takes at least about S/R - 0.1 s.
//
// Time and timers come from the injected Clock (world.ts): under a ManualClock the limit holds in
// simulated time, which is how the unit tests check it.
import type { Clock, TimerHandle } from './world.js';

/** A pending request for tokens; `cancel` withdraws it (its grant then never runs). */
export interface TokenRequest {
  cancel(): void;
}

export class TokenBucket {
  private tokens: number;
  private last: number;
  private waiters: { bytes: number; grant: () => void }[] = [];
  private timer: TimerHandle | undefined;
  private closed = false;
  private paused = false;
  /** True while pump() runs: a grant that asks again only queues (the running loop serves it). */
  private pumping = false;

  constructor(
    private rateBytesPerSec: number,
    private readonly minBurstBytes: number,
    private readonly clock: Clock,
  ) {
    this.tokens = this.burst();
    this.last = clock.nowMs();
  }

  get rate(): number {
    return this.rateBytesPerSec;
  }

  /** Changes the rate; waiters are re-evaluated at once. */
  setRate(bytesPerSec: number): void {
    if (!Number.isFinite(bytesPerSec) || bytesPerSec < 0) throw new RangeError('rate must be a non-negative number of bytes per second');
    this.refill();
    this.rateBytesPerSec = bytesPerSec;
    this.tokens = Math.min(this.tokens, this.burst());
    this.pump();
  }

  get isPaused(): boolean {
    return this.paused;
  }

  /** Pauses (no grant until resumed; requests wait in order) or resumes the bucket. */
  setPaused(paused: boolean): void {
    this.paused = paused;
    this.pump();
  }

  /**
   * Calls `grant` once `bytes` may be sent: at once (synchronously) when tokens are there and
   * nobody waits, else from a clock timer. Requests are served in order.
   */
  take(bytes: number, grant: () => void): TokenRequest {
    const w = { bytes, grant };
    if (this.closed || (this.rateBytesPerSec === 0 && this.waiters.length === 0 && !this.paused)) {
      grant();
      return { cancel: () => undefined };
    }
    this.waiters.push(w);
    if (!this.pumping) this.pump();
    return {
      cancel: () => {
        const i = this.waiters.indexOf(w);
        if (i < 0) return;
        this.waiters.splice(i, 1);
        if (i === 0 && !this.pumping) this.pump(); // the head changed: its wait may be shorter
      },
    };
  }

  /** Grants every waiter and every later request (used at shutdown). */
  close(): void {
    this.closed = true;
    this.clearTimer();
    for (const w of this.waiters.splice(0)) w.grant();
  }

  private burst(): number {
    return Math.max(this.rateBytesPerSec / 10, this.minBurstBytes);
  }

  private refill(): void {
    const t = this.clock.nowMs();
    const elapsedSec = Math.max(0, t - this.last) / 1000;
    this.last = t;
    if (this.rateBytesPerSec > 0) this.tokens = Math.min(this.burst(), this.tokens + elapsedSec * this.rateBytesPerSec);
  }

  private clearTimer(): void {
    if (this.timer) this.clock.clearTimer(this.timer);
    this.timer = undefined;
  }

  private pump(): void {
    this.pumping = true;
    try {
      this.serve();
    } finally {
      this.pumping = false;
    }
  }

  private serve(): void {
    this.clearTimer();
    this.refill();
    if (this.paused) return; // setPaused(false) pumps again
    while (this.waiters.length > 0) {
      const w = this.waiters[0]!;
      if (this.rateBytesPerSec === 0) {
        this.waiters.shift();
        w.grant();
        continue;
      }
      // A request larger than the burst is allowed once the bucket is full (it then goes negative).
      const need = Math.min(w.bytes, this.burst());
      if (this.tokens < need) {
        const waitMs = ((need - this.tokens) / this.rateBytesPerSec) * 1000;
        this.timer = this.clock.setTimer(Math.max(1, Math.ceil(waitMs)), () => {
          this.timer = undefined;
          this.pump();
        });
        return;
      }
      this.tokens -= w.bytes;
      this.waiters.shift();
      w.grant();
    }
  }
}
