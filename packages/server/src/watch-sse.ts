// GET /v1/watch?key=K | prefix=P [&start_revision=N] [&prev_value=true] [&encoding=base64]:
// a watch as Server-Sent Events, for a browser's EventSource and for `curl -N`.
//
// The stream is the same push stream as a `/client` watch (watch-stream.ts) with a window of one
// batch, acknowledged once the socket took it: a slow reader is read for at its own pace and holds
// no queue here. Each event's `id:` is the revision the stream has delivered through
// (set on the last event of a revision, and on progress events), so an EventSource that reconnects
// sends it as `Last-Event-ID` and the stream resumes right after it: no gap, no duplicate.
import type { IncomingMessage, ServerResponse } from 'node:http';
import { ClosedError, InvalidArgumentError, QuorumKvError, WATCH_EVENTS_MAX, type WatchArgs, type WatchResult, type WireWatchEvent } from '@quorumkv/protocol';
import type { WatchHub } from './watch-hub.js';
import { openWatchStream } from './watch-stream.js';

/** How long a stream's poll waits before it sends a progress event (keeps proxies from idling it out). */
export const SSE_PROGRESS_INTERVAL_MS = 5_000;

/** A parsed /v1/watch request. */
interface StreamPlan {
  args: WatchArgs;
  base64: boolean;
}

/**
 * Serves one event stream until the client goes away or the hub closes. Errors before the stream
 * starts (bad arguments, QKV_COMPACTED, QKV_NO_LEADER, QKV_BUSY) are thrown, for the caller to
 * answer as JSON; errors after it started end it with an `error` event.
 */
export async function serveWatchStream(req: IncomingMessage, res: ServerResponse, url: URL, hub: WatchHub, maxKeyBytes: number): Promise<void> {
  const plan = parseWatchUrl(url, req.headers['last-event-id'], hub, maxKeyBytes);
  const frames = new FrameQueue();
  const handle = openWatchStream(hub, plan.args, req, frames);
  const gone = new AbortController();
  const leave = (): void => {
    gone.abort();
    handle.cancel();
    frames.wake();
  };
  req.on('close', leave);
  res.on('close', leave);
  try {
    // The first frame before any header: a refusal (QKV_COMPACTED, QKV_NO_LEADER) still gets its HTTP status.
    let frame = await frames.next();
    if (frame instanceof Error || frame === undefined) throw frame ?? new ClosedError('the watch ended before its first frame');
    res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache', connection: 'keep-alive', 'x-accel-buffering': 'no' });
    res.flushHeaders();
    // The stream opens with a progress event at its start (an id to resume from, even before any event).
    let after = (plan.args.afterRevision ?? 0) - 1;
    // Ends when the client leaves, the hub closes or the stream ends with an error.
    while (frame !== undefined && !gone.signal.aborted) {
      if (frame instanceof Error) {
        res.write(errorEvent(frame));
        break;
      }
      const text = answerText(frame, after, plan.base64);
      after = frame.revision;
      if (text !== '' && !res.write(text)) await drained(res, gone.signal);
      handle.ack(1);
      frame = hub.isClosed() ? undefined : await frames.next();
    }
  } finally {
    handle.cancel();
  }
  res.end();
}

/** The sink of an SSE stream: holds at most one frame (the stream's window is 1). */
class FrameQueue {
  private frame: WatchResult | Error | undefined;
  private waiter: (() => void) | undefined;
  private ended = false;

  push(result: WatchResult): void {
    this.frame = result;
    this.wake();
  }

  end(err: unknown): void {
    this.frame = err instanceof Error ? err : new Error(String(err));
    this.wake();
  }

  wake(): void {
    const w = this.waiter;
    this.waiter = undefined;
    w?.();
  }

  /** The next frame; undefined once the stream was cancelled and nothing is left. */
  async next(): Promise<WatchResult | Error | undefined> {
    while (this.frame === undefined && !this.ended) {
      await new Promise<void>((resolve) => (this.waiter = resolve));
      if (this.frame === undefined) this.ended = true;
    }
    const f = this.frame;
    this.frame = undefined;
    return f;
  }
}

