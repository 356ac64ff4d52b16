// The fuzz harness itself: a broken invariant is reported with its seed, the shrunk input and a
// replay command, and replaying that path reproduces it; and the crashes the fuzzers found stay
// fixed (storage's are in the storage conformance suite).
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { FuzzViolation, SURFACES, runFuzz, type Surface } from '../src/index.js';

/** A target that breaks on any input holding a 7: the runner must find, shrink and report it. */
const planted: Surface<number[]> = {
  name: 'planted',
  description: 'a planted bug',
  arbitrary: () => fc.array(fc.integer({ min: 0, max: 9 }), { maxLength: 8 }),
  open: async () => ({
    feed: (xs) => {
      if (xs.includes(7)) throw new FuzzViolation('a 7');
      return 'accepted';
    },
    control: () => undefined,
    close: async () => undefined,
  }),
  show: (xs) => JSON.stringify(xs),
};

describe('the fuzz runner', () => {
  it('reports a broken invariant with its seed, shrunk input and replay command', async () => {
    const r = await runFuzz(planted, { count: 1000, seed: 42 });
    expect(r.failure).toContain('seed 42');
    expect(r.failure).toContain('input: [7]');
    expect(r.failure).toContain('FuzzViolation: a 7');
    const replay = /replay: pnpm fuzz --surface planted --seed 42 --count 1000 --path (\S+)/.exec(r.failure ?? '');
    expect(replay).not.toBeNull();
    const again = await runFuzz(planted, { count: 1000, seed: 42, path: replay![1]! });
    expect(again.failure).toContain('input: [7]');
  });

  it('passes a target that keeps its invariants, with both outcomes counted', async () => {
    const r = await runFuzz(SURFACES['client-frame']!, { count: 600, seed: 7 });
    expect(r.failure).toBeUndefined();
    expect(r.accepted + r.refused).toBe(600);
  });
});

describe('bugs the fuzzers found stay fixed', () => {
  it('http: a request target the URL parser refuses ("//") is a 400, not QKV_INTERNAL', async () => {
    const target = await SURFACES.http!.open();
    try {
      for (const line of ['GET // HTTP/1.1', 'GET //x:y/ HTTP/1.1', 'PUT //:99999/v1/kv/a HTTP/1.1']) {
        const req = new TextEncoder().encode(`${line}\r\nHost: t\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
        await expect(Promise.resolve(target.feed(req as never))).resolves.toBe('refused');
      }
      await target.control();
    } finally {
      await target.close();
    }
  });
});
