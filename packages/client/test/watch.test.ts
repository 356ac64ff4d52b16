// The client's Watch over a fake transport: it resumes after the revision it delivered through,
// whatever fails in between; progress moves it; compaction and closing end it.
import { CompactedError, NoLeaderError, UnavailableError, type WatchRequest, type WatchResult } from '@quorumkv/protocol';
import { describe, expect, test } from 'vitest';
import { Watch, type WatchEvent, type WatchTransport } from '../src/watch.js';

type Body = Omit<WatchRequest, 'id' | 'op' | 'timeoutMs'>;
const enc = new TextEncoder();
const ev = (rev: number): WatchResult['events'][number] => ({ type: 'put', key: enc.encode('k'), value: enc.encode(`v${rev}`), modRevision: rev, createRevision: 1, version: rev });

/** A transport that plays `script` in order (an answer or an error per poll) and records each request. */
function scripted(script: Array<WatchResult | Error>): { transport: WatchTransport; requests: Body[] } {
  const requests: Body[] = [];
  let i = 0;
  const transport: WatchTransport = {
    waitMs: 10,
    retryDelayMs: () => 1,
    poll: (body, signal) => {
      requests.push(body);
      const next = script[i++];
      if (next === undefined) return new Promise((_, reject) => signal.addEventListener('abort', () => reject(signal.reason as Error), { once: true }));
      return next instanceof Error ? Promise.reject(next) : Promise.resolve(next);
    },
  };
  return { transport, requests };
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
  test('after any failure it asks again after the revision it delivered through: nothing lost or repeated', async () => {
    const { transport, requests } = scripted([
      { events: [ev(5), ev(6)], revision: 6, compactedRevision: 0 },
      new UnavailableError('node down'),
      new NoLeaderError(),
      { events: [], revision: 9, compactedRevision: 0 }, // progress: nothing for us up to 9
      { events: [ev(10)], revision: 12, compactedRevision: 0 },
    ]);
    const progress: number[] = [];
    const w = new Watch({ key: enc.encode('k') }, { startRevision: 5, onProgress: (r) => progress.push(r) }, transport);
    const got = await take(w, 3);
    expect(got.map((e) => e.modRevision)).toEqual([5, 6, 10]);
    expect(requests.map((r) => r.afterRevision)).toEqual([4, 6, 6, 6, 9]);
    expect(progress).toEqual([9]);
    expect(w.revision).toBe(9); // the answer holding revision 10 was not finished when the loop broke
  });

  test('without a start revision the first request asks from now on', async () => {
    const { transport, requests } = scripted([{ events: [ev(3)], revision: 3, compactedRevision: 0 }]);
    await take(new Watch({ prefix: enc.encode('') }, {}, transport), 1);
    expect(requests[0]).not.toHaveProperty('afterRevision');
  });

  test('a compacted resume point ends the loop with CompactedError', async () => {
    const { transport } = scripted([{ events: [ev(2)], revision: 2, compactedRevision: 0 }, new CompactedError(7)]);
    const w = new Watch({ key: enc.encode('k') }, { startRevision: 2 }, transport);
    await expect(take(w, 10)).rejects.toBeInstanceOf(CompactedError);
  });

  test('close() ends a loop that is waiting', async () => {
    const { transport } = scripted([]);
    const w = new Watch({ key: enc.encode('k') }, {}, transport);
    setTimeout(() => w.close(), 20);
    await expect(take(w, 1)).resolves.toEqual([]);
  });
});
