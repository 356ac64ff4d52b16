// The apply pipeline (apply-pipeline.ts): committed entries reach the state machine in index order
// with no gap, conf changes take effect when queued, writers are answered when a batch is computed
// (before it lands), reads only once it landed, and at most N batches wait before the loop does.
import { describe, expect, it } from 'vitest';
import { EntryType, type Entry } from '@quorumkv/raft';
import type { ApplyItem, ApplyResult } from '@quorumkv/storage';
import { ApplyPipeline } from '../src/apply-pipeline.js';
import { HostAssertionError } from '../src/host-assert.js';

/** A state machine whose batches are computed and landed when the test says so. */
function fakeKv(startIndex = 0) {
  let stored = startIndex;
  const batches: Array<{ items: ApplyItem[]; compute(): void; land(): void; fail(e: Error): void }> = [];
  const kv = {
    appliedIndex: () => stored,
    apply(items: ApplyItem[], options?: { onResults?: (r: ApplyResult[]) => void }): Promise<ApplyResult[]> {
      const results = items.map((it) => ({ op: 'put', revision: it.index }) as ApplyResult);
      return new Promise<ApplyResult[]>((resolve, reject) => {
        batches.push({
          items,
          compute: () => options?.onResults?.(results),
          land: () => {
            stored = items[items.length - 1]!.index;
            resolve(results);
          },
          fail: reject,
        });
      });
    },
  };
  return { kv, batches };
}

function entry(index: number, type: EntryType = EntryType.Normal): Entry {
  return { index, term: 1, type, data: new Uint8Array([index]) };
}

function pipeline(startIndex = 0, maxInFlight = 4) {
  const { kv, batches } = fakeKv(startIndex);
  const events: string[] = [];
  const fatals: Error[] = [];
  const p = new ApplyPipeline(
    {
      kv,
      elapsedMs: () => 0,
      confChange: (e) => {
        events.push(`conf ${e.index}`);
        return { kind: 'entry', index: e.index, term: e.term, data: e.data };
      },
      onComputed: (entries) => events.push(`computed ${entries.map((e) => e.index).join(',')}`),
      onWritten: (b) => events.push(`written ${b.appliedIndex} (${b.bytes} bytes)`),
      onFatal: (e) => fatals.push(e),
    },
    maxInFlight,
  );
  return { p, batches, events, fatals };
}

const tick = () => new Promise((r) => setTimeout(r, 0));

describe('ApplyPipeline', () => {
  it('answers writers when a batch is computed and reads only once it landed, in order', async () => {
    const { p, batches, events } = pipeline();
    await p.queue([entry(1), entry(2)]);
    await p.queue([entry(3)]);
    await tick();
    expect(batches).toHaveLength(1); // the second batch starts computing after the first is computed
    batches[0]!.compute();
    await tick();
    expect(batches).toHaveLength(2);
    batches[1]!.compute();
    batches[0]!.land();
    batches[1]!.land();
    await p.appliedAndWritten();
    expect(events).toEqual(['computed 1,2', 'computed 3', 'written 2 (2 bytes)', 'written 3 (1 bytes)']);
    expect(p.queued()).toBe(3);
  });

  it('takes a conf change when it is queued, before earlier batches are computed', async () => {
    const { p, events } = pipeline();
    await p.queue([entry(1)]);
    await p.queue([entry(2, EntryType.ConfChange)]);
    expect(events).toEqual(['conf 2']);
  });

  it('refuses a batch that leaves a gap or repeats an index (programmer error)', async () => {
    const { p } = pipeline(5);
    await expect(p.queue([entry(7)])).rejects.toThrow(HostAssertionError);
    await expect(p.queue([entry(5)])).rejects.toThrow(HostAssertionError);
    await p.queue([entry(6)]);
  });

  it('makes the loop wait once the limit of batches in flight is reached', async () => {
    const { p, batches } = pipeline(0, 2);
    await p.queue([entry(1)]);
    let waited = true;
    const second = p.queue([entry(2)]).then(() => (waited = false));
    await tick();
    expect(waited).toBe(true);
    batches[0]!.compute();
    batches[0]!.land();
    await tick();
    batches[1]!.compute();
    await tick();
    expect(waited).toBe(true); // computed is not enough: the loop waits until written
    batches[1]!.land();
    await second;
    expect(waited).toBe(false);
  });

  it('hands a failed batch to onFatal (its entries are committed: the node must stop)', async () => {
    const { p, batches, fatals } = pipeline();
    await p.queue([entry(1)]);
    await tick();
    batches[0]!.fail(new Error('disk gone'));
    await p.appliedAndWritten().catch(() => undefined);
    await tick();
    expect(fatals.map((e) => e.message)).toContain('disk gone');
  });

  it('stops the node when a batch reports landed but the store is behind it (paired assert)', async () => {
    const { p, batches, fatals } = pipeline();
    await p.queue([entry(1)]);
    await p.queue([entry(2)]);
    await tick();
    batches[0]!.compute();
    await tick();
    batches[1]!.compute();
    batches[1]!.land(); // lands out of order: stored is 2 …
    batches[0]!.land(); // … then 1, before batch 2's landing is read back
    await p.appliedAndWritten().catch(() => undefined);
    await tick();
    expect(fatals.some((e) => e instanceof HostAssertionError)).toBe(true);
  });

  it('restarts after a snapshot install at the snapshot index', async () => {
    const { p, batches } = pipeline();
    await p.queue([entry(1)]);
    await tick();
    batches[0]!.compute();
    batches[0]!.land();
    await p.appliedAndWritten();
    expect(() => p.restartAt(10)).toThrow(HostAssertionError); // the store did not reach 10
  });
});
