// A watch as the client runs it: an async iterator of the changes of a key or a prefix.
//
// Underneath it is a watch stream on any node (etcd-style: the node pushes batches and progress
// notifications; the iterator acknowledges each batch once it has been consumed, and the node
// sends at most `window` unacknowledged ones, so a slow consumer holds at most that many here and
// nothing at the node). The iterator remembers the revision it has delivered through; when the
// stream ends (the node died, lost its leader, the connection dropped, or went silent past its
// progress interval) it opens a new one after that revision, on any node: a retry, never a gap,
// a duplicate or a reordering, since every node holds the same history and reports only changes
// after that revision. A resume point the cluster has
// compacted away ends the iterator with CompactedError (QKV_COMPACTED), never a silent gap.
import {
  AbortedError,
  ClosedError,
  CompactedError,
  InvalidArgumentError,
  ProtocolError,
  QuorumKvError,
  TimeoutError,
  TooLargeError,
  WATCH_EVENTS_MAX,
  type WatchRequest,
  type WatchResult,
} from '@quorumkv/protocol';
import type { WatchStreamHandle, WatchStreamSink } from './node-connection.js';

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

/** Unacknowledged batches a watch lets a node send ahead (its stream window). */
export const WATCH_WINDOW_BATCHES = 4;

/** The body of a watch stream request (the connection adds its id). */
export type WatchStreamBody = Omit<WatchRequest, 'id' | 'timeoutMs'>;

/** How a Watch reaches the cluster. */
export interface WatchTransport {
  /** Opens a stream on some node (rejects with a typed error when none can be reached). */
  open(body: WatchStreamBody, sink: WatchStreamSink, signal: AbortSignal): Promise<WatchStreamHandle>;
  /** The delay before the `failures`-th retry after a stream failed with `error` (the client tells its onRetry). */
  retryDelayMs(failures: number, error: QuorumKvError): number;
  /** The node's progress interval: it sends a frame at least this often. */
  progressMs: number;
  /** A stream with no frame for progressMs plus this is given up (the node is gone or cut off). */
  silenceMarginMs: number;
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
        const inbox = new Inbox(WATCH_WINDOW_BATCHES, this.transport.progressMs + this.transport.silenceMarginMs);
        let stream: WatchStreamHandle | undefined;
        try {
          stream = await this.transport.open(this.request(), inbox, this.abort.signal);
          for (;;) {
            const r = await inbox.take(this.abort.signal);
            failures = 0;
            // Invariant: a frame only reports changes after `after`, so what it yields is new, in order.
            for (const ev of r.events) yield ev as WatchEvent;
            const moved = this.after === undefined || r.revision > this.after;
            this.after = Math.max(this.after ?? 0, r.revision);
            if (r.events.length === 0 && moved) this.options.onProgress?.(this.after);
            stream.ack(1);
          }
        } catch (e) {
          if (this.abort.signal.aborted) return;
          if (isFinal(e)) throw e;
          await sleep(this.transport.retryDelayMs(++failures, e as QuorumKvError), this.abort.signal);
        } finally {
          stream?.cancel();
        }
      }
    } finally {
      this.close();
    }
  }

  private request(): WatchStreamBody {
    const body: WatchStreamBody = {
      op: 'watch',
      ...this.filter,
      limit: this.options.batchEvents ?? WATCH_EVENTS_MAX,
      progressMs: this.transport.progressMs,
      window: WATCH_WINDOW_BATCHES,
    };
    if (this.after !== undefined) body.afterRevision = this.after;
    if (this.options.prevValue) body.prevValue = true;
    return body;
  }
}

/**
 * The frames of one stream waiting to be consumed: at most `window` (the node sends no more
 * unacknowledged; one that does broke the protocol), or the error that ended the stream.
 */
class Inbox implements WatchStreamSink {
  private readonly frames: WatchResult[] = [];
  private failure: QuorumKvError | undefined;
  private wake: (() => void) | undefined;

  constructor(
    private readonly window: number,
    /** Longest wait for a frame before the stream is given up as silent. */
    private readonly silenceMs: number,
  ) {}

  frame(result: WatchResult): void {
    if (this.frames.length >= this.window) this.error(new ProtocolError(`the node sent more than ${this.window} unacknowledged watch batches`));
    else this.frames.push(result);
    this.notify();
  }

  error(err: QuorumKvError): void {
    this.failure ??= err;
    this.notify();
  }

  /** The next frame; throws the stream's error, TimeoutError after silenceMs without one, or on abort. */
  async take(signal: AbortSignal): Promise<WatchResult> {
    if (this.frames.length === 0 && this.failure === undefined) {
      let timer: ReturnType<typeof setTimeout> | undefined;
      await new Promise<void>((resolve) => {
        const done = (): void => {
          signal.removeEventListener('abort', done);
          resolve();
        };
        this.wake = done;
        timer = setTimeout(() => this.error(new TimeoutError(`no watch frame for ${this.silenceMs} ms`)), this.silenceMs);
        signal.addEventListener('abort', done, { once: true });
      });
      clearTimeout(timer);
      this.wake = undefined;
    }
    const r = this.frames.shift();
    if (r) return r;
    throw this.failure ?? new AbortedError('the watch was closed');
  }

  private notify(): void {
    this.wake?.();
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
