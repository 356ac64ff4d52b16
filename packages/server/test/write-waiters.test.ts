// The writers' waiting room (write-waiters.ts): a writer is answered by the entry applied at its
// index (its result, or "not applied" when another term won the index), or indeterminate when its
// deadline passes, a snapshot covers it, its index is reused, or the node stops.
import { describe, expect, it } from 'vitest';
import { IndeterminateError, UnavailableError } from '@quorumkv/protocol';
import { WriteWaiters, type WriteResult } from '../src/write-waiters.js';
import { HostAssertionError } from '../src/host-assert.js';

const far = { deadlineMs: 1e12 };

/** The outcome of a writer's promise once settled, or 'waiting'. */
async function outcome(p: Promise<WriteResult>): Promise<string> {
  return Promise.race([
    p.then((r) => `ok ${r.op} term ${r.term}`, (e: Error) => `${e.constructor.name}`),
    new Promise<string>((r) => setTimeout(() => r('waiting'), 5)),
  ]);
}

describe('WriteWaiters', () => {
  it('answers a writer with the result of its entry and gives its bytes back', async () => {
    const w = new WriteWaiters();
    const a = w.wait({ index: 7, term: 2 }, 100, far);
    const b = w.wait({ index: 8, term: 2 }, 50, far);
    expect([w.size, w.bytes]).toEqual([2, 150]);
    w.settle(7, 2, { op: 'put', revision: 7 });
    expect(await outcome(a)).toBe('ok put term 2');
    expect(await outcome(b)).toBe('waiting');
    expect([w.size, w.bytes]).toEqual([1, 50]);
  });

  it('says "not applied" (unavailable) when an entry of another term won the index', async () => {
    const w = new WriteWaiters();
    const a = w.wait({ index: 7, term: 2 }, 10, far);
    w.settle(7, 3, { op: 'put', revision: 7 });
    expect(await outcome(a)).toBe(UnavailableError.name);
    expect([w.size, w.bytes]).toEqual([0, 0]);
  });

  it('keeps the term a retried session write carries (that of its first application)', async () => {
    const w = new WriteWaiters();
    const a = w.wait({ index: 9, term: 4 }, 10, far);
    w.settle(9, 4, { op: 'put', revision: 5, term: 3 } as WriteResult);
    expect(await outcome(a)).toBe('ok put term 3');
  });

  it('answers indeterminate the writer whose index a later term of this leader reuses', async () => {
    const w = new WriteWaiters();
    const old = w.wait({ index: 7, term: 2 }, 100, far);
    const now = w.wait({ index: 7, term: 5 }, 30, far);
    expect(await outcome(old)).toBe(IndeterminateError.name);
    expect([w.size, w.bytes]).toEqual([1, 30]);
    w.settle(7, 5, { op: 'del', deleted: true, revision: 7 });
    expect(await outcome(now)).toBe('ok del term 5');
  });

  it('expires only the writers whose deadline passed, as indeterminate', async () => {
    const w = new WriteWaiters();
    const soon = w.wait({ index: 1, term: 1 }, 10, { deadlineMs: 100 });
    const later = w.wait({ index: 2, term: 1 }, 10, { deadlineMs: 200 });
    w.expire(150);
    expect(await outcome(soon)).toBe(IndeterminateError.name);
    expect(await outcome(later)).toBe('waiting');
    expect([w.size, w.bytes]).toEqual([1, 10]);
  });

  it('fails indeterminate the writers a snapshot covers, and every writer at shutdown', async () => {
    const w = new WriteWaiters();
    const covered = w.wait({ index: 5, term: 1 }, 10, far);
    const after = w.wait({ index: 6, term: 1 }, 10, far);
    w.failIndeterminate(new IndeterminateError('snapshot'), 5);
    expect(await outcome(covered)).toBe(IndeterminateError.name);
    expect(await outcome(after)).toBe('waiting');
    w.failIndeterminate(new IndeterminateError('shutdown'));
    expect(await outcome(after)).toBe(IndeterminateError.name);
    expect([w.size, w.bytes]).toEqual([0, 0]);
  });

  it('a settle for an index nobody waits on changes nothing', () => {
    const w = new WriteWaiters();
    void w.wait({ index: 3, term: 1 }, 10, far);
    w.settle(4, 1, { op: 'put', revision: 4 });
    expect([w.size, w.bytes]).toEqual([1, 10]);
  });

  it('asserts that a reused index comes from a later term (a programmer error otherwise)', () => {
    const w = new WriteWaiters();
    void w.wait({ index: 7, term: 2 }, 10, far).catch(() => undefined);
    expect(() => w.adopt(7, { term: 2, bytes: 0, deadline: far, resolve: () => undefined, reject: () => undefined })).toThrow(HostAssertionError);
  });
});