/** Reads key/prefix, the start revision (or Last-Event-ID) and the options; throws InvalidArgumentError. */
function parseWatchUrl(url: URL, lastEventId: string | string[] | undefined, hub: WatchHub, maxKeyBytes: number): StreamPlan {
  const q = url.searchParams;
  const base64 = q.get('encoding') === 'base64';
  const bytesOf = (name: string): Uint8Array | undefined => {
    const v = q.get(name);
    if (v === null) return undefined;
    const b = base64 ? new Uint8Array(Buffer.from(v, 'base64')) : new TextEncoder().encode(v);
    if (b.length > maxKeyBytes) throw new InvalidArgumentError(`${name} is longer than ${maxKeyBytes} bytes`);
    return b;
  };
  const key = bytesOf('key');
  const prefix = bytesOf('prefix');
  if ((key === undefined) === (prefix === undefined)) throw new InvalidArgumentError('watch needs exactly one of ?key= and ?prefix=');
  if (key !== undefined && key.length === 0) throw new InvalidArgumentError('key must not be empty');
  const resume = typeof lastEventId === 'string' && lastEventId !== '' ? revisionText(lastEventId, 'Last-Event-ID') : undefined;
  const start = q.has('start_revision') ? revisionText(q.get('start_revision') as string, 'start_revision') : undefined;
  if (start === 0) throw new InvalidArgumentError('start_revision counts from 1');
  // Last-Event-ID (a reconnect) wins over start_revision; neither: from the node's current revision.
  const afterRevision = resume ?? (start !== undefined ? start - 1 : hub.currentRevision());
  const args: WatchArgs = {
    ...(key ? { key } : { prefix: prefix as Uint8Array }),
    afterRevision,
    limit: WATCH_EVENTS_MAX,
    progressMs: SSE_PROGRESS_INTERVAL_MS,
    window: 1,
  };
  if (q.get('prev_value') === 'true') args.prevValue = true;
  return { args, base64 };
}

function revisionText(v: string, name: string): number {
  if (!/^\d{1,15}$/.test(v)) throw new InvalidArgumentError(`${name} must be a non-negative integer`);
  return Number(v);
}

/** The SSE text of one answer: its events (id on each revision's last), or a progress event when it moved without events. */
function answerText(answer: WatchResult, after: number, base64: boolean): string {
  const { events } = answer;
  if (events.length === 0) return answer.revision > after ? `event: progress\nid: ${answer.revision}\ndata: {"revision":${answer.revision}}\n\n` : '';
  let out = '';
  for (let i = 0; i < events.length; i++) {
    const ev = events[i] as WireWatchEvent;
    const lastOfRevision = i === events.length - 1 || (events[i + 1] as WireWatchEvent).modRevision !== ev.modRevision;
    out += `event: ${ev.type}\n${lastOfRevision ? `id: ${ev.modRevision}\n` : ''}data: ${JSON.stringify(eventJson(ev, base64))}\n\n`;
  }
  return out;
}

/** An event as JSON: keys and values as UTF-8 text, or base64 with ?encoding=base64. */
export function eventJson(ev: WireWatchEvent, base64: boolean): Record<string, unknown> {
  const text = (b: Uint8Array) => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString(base64 ? 'base64' : 'utf8');
  return {
    type: ev.type,
    key: text(ev.key),
    ...(ev.value ? { value: text(ev.value) } : {}),
    modRevision: ev.modRevision,
    createRevision: ev.createRevision,
    version: ev.version,
    ...(ev.prevValue ? { prevValue: text(ev.prevValue) } : {}),
  };
}

function errorEvent(e: unknown): string {
  const err = e instanceof QuorumKvError ? e : undefined;
  const body: Record<string, unknown> = { code: err?.code ?? 'QKV_INTERNAL', message: err?.message ?? 'internal error' };
  const compacted = (e as { compactedRevision?: unknown }).compactedRevision;
  if (typeof compacted === 'number') body.compactedRevision = compacted;
  return `event: error\ndata: ${JSON.stringify(body)}\n\n`;
}

/** Resolves when the response can take more, or when `signal` fires. */
function drained(res: ServerResponse, signal: AbortSignal): Promise<void> {
  return new Promise<void>((resolve) => {
    const done = (): void => {
      res.off('drain', done);
      signal.removeEventListener('abort', done);
      resolve();
    };
    res.once('drain', done);
    signal.addEventListener('abort', done, { once: true });
  });
}
