// One timer for the deadlines of all requests in flight on a connection, instead of a timer per
// request (a setTimeout and a clearTimeout per request were a measurable share of a busy node's
// and client's work). The timer is armed for the earliest deadline; when it fires, every request
// whose deadline has passed expires and the timer re-arms for the earliest deadline left. Used by
// the client's node connections and the server's client connections. Browser-safe.

/** A request with an absolute deadline, as the sweep sees it. */
export interface Expiring {
  /** Absolute deadline in ms on the sweep's clock; Infinity once it no longer waits for one. */
  readonly expiresMs: number;
}

export interface DeadlineSweepOptions<T extends Expiring> {
  /** The requests in flight. Walked only when the timer fires, not per request. */
  live: () => Iterable<T>;
  /** Called once per request whose deadline has passed (after the walk: it may change `live`). */
  expire: (item: T) => void;
  /** The clock of `expiresMs` (ms). */
  now: () => number;
}

export class DeadlineSweep<T extends Expiring> {
  private timer: ReturnType<typeof setTimeout> | undefined;
  private dueMs = 0;
  private readonly fire = (): void => this.sweep();

  constructor(private readonly o: DeadlineSweepOptions<T>) {}

  /**
   * Makes sure a sweep runs no later than `expiresMs`. A request whose deadline is later than
   * the armed one costs nothing; an earlier one re-arms the timer.
   */
  arm(expiresMs: number): void {
    if (this.timer !== undefined) {
      if (expiresMs >= this.dueMs) return;
      clearTimeout(this.timer);
    }
    this.dueMs = expiresMs;
    this.timer = setTimeout(this.fire, Math.max(0, expiresMs - this.o.now()));
  }

  /** Stops the timer (call when nothing is in flight any more). */
  stop(): void {
    if (this.timer === undefined) return;
    clearTimeout(this.timer);
    this.timer = undefined;
  }

  /**
   * Expires every request whose deadline has passed, then re-arms for the earliest deadline left.
   * A request never expires before its deadline; it expires in the first sweep at or after it,
   * i.e. at its deadline plus the timer's own lateness, as with a timer of its own.
   */
  private sweep(): void {
    this.timer = undefined;
    const nowMs = this.o.now();
    let nextMs = Number.POSITIVE_INFINITY;
    const expired: T[] = [];
    for (const item of this.o.live()) {
      if (item.expiresMs <= nowMs) expired.push(item);
      else if (item.expiresMs < nextMs) nextMs = item.expiresMs;
    }
    for (const item of expired) this.o.expire(item);
    if (nextMs !== Number.POSITIVE_INFINITY) this.arm(nextMs);
  }
}
