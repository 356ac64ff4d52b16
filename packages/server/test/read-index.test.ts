// The ReadIndex batcher (read-index.ts): one request per turn, a read served only once the state
// machine reached its read index, lost requests submitted again, deadlines and leader changes.
import { describe, expect, it } from 'vitest';
import { NotLeaderError as RaftNotLeaderError } from '@quorumkv/raft';
import { ReadIndexBatcher } from '../src/read-index.js';

const far = { deadlineMs: 1e12 };

/** A stand-in for the core's readIndex: records each request context. */
function core() {
  const ctxs: Uint8Array[] = [];
  return { ctxs, readIndex: (ctx: Uint8Array) => void ctxs.push(ctx) };
}

async function settled(p: Promise<void>): Promise<string> {
  return Promise.race([p.then(() => 'served', (e: Error) => `failed: ${e.name}`), new Promise<string>((r) => setTimeout(() => r('waiting'), 5))]);
}

describe('ReadIndexBatcher', () => {
  it('sends one request for every read of a turn and serves them once applied reaches the read index', async () => {
    const b = new ReadIndexBatcher({ resubmitAfterMs: 250 });
    const c = core();
    const reads = [b.add(far), b.add(far), b.add(far)];
    b.submit(c.readIndex, 0);
    expect(c.ctxs).toHaveLength(1);
    b.onReadStates([{ index: 10, requestCtx: c.ctxs[0]! }], 9);
    expect(await settled(reads[0]!)).toBe('waiting'); // applied 9 < read index 10
    b.servedUpTo(10);
    expect(await Promise.all(reads.map(settled))).toEqual(['served', 'served', 'served']);
    expect(b.pending).toBe(0);
  });

  it('the planted read-before-applied serves before the apply (the simulation must catch it)', async () => {
    const b = new ReadIndexBatcher({ resubmitAfterMs: 250, serveBeforeApplied: true });
    const c = core();
    const read = b.add(far);
    b.submit(c.readIndex, 0);
    b.onReadStates([{ index: 10, requestCtx: c.ctxs[0]! }], 3);
    expect(await settled(read)).toBe('served');
  });

  it('submits an unanswered batch again under a new context and ignores the late answer to the old one', async () => {
    const b = new ReadIndexBatcher({ resubmitAfterMs: 250 });
    const c = core();
    const read = b.add(far);
    b.submit(c.readIndex, 0);
    b.expire(249);
    b.submit(c.readIndex, 249);
    expect(c.ctxs).toHaveLength(1);
    b.expire(250);
    b.submit(c.readIndex, 250);
    expect(c.ctxs).toHaveLength(2);
    b.onReadStates([{ index: 5, requestCtx: c.ctxs[0]! }], 100); // the old context: ignored
    expect(await settled(read)).toBe('waiting');
    b.onReadStates([{ index: 5, requestCtx: c.ctxs[1]! }], 100);
    expect(await settled(read)).toBe('served');
  });

  it('fails reads past their deadline, on a leader change, when not leader, and at stop', async () => {
    const b = new ReadIndexBatcher({ resubmitAfterMs: 250 });
    const c = core();
    const late = b.add({ deadlineMs: 100 });
    b.expire(100);
    expect(await settled(late)).toBe('failed: TimeoutError');
    const changed = b.add(far);
    b.submit(c.readIndex, 0);
    b.failSubmitted(new Error('leader changed'));
    expect(await settled(changed)).toBe('failed: Error');
    const notLeader = b.add(far);
    b.submit(() => {
      throw new RaftNotLeaderError(null);
    }, 0);
    expect(await settled(notLeader)).toBe('failed: NoLeaderError');
    const stopping = b.add(far);
    b.failAll(new Error('stopping'));
    expect(await settled(stopping)).toBe('failed: Error');
    expect(b.pending).toBe(0);
  });
});
