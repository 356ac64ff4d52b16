// The composition (KvStateMachineImpl: write-behind layer, record cache, deferred reads, pipelined
// batches, restarts) against the pure rules run over a plain model: a seeded workload goes to both;
// every batch's results, the applied position and the stored state (hashed the same way) must be
// equal. The model is the rules and nothing else, so a difference is the write-behind layer's.
import { describe, expect, test } from 'vitest';
import { xorshift32 } from '@quorumkv/testkit';
import { type Command, MemoryDisk, encodeCommand } from '@quorumkv/storage';
import { levelHarness, memoryHarness } from './harness.js';
import { MemoryBackend } from '../src/backend.js';
import { latin1 } from '../src/codec.js';
import type { KvRecord, SessionHeader } from '../src/kv-layout.js';
import { type ApplyItem, type ApplyResult, type BatchWrites, type KvView, type SessionRules, applyBatch, resultRef } from '../src/kv-rules.js';
import { hashState } from '../src/kv-state-machine.js';
import { type AppliedState, initialApplied } from '../src/meta.js';
import { batchOps } from '../src/write-behind.js';

const SEED = Number(process.env['QKV_SEED'] ?? 11);
const STEPS = 300;
const REPLAY = `QKV_SEED=${SEED} pnpm exec vitest run --project unit packages/storage/test/kv-composition.test.ts`;
const RULES: SessionRules = { sessionTtlMs: 500, maxResultsPerSession: 4, maxSessions: 4, idempotencyTtlMs: 500, maxIdempotencyKeys: 10, maxIdempotencyBytes: 1 << 20 };

/** The state as plain maps, changed only by applying a batch's writes. */
class Model implements KvView {
  readonly location = 'model';
  /** No idempotency keys in these tests (txn-conformance.ts covers them on the real stores). */
  readonly idempotency = { get: () => undefined, count: () => 0, bytes: () => 0, byAge: () => [][Symbol.iterator]() };
  rangeRows(): never {
    throw new Error('no range transactions in these tests');
  }
  applied: AppliedState = initialApplied();
  private readonly kv = new Map<string, KvRecord>();
  private readonly sessions = new Map<string, SessionHeader>();
  private readonly results = new Map<string, Uint8Array>();
  /** The stored form, to hash exactly as the store does. */
  readonly disk = new MemoryBackend(new MemoryDisk());

  record(k: string): KvRecord | null {
    return this.kv.get(k) ?? null;
  }
  session(id: string): SessionHeader | undefined {
    return this.sessions.get(id);
  }
  sessionCount(): number {
    return this.sessions.size;
  }
  sessionsByActivity(): Iterator<[string, SessionHeader]> {
    return this.sessions.entries();
  }
  storedResult(id: string, seq: number): Uint8Array | null {
    return this.results.get(resultRef(id, seq)) ?? null;
  }

  /** Applies a batch (synchronously: the memory backend applies a write before its first await). */
  apply(items: ApplyItem[]): ApplyResult[] {
    const { results, writes } = applyBatch(this, items, RULES);
    this.adopt(writes);
    void this.disk.write(batchOps(writes, 0), { sync: true, label: 'model' });
    return results;
  }

  private adopt(w: BatchWrites): void {
    w.kv.forEach(([, r], k) => (r ? this.kv.set(k, r) : this.kv.delete(k)));
    w.results.forEach((r, ref) => (r.packed ? this.results.set(ref, r.packed) : this.results.delete(ref)));
    w.expiredSessions.forEach((id) => this.sessions.delete(id));
    w.sessions.forEach((h, id) => {
      this.sessions.delete(id);
      this.sessions.set(id, h);
    });
    this.applied = w.applied;
  }
}

describe.each([
  ['LevelDB', levelHarness],
  ['memory twin', memoryHarness],
])('the composition agrees with the pure rules over a plain model (%s)', (_name, harness) => {
  test(`seeded workload, pipelined batches, small record cache, restarts (seed ${SEED})`, async () => {
    const rand = xorshift32(SEED);
    const int = (n: number) => Math.floor(rand() * n);
    const key = () => new Uint8Array([0x61 + int(6)]);
    const h = await harness();
    // A small cache: large records are never cached and the rest rotate out, so batches read (or
    // defer) keys that are not at hand, while others hit the cache.
    const options = { kv: { ...RULES, recordCacheBytes: 1200 } };
    let store = await h.open(options);
    const model = new Model();
    const seqs = new Map<string, number>();
    let timeMs = 0;
    let index = 0;
    const command = (): Command => {
      const base: Partial<Command> = {};
      if (rand() < 0.7) {
        const id = `s${int(6)}`;
        const seq = Math.max(1, (seqs.get(id) ?? 0) + (rand() < 0.25 ? -int(3) : 1)); // retries, old seqs too
        seqs.set(id, Math.max(seq, seqs.get(id) ?? 0));
        base.session = { id, seq, ackedBelow: Math.max(1, seq - int(6)) };
      }
      if (rand() < 0.6) base.timeMs = timeMs += rand() < 0.05 ? 700 : int(60); // now and then past the TTL
      const r = rand();
      // Values past the inline limit make a failed cas's result a record of its own.
      const value = () => Uint8Array.from({ length: rand() < 0.3 ? 120 : int(8) }, () => int(3));
      if (r < 0.55) return { op: 'put', key: key(), value: value(), ...base } as Command;
      if (r < 0.7) return { op: 'del', key: key(), ...base } as Command;
      const cond = rand() < 0.4 ? { modRevision: int(index + 1) } : rand() < 0.5 ? { absent: true as const } : { value: new Uint8Array([int(3)]) };
      return { op: 'cas', key: key(), cond, then: rand() < 0.7 ? { op: 'put', value: value() } : { op: 'del' }, ...base } as Command;
    };
    const check = async () => {
      expect(store.kv.applied(), REPLAY).toEqual(model.applied);
      expect(await store.kv.stateHash(), REPLAY).toEqual(await hashState(model.disk, 0));
      for (let i = 0; i < 6; i++) {
        const k = new Uint8Array([0x61 + i]);
        const r = model.record(latin1(k));
        expect(await store.kv.get(k), REPLAY).toEqual(r ? { key: k, ...r } : undefined);
      }
      for (let i = 0; i < 6; i++) expect(store.kv.hasSession(`s${i}`), REPLAY).toBe(model.session(`s${i}`) !== undefined);
    };
    try {
      let inFlight: Array<Promise<void>> = [];
      for (let step = 0; step < STEPS; step++) {
        // A batch of commands; only puts on some keys at times, so that deferred reads happen.
        const onlyPuts = rand() < 0.3;
        const items: ApplyItem[] = Array.from({ length: 1 + int(10) }, () => {
          let c = command();
          if (onlyPuts && c.op !== 'put') c = { op: 'put', key: c.key, value: new Uint8Array([int(3)]), ...(c.session ? { session: c.session } : {}) };
          return { kind: 'entry', index: ++index, term: 1, data: encodeCommand(c) };
        });
        const expected = model.apply(items);
        // Not awaited: the next batch is computed against this one's pending writes.
        inFlight.push(store.kv.apply(items).then((results) => expect(results, `${REPLAY} (batch ending at ${index})`).toEqual(expected)));
        if (rand() < 0.3) {
          await Promise.all(inFlight);
          inFlight = [];
          await check();
        }
        if (rand() < 0.05) {
          await Promise.all(inFlight);
          inFlight = [];
          await store.close();
          store = await h.open(options);
        }
      }
      await Promise.all(inFlight);
      await check();
    } finally {
      await store.close();
      await h.cleanup();
    }
  });
});
