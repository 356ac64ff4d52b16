// A watch as the client runs it: an async iterator of the changes of a key or a prefix.
//
// Underneath it is a loop of `watch` requests (a long poll: "the changes after revision R"), each
// sent to any node. The iterator remembers the revision it has delivered through and asks for
// the changes after it, so a node dying, a leader change, a partition or a reconnect costs a
// retry, never a gap, a duplicate or a reordering: every node holds the same history, and the
// one that answers reports only changes after that revision. A resume point the cluster has
// compacted away ends the iterator with CompactedError (QKV_COMPACTED), never a silent gap.
import {
  AbortedError,
  ClosedError,
  CompactedError,
  InvalidArgumentError,
  QuorumKvError,
  TooLargeError,
  WATCH_EVENTS_MAX,
  type WatchRequest,
  type WatchResult,
} from '@quorumkv/protocol';

/** One change of a watched key (etcd's event): a delete has no value and createRevision/version 0. */
export interface WatchEvent {
  type: 'put' | 'delete';
  key: Uint8Array;
  /** The new value (puts only). */
  value?: Uint8Array;
  /** The revision of this change. */
  modRevision: number;
  createRevision: number;
  version: number;
  /** The value before this change, when the watch asked for it (`prevValue: true`) and the key existed. */
  prevValue?: Uint8Array;
}

/** What to watch: exactly one of `key` and `prefix`. */
export interface WatchOptions {
  key?: string | Uint8Array;
  /** Every key starting with it (`''` = every key). */
  prefix?: string | Uint8Array;
  /**
   * The first revision to report. Absent: changes from now on (after the revision of the node
   * that answers first). Below the compacted revision: the iterator ends with CompactedError.
   */
  startRevision?: number;
  /** Report each change's previous value too. */
  prevValue?: boolean;
  /**
   * Told the revision the watch has seen everything through, whenever an answer moved it without
   * events (a progress notification: nothing changed up to there).
   */
  onProgress?: (revision: number) => void;
  /** Most events per request (1..1000, default 1000). */
  batchEvents?: number;
}

/** How a Watch reaches the cluster (the client's retrying call, and its back-off). */
export interface WatchTransport {
  /** One watch request, retried over nodes by the client like a read; rejects with the final error. */
  poll(body: Omit<WatchRequest, 'id' | 'op' | 'timeoutMs'>, signal: AbortSignal): Promise<WatchResult>;
  /** The delay before the `failures`-th retry after a failed poll. */
  retryDelayMs(failures: number): number;
  /** How long a poll may wait at the server before it answers with progress. */
  waitMs: number;
}

/**
 * A running watch: `for await (const ev of watch)`, then `close()` (or `break` out of the loop).
 *
 * @example
 * ```ts
 * const w = kv.watch({ prefix: 'config/', prevValue: true });
 * for await (const ev of w) console.log(ev.type, new TextDecoder().decode(ev.key), ev.modRevision);
 * ```
 */
export class Watch implements AsyncIterable<WatchEvent> {
  private readonly abort = new AbortController();
  private after: number | undefined;
  private iterating = false;

  /** @internal Made by KvClient.watch. */
  constructor(
    private readonly filter: { key: Uint8Array } | { prefix: Uint8Array },
    private readonly options: WatchOptions,
    private readonly transport: WatchTransport,
  ) {
    this.after = options.startRevision === undefined ? undefined : options.startRevision - 1;
  }

  /**
   * The revision the watch has delivered everything through (its resume point), once known:
   * every change of the watched keys up to it was delivered or was before the start.
   */
  get revision(): number | undefined {
    return this.after;
  }

  /** Stops the watch: the loop over it ends (a request in flight is abandoned). */
  close(): void {
    this.abort.abort(new AbortedError('the watch was closed'));
  }

  [Symbol.asyncIterator](): AsyncIterator<WatchEvent> {
    if (this.iterating) throw new InvalidArgumentError('a watch can be iterated once');
    this.iterating = true;
    return this.run();
  }

  private async *run(): AsyncGenerator<WatchEvent> {
    try {
      let failures = 0;
      while (!this.abort.signal.aborted) {
        let r: WatchResult;
        try {
          r = await this.transport.poll(this.request(), this.abort.signal);
          failures = 0;
        } catch (e) {
          if (this.abort.signal.aborted) return;
          if (isFinal(e)) throw e;
          await sleep(this.transport.retryDelayMs(++failures), this.abort.signal);
          continue;
        }
        // Invariant: an answer only reports changes after `after`, so what it yields is new, in order.
        for (const ev of r.events) yield ev as WatchEvent;
        const moved = this.after === undefined || r.revision > this.after;
        this.after = Math.max(this.after ?? 0, r.revision);
        if (r.events.length === 0 && moved) this.options.onProgress?.(this.after);
      }
    } finally {
      this.close();
    }
  }

  private request(): Omit<WatchRequest, 'id' | 'op' | 'timeoutMs'> {
    const body: Omit<WatchRequest, 'id' | 'op' | 'timeoutMs'> = {
      ...this.filter,
      limit: this.options.batchEvents ?? WATCH_EVENTS_MAX,
      waitMs: this.transport.waitMs,
    };
    if (this.after !== undefined) body.afterRevision = this.after;
    if (this.options.prevValue) body.prevValue = true;
    return body;
  }
}

/**
 * Errors that end a watch: its resume point was compacted, it was refused as malformed or too
 * large, or the client closed. Everything else (no leader, unavailable, timeout, busy) is retried.
 */
function isFinal(e: unknown): boolean {
  if (!(e instanceof QuorumKvError)) return true;
  return e instanceof CompactedError || e instanceof InvalidArgumentError || e instanceof TooLargeError || e instanceof ClosedError;
}

/** Resolves after `ms` or when `signal` fires. */
function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise<void>((resolve) => {
    const done = (): void => {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener('abort', done, { once: true });
  });
}
