// Admission control for what clients can make a node hold: bytes (request bodies and frames being
// served, range rows being read), connections (per node and per remote address) and new client
// sessions (per connection and per remote address). Each limit is checked BEFORE the work that
// would use the memory: a body is admitted before it is read, a range before it reads a row, a
// session-creating write before it is proposed. A refusal is a typed error with a stable code.
import { isIPv6 } from 'node:net';
import { BusyError, QuotaExceededError } from '@quorumkv/protocol';

/** Most callers that may wait for a {@link ByteBudget} at once; more are refused at once. */
export const BUDGET_WAITERS_MAX = 1024;

/**
 * A node-wide budget of bytes in flight. `tryTake` takes bytes if they fit; `take` waits (FIFO,
 * up to `waitMs`) for them and then fails with QKV_BUSY. Bytes are given back with `give`.
 *
 * @example
 * ```ts
 * const budget = new ByteBudget('range', 64 << 20);
 * await budget.take(rowBytes, 200, 100); // waits up to 200 ms, else BusyError(retryAfterMs 100)
 * try { … } finally { budget.give(rowBytes); }
 * ```
 */
export class ByteBudget {
  private used = 0;
  private readonly waiters: Array<{ bytes: number; grant: () => void }> = [];
  /** Called once when usage next drops below the limit (see whenRoom). */
  private roomWatchers: Array<() => void> = [];

  constructor(
    /** Names the budget in refusals ("range bytes in flight"). */
    readonly name: string,
    readonly maxBytes: number,
  ) {
    if (!Number.isSafeInteger(maxBytes) || maxBytes < 1) throw new RangeError(`${name}: maxBytes must be a positive integer, got ${maxBytes}`);
  }

  /** Bytes taken and not yet given back. */
  get usedBytes(): number {
    return this.used;
  }

  /** Takes `bytes` if they fit now and nobody waits before us; returns whether it did. */
  tryTake(bytes: number): boolean {
    if (this.waiters.length > 0 || this.used + bytes > this.maxBytes) return false;
    this.used += bytes;
    return true;
  }

  /**
   * Takes `bytes` more for a holder that already passed the queue (a running range growing its
   * page): only the limit applies, not the queue, so running work is not cut short by waiters.
   */
  tryTakeMore(bytes: number): boolean {
    if (this.used + bytes > this.maxBytes) return false;
    this.used += bytes;
    return true;
  }

  /**
   * Counts bytes that are already in memory and cannot be refused (they arrived on a socket),
   * even past the limit; the caller stops further ones (see ArrivalMeter).
   */
  force(bytes: number): void {
    this.used += bytes;
  }

  /** Calls `fn` once usage is below the limit: now, or when enough bytes are given back. */
  whenRoom(fn: () => void): void {
    if (this.used < this.maxBytes) fn();
    else this.roomWatchers.push(fn);
  }

  /**
   * Takes `bytes`, waiting up to `waitMs` behind earlier waiters. Rejects with BusyError
   * (`retryAfterMs`) when they do not fit in time, or at once when `bytes` exceeds the whole
   * budget or BUDGET_WAITERS_MAX callers already wait.
   */
  take(bytes: number, waitMs: number, retryAfterMs: number): Promise<void> {
    if (this.tryTake(bytes)) return Promise.resolve();
    const busy = () => new BusyError(retryAfterMs, `${this.name}: the node's budget of ${this.maxBytes} bytes is in use; retry after ${retryAfterMs} ms`);
    if (bytes > this.maxBytes || this.waiters.length >= BUDGET_WAITERS_MAX || waitMs <= 0) return Promise.reject(busy());
    return new Promise<void>((resolve, reject) => {
      const waiter = { bytes, grant: () => (clearTimeout(timer), resolve()) };
      const timer = setTimeout(() => {
        const i = this.waiters.indexOf(waiter);
        if (i >= 0) this.waiters.splice(i, 1);
        reject(busy());
        this.wake(); // a large waiter that gave up may have blocked smaller ones behind it
      }, waitMs);
      timer.unref();
      this.waiters.push(waiter);
    });
  }

