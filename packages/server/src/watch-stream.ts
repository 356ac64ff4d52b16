// A watch stream: the node pushes a watcher's batches and progress notifications until it is
// cancelled (etcd's Watch stream), for the `/client` WebSocket and for the HTTP event stream.
//
// A stream is a loop of WatchHub.next() calls, one at a time, each starting after the revision the
// previous one reached. It is flow-controlled by credit: at most `window` batches, and at most
// WATCH_STREAM_OUTSTANDING_BYTES_MAX bytes of them beyond the first, are sent and not yet
// acknowledged (ack()). Out of credit, the stream asks the hub for nothing: it holds no events,
// only its cursor, so a slow consumer costs the node a few numbers. When it gets credit again the
// hub answers from its window or, if the cursor fell out of it meanwhile, from history (the
// catch-up path) — the consumer reads at its own pace, and is ended QKV_COMPACTED only if its
// cursor falls below the compacted revision.
import { AbortedError, WATCH_STREAM_OUTSTANDING_BYTES_MAX, type WatchArgs, type WatchHandle, type WatchResult, type WatchService, type WatchSink } from '@quorumkv/protocol';
import { WATCH_DEADLINE_MARGIN_MS, type WatchHub } from './watch-hub.js';

/** Bytes a batch is counted as besides its keys and values (field names, numbers). */
const EVENT_OVERHEAD_BYTES = 48;

/** The node's watch streams (the WatchService of the `/client` endpoint). */
export class WatchStreams implements WatchService {
  constructor(private readonly hub: WatchHub) {}

  /** Starts a stream; throws BusyError over the hub's limits (nothing is sent then). */
  open(args: WatchArgs, owner: object, sink: WatchSink): WatchHandle {
    return openWatchStream(this.hub, args, owner, sink);
  }
}

/** Starts one watch stream on `hub` for `owner` (see the top of the file). Throws BusyError over the limits. */
export function openWatchStream(hub: WatchHub, args: WatchArgs, owner: object, sink: WatchSink): WatchHandle {
  hub.acquire(owner);
  const stream = new WatchStream(hub, args, sink);
  void stream.run().finally(() => hub.release(owner));
  return stream;
}

/** One stream's state: its cursor and its credit. */
class WatchStream implements WatchHandle {
  private readonly abort = new AbortController();
  private cursor: number;
  /** Byte sizes of the batches sent and not yet acknowledged, oldest first (at most `window`). */
  private readonly unacked: number[] = [];
  private unackedBytes = 0;
  private wakeCredit: (() => void) | undefined;

  constructor(
    private readonly hub: WatchHub,
    private readonly args: WatchArgs,
    private readonly sink: WatchSink,
  ) {
    this.cursor = args.afterRevision ?? hub.currentRevision();
  }

  ack(batches: number): void {
    for (let i = 0; i < batches && this.unacked.length > 0; i++) this.unackedBytes -= this.unacked.shift() as number;
    this.wake();
  }

  cancel(): void {
    this.abort.abort(new AbortedError('the watch was cancelled'));
    this.wake();
  }

  /** Sends frames until cancelled, the hub closes, or an error (sent as the end). */
  async run(): Promise<void> {
    const signal = this.abort.signal;
    try {
      // The first frame at once (waitMs 0): the start revision, or a refusal such as QKV_COMPACTED.
      let waitMs = 0;
      while (!signal.aborted && !this.hub.isClosed()) {
        if (!this.hasCredit()) {
          await this.creditOrCancel();
          continue;
        }
        const ctx = { signal, deadlineMs: Date.now() + waitMs + WATCH_DEADLINE_MARGIN_MS };
        const { progressMs: _p, window: _w, ...query } = this.args;
        const r = await this.hub.next({ ...query, afterRevision: this.cursor, waitMs }, ctx);
        if (signal.aborted) return;
        this.send(r);
        waitMs = this.args.progressMs;
      }
    } catch (e) {
      if (!signal.aborted) this.sink.end(e);
    }
  }

  private send(r: WatchResult): void {
    this.cursor = Math.max(this.cursor, r.revision);
    const bytes = batchBytes(r);
    this.unacked.push(bytes);
    this.unackedBytes += bytes;
    this.sink.push(r);
  }

  /** Another batch may go: under the window, and under the byte limit (always one batch). */
  private hasCredit(): boolean {
    if (this.unacked.length === 0) return true;
    return this.unacked.length < this.args.window && this.unackedBytes < WATCH_STREAM_OUTSTANDING_BYTES_MAX;
  }

  private creditOrCancel(): Promise<void> {
    return new Promise<void>((resolve) => {
      this.wakeCredit = resolve;
    });
  }

  private wake(): void {
    const w = this.wakeCredit;
    this.wakeCredit = undefined;
    w?.();
  }
}

/** A batch's bytes as counted against the outstanding limit. */
function batchBytes(r: WatchResult): number {
  let n = EVENT_OVERHEAD_BYTES;
  for (const ev of r.events) n += ev.key.length + (ev.value?.length ?? 0) + (ev.prevValue?.length ?? 0) + EVENT_OVERHEAD_BYTES;
  return n;
}
