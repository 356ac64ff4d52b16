// A token bucket in bytes per second, shared by every outgoing snapshot transfer of a node and
// adjustable at run time. Rate 0 means unlimited. The burst is a tenth of a second of rate (at
// least one chunk), so a transfer of S bytes takes at least about S/R - 0.1 s.

export class TokenBucket {
  private tokens: number;
  private last: number;
  private waiters: { bytes: number; resolve: () => void }[] = [];
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private rateBytesPerSec: number,
    private readonly minBurstBytes: number,
    private readonly now: () => number = () => performance.now(),
  ) {
    this.tokens = this.burst();
    this.last = this.now();
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

  /** Resolves when `bytes` may be sent. Waiters are served in order. */
  take(bytes: number): Promise<void> {
    if (this.rateBytesPerSec === 0 && this.waiters.length === 0) return Promise.resolve();
    return new Promise<void>((resolve) => {
      this.waiters.push({ bytes, resolve });
      this.pump();
    });
  }

  /** Releases every waiter (used at shutdown). */
  close(): void {
    if (this.timer) clearTimeout(this.timer);
    for (const w of this.waiters.splice(0)) w.resolve();
  }

  private burst(): number {
    return Math.max(this.rateBytesPerSec / 10, this.minBurstBytes);
  }

  private refill(): void {
    const t = this.now();
    const elapsedSec = (t - this.last) / 1000;
    this.last = t;
    if (this.rateBytesPerSec > 0) this.tokens = Math.min(this.burst(), this.tokens + elapsedSec * this.rateBytesPerSec);
  }

  private pump(): void {
    if (this.timer) {
      clearTimeout(this.timer);
      this.timer = undefined;
    }
    this.refill();
    while (this.waiters.length > 0) {
      const w = this.waiters[0]!;
      if (this.rateBytesPerSec === 0) {
        this.waiters.shift();
        w.resolve();
        continue;
      }
      // A request larger than the burst is allowed once the bucket is full (it then goes negative).
      const need = Math.min(w.bytes, this.burst());
      if (this.tokens < need) {
        const waitMs = ((need - this.tokens) / this.rateBytesPerSec) * 1000;
        this.timer = setTimeout(() => this.pump(), Math.max(1, Math.ceil(waitMs)));
        return;
      }
      this.tokens -= w.bytes;
      this.waiters.shift();
      w.resolve();
    }
  }
}