  /** Gives back bytes taken earlier and wakes waiters that now fit, in order. */
  give(bytes: number): void {
    this.used -= bytes;
    if (this.used < 0) throw new Error(`${this.name}: gave back more bytes than were taken`);
    this.wake();
    if (this.used < this.maxBytes && this.roomWatchers.length > 0) {
      const watchers = this.roomWatchers;
      this.roomWatchers = [];
      for (const fn of watchers) fn();
    }
  }

  private wake(): void {
    for (let w = this.waiters[0]; w && this.used + w.bytes <= this.maxBytes; w = this.waiters[0]) {
      this.waiters.shift();
      this.used += w.bytes;
      w.grant();
    }
  }
}

/** Most bytes of a client WebSocket frame's header (masked: 2 + 8 length + 4 mask). */
export const WS_FRAME_HEADER_BYTES_MAX = 14;

/**
 * Charges the bytes arriving on one socket to a budget as they arrive, so a frame still being
 * received counts too (`ws` buffers it until it is whole). A complete message's bytes are then
 * claimed by the request it carries, which gives them back when it is answered. Bytes that
 * arrive past the budget are counted anyway (they are in memory already) and the socket is
 * paused until the budget has room: the rest waits in the kernel and the client, not the node.
 * `onStalled` runs if the socket stays paused for `stallMs` (frames half-received on every
 * connection could otherwise hold the budget with none able to finish); the owner closes it.
 */
export class ArrivalMeter {
  private pending = 0;
  /** When bytes started to wait for a message to complete (reset by each completed message). */
  private waitingSinceMs: number | undefined;
  private paused = false;
  private closed = false;
  private stallTimer: ReturnType<typeof setTimeout> | undefined;

  constructor(
    private readonly budget: ByteBudget,
    private readonly socket: { pause(): void; resume(): void },
    private readonly stallMs: number,
    private readonly onStalled: () => void,
    private readonly now: () => number = Date.now,
  ) {}

  /**
   * How long bytes have waited with no message completing, in ms (0 when none wait). A client that
   * sends part of a frame and stops holds budget with it; its owner closes it past a deadline.
   */
  waitingMs(): number {
    return this.pending > 0 && this.waitingSinceMs !== undefined ? this.now() - this.waitingSinceMs : 0;
  }

  /** `bytes` arrived on the socket (call before the WebSocket parser sees them). */
  arrived(bytes: number): void {
    if (this.closed) return;
    if (this.pending === 0) this.waitingSinceMs = this.now();
    this.pending += bytes;
    if (this.budget.tryTakeMore(bytes)) return;
    this.budget.force(bytes);
    if (this.paused) return;
    this.paused = true;
    this.socket.pause();
    this.stallTimer = setTimeout(() => !this.closed && this.paused && this.onStalled(), this.stallMs);
    this.stallTimer.unref();
    this.budget.whenRoom(() => this.unpause());
  }

  /** A data message of `payloadBytes` is complete: returns the bytes its request now holds. */
  claim(payloadBytes: number): number {
    const held = Math.min(this.pending, payloadBytes);
    this.pending -= held;
    this.release(WS_FRAME_HEADER_BYTES_MAX);
    this.waitingSinceMs = this.now(); // progress: what still waits belongs to the next frame
    return held;
  }

  /** A control frame (ping, pong) of `payloadBytes` was consumed. */
  control(payloadBytes: number): void {
    this.release(payloadBytes + WS_FRAME_HEADER_BYTES_MAX);
  }

  /** The socket closed: everything still counted goes back. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    clearTimeout(this.stallTimer);
    this.release(this.pending);
  }

  /** Gives back up to `bytes` of what is counted (a header's exact size is not known: at most). */
  private release(bytes: number): void {
    const n = Math.min(this.pending, bytes);
    this.pending -= n;
    if (n > 0) this.budget.give(n);
  }

  private unpause(): void {
    clearTimeout(this.stallTimer);
    this.paused = false;
    if (!this.closed) this.socket.resume();
  }
}

/**
 * The key remote addresses are counted under: an IPv4 address as it is; an IPv6 address by its
 * /64 prefix (one host usually owns a whole /64, so counting single addresses would not limit it).
 */
