// The client's Watch over a fake stream transport: it resumes after the revision it delivered
// through, whatever ends a stream; it acknowledges a batch only once consumed; a silent or
// over-sending node is given up and the watch resumes elsewhere; compaction and closing end it.
import { CompactedError, NoLeaderError, UnavailableError, type WatchResult } from '@quorumkv/protocol';
import { describe, expect, test } from 'vitest';
import type { WatchStreamSink } from '../src/node-connection.js';
import { WATCH_WINDOW_BATCHES, Watch, type WatchEvent, type WatchStreamBody, type WatchTransport } from '../src/watch.js';

const enc = new TextEncoder();
const ev = (rev: number): WatchResult['events'][number] => ({ type: 'put', key: enc.encode('k'), value: enc.encode(`v${rev}`), modRevision: rev, createRevision: 1, version: rev });
const batch = (...revs: number[]): WatchResult => ({ events: revs.map(ev), revision: revs[revs.length - 1] as number, compactedRevision: 0 });

/** One scripted stream: frames then (optionally) the error that ends it; or an open that fails. */
type Stream = Array<WatchResult | Error> | Error;

/**
 * A transport that plays one scripted stream per open(), sending frames only within the
 * stream's window of unacknowledged batches (as a node does), unless `overSend`. Records each
 * request, the acks, the cancels and the most frames ever unacknowledged.
 */
function scripted(streams: Stream[], o: { overSend?: boolean; silenceMarginMs?: number } = {}) {
  const log = { requests: [] as WatchStreamBody[], acks: 0, cancels: 0, maxUnacked: 0 };
  let i = 0;
  const transport: WatchTransport = {
    progressMs: 10,
    silenceMarginMs: o.silenceMarginMs ?? 5_000,
    retryDelayMs: () => 1,
    open: (body, sink: WatchStreamSink) => {
      log.requests.push(body);
      const script = streams[i++] ?? [];
      if (script instanceof Error) return Promise.reject(script);
      let unacked = 0;
      let next = 0;
      const pump = (): void => {
        while (next < script.length && (o.overSend || unacked < body.window)) {
          const f = script[next++] as WatchResult | Error;
          if (f instanceof Error) return sink.error(f as never);
          unacked++;
          log.maxUnacked = Math.max(log.maxUnacked, unacked);
          sink.frame(f);
        }
      };
      setTimeout(pump, 0);
      return Promise.resolve({
        ack: (n: number) => {
          log.acks += n;
          unacked -= n;
          setTimeout(pump, 0);
        },
        cancel: () => void log.cancels++,
      });
    },
  };
  return { transport, log };
}

async function take(w: Watch, n: number): Promise<WatchEvent[]> {
  const out: WatchEvent[] = [];
  for await (const e of w) {
    out.push(e);
    if (out.length >= n) break;
  }
  return out;
}

describe('Watch (client)', () => {
  test('after any end of a stream it opens a new one after the revision it delivered through: nothing lost or repeated', async () => {
    const { transport, log } = scripted([
      [batch(5, 6), new UnavailableError('node down')],
      new NoLeaderError(),
      [{ events: [], revision: 9, compactedRevision: 0 }, batch(10), new UnavailableError('again')], // progress: nothing for us up to 9
      [batch(11)],
    ]);
    const progress: number[] = [];
    const w = new Watch({ key: enc.encode('k') }, { startRevision: 5, onProgress: (r) => progress.push(r) }, transport);
    const got = await take(w, 4);
    expect(got.map((e) => e.modRevision)).toEqual([5, 6, 10, 11]);
    expect(log.requests.map((r) => r.afterRevision)).toEqual([4, 6, 6, 10]);
    expect(progress).toEqual([9]);
    expect(w.revision).toBe(10); // the frame holding revision 11 was not finished when the loop broke
    expect(log.cancels).toBe(3); // every stream that opened is cancelled when left
  });

  test('without a start revision the first stream asks from now on', async () => {
    const { transport, log } = scripted([[batch(3)]]);
    await take(new Watch({ prefix: enc.encode('') }, {}, transport), 1);
    expect(log.requests[0]).not.toHaveProperty('afterRevision');
    expect(log.requests[0]).toMatchObject({ op: 'watch', window: WATCH_WINDOW_BATCHES, progressMs: 10 });
  });

  test('a batch is acknowledged only once consumed: a consumer that stops holds at most a window of batches', async () => {
    const frames = Array.from({ length: 20 }, (_, i) => batch(i + 1));
    const { transport, log } = scripted([frames]);
    const w = new Watch({ key: enc.encode('k') }, { startRevision: 1 }, transport);
    const it = w[Symbol.asyncIterator]();
    await it.next(); // revision 1 is being consumed; nothing acknowledged yet
    await new Promise((r) => setTimeout(r, 30));
    expect(log.acks).toBe(0);
    expect(log.maxUnacked).toBe(WATCH_WINDOW_BATCHES);
    for (let i = 0; i < 10; i++) await it.next();
    expect(log.acks).toBe(10);
    await it.return?.();
    expect(log.maxUnacked).toBe(WATCH_WINDOW_BATCHES);
  });

  test('a node silent past its progress interval is given up: the watch resumes on another stream', async () => {
    const { transport, log } = scripted([[batch(2)], [batch(3)]], { silenceMarginMs: 20 });
    const got = await take(new Watch({ key: enc.encode('k') }, { startRevision: 2 }, transport), 2);
    expect(got.map((e) => e.modRevision)).toEqual([2, 3]);
    expect(log.requests.map((r) => r.afterRevision)).toEqual([1, 2]);
  });

  test('a node that sends more than the window unacknowledged is dropped, and the watch resumes without a duplicate', async () => {
    const frames = Array.from({ length: WATCH_WINDOW_BATCHES + 2 }, (_, i) => batch(i + 1));
    const W = WATCH_WINDOW_BATCHES;
    const { transport, log } = scripted([frames, [batch(W + 1)]], { overSend: true });
    const got = await take(new Watch({ key: enc.encode('k') }, { startRevision: 1 }, transport), W + 1);
    // The window's batches were valid and are delivered; the extra ones are not kept.
    expect(got.map((e) => e.modRevision)).toEqual(Array.from({ length: W + 1 }, (_, i) => i + 1));
    expect(log.requests.map((r) => r.afterRevision)).toEqual([0, W]);
  });

  test('a compacted resume point ends the loop with CompactedError', async () => {
    const { transport } = scripted([[batch(2), new CompactedError(7)]]);
    const w = new Watch({ key: enc.encode('k') }, { startRevision: 2 }, transport);
    await expect(take(w, 10)).rejects.toBeInstanceOf(CompactedError);
  });

  test('close() ends a loop that is waiting', async () => {
    const { transport, log } = scripted([[]]);
    const w = new Watch({ key: enc.encode('k') }, {}, transport);
    setTimeout(() => w.close(), 20);
    await expect(take(w, 1)).resolves.toEqual([]);
    expect(log.cancels).toBe(1);
  });
});