export function addressKey(remoteAddress: string | undefined): string {
  const a = (remoteAddress ?? '?').replace(/^::ffff:(?=\d+\.\d+\.\d+\.\d+$)/, '');
  if (!isIPv6(a)) return a;
  const [head = '', tail = ''] = a.split('::');
  const left = head === '' ? [] : head.split(':');
  const right = tail === '' ? [] : tail.split(':');
  const groups = a.includes('::') ? [...left, ...Array<string>(8 - left.length - right.length).fill('0'), ...right] : left;
  return `${groups.slice(0, 4).map((g) => g.replace(/^0+(?=.)/, '')).join(':')}::/64`;
}

/** Limits of a {@link ConnectionLimiter}. */
export interface ConnectionLimits {
  /** Open connections on the node's port (HTTP and WebSocket, clients and peers). */
  maxConnections: number;
  /** Open connections from one remote address (see {@link addressKey}). */
  maxConnectionsPerAddress: number;
}

/** Counts open connections per node and per remote address and admits new ones within limits. */
export class ConnectionLimiter {
  private total = 0;
  private readonly byAddress = new Map<string, number>();

  constructor(readonly limits: ConnectionLimits) {}

  /** Open connections admitted and not yet released. */
  get open(): number {
    return this.total;
  }

  /**
   * Admits one connection from `remoteAddress`: returns a release function (call it exactly once,
   * when the connection closes), or the reason for refusing it.
   */
  admit(remoteAddress: string | undefined): { release: () => void } | { refused: string } {
    const key = addressKey(remoteAddress);
    const mine = this.byAddress.get(key) ?? 0;
    if (this.total >= this.limits.maxConnections) return { refused: `the node has ${this.total} connections open (limit ${this.limits.maxConnections})` };
    if (mine >= this.limits.maxConnectionsPerAddress) {
      return { refused: `${key} has ${mine} connections open (limit ${this.limits.maxConnectionsPerAddress} per address)` };
    }
    this.total++;
    this.byAddress.set(key, mine + 1);
    let released = false;
    return {
      release: () => {
        if (released) return;
        released = true;
        this.total--;
        const n = (this.byAddress.get(key) ?? 1) - 1;
        if (n === 0) this.byAddress.delete(key);
        else this.byAddress.set(key, n);
      },
    };
  }
}

/** Limits of a {@link SessionQuota}. */
export interface SessionQuotaLimits {
  /** New sessions one connection may create over its life. */
  maxSessionsPerConnection: number;
  /** New sessions one remote address may create within `windowMs`. */
  maxSessionsPerAddress: number;
  /** The per-address window; the node's session TTL (a session lives at least that long). */
  windowMs: number;
}

/**
 * Counts client sessions created per remote address within a sliding window, so that one client
 * cannot fill the replicated session table (whose limit is cluster-wide) and lock everyone else
 * out. The per-connection count lives in the connection ({@link SessionQuota.admit}'s `mine`).
 */
export class SessionQuota {
  /** Per address key: creation times (ms), oldest first. */
  private readonly created = new Map<string, number[]>();

  constructor(
    readonly limits: SessionQuotaLimits,
    private readonly now: () => number = Date.now,
  ) {}

  /**
   * Admits a session-creating write from `remoteAddress` on a connection that already created
   * `connectionCount` sessions; throws QuotaExceededError (QKV_QUOTA_EXCEEDED) past either quota.
   */
  admit(remoteAddress: string | undefined, connectionCount: number): void {
    const l = this.limits;
    if (connectionCount >= l.maxSessionsPerConnection) {
      throw new QuotaExceededError(`this connection already created ${connectionCount} sessions (limit ${l.maxSessionsPerConnection} per connection)`);
    }
    const key = addressKey(remoteAddress);
    const times = this.expire(key);
    if (times.length >= l.maxSessionsPerAddress) {
      throw new QuotaExceededError(`${key} created ${times.length} sessions in the last ${l.windowMs} ms (limit ${l.maxSessionsPerAddress} per address)`);
    }
    times.push(this.now());
    this.created.set(key, times);
  }

  /** Forgets creations older than the window everywhere (call periodically: bounds the map). */
  sweep(): void {
    for (const key of [...this.created.keys()]) if (this.expire(key).length === 0) this.created.delete(key);
  }

  private expire(key: string): number[] {
    const times = this.created.get(key) ?? [];
    const cutoff = this.now() - this.limits.windowMs;
    let drop = 0;
    while (drop < times.length && (times[drop] as number) <= cutoff) drop++;
    if (drop > 0) times.splice(0, drop);
    return times;
  }
}
