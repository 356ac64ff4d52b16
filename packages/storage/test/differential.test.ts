// Differential test: one seeded random workload run against the LevelDB store and the memory
// twin side by side; every answer and every state hash must be equal, restarts included.
import { describe, expect, test } from 'vitest';
import { type ApplyItem, type Command, type LogEntry, type NodeStore, encodeCommand } from '@quorumkv/storage';
import { type Harness, levelHarness, memoryHarness } from './harness.js';
import { xorshift32 } from '@quorumkv/testkit';

const SEED = Number(process.env['QKV_DIFF_SEED'] ?? 7);
const STEPS = 150;
const REPLAY = `QKV_DIFF_SEED=${SEED} pnpm vitest run packages/storage/test/differential.test.ts`;

describe('LevelDB store and memory twin agree', () => {
  test(`seeded workload (seed ${SEED})`, async () => {
    const rand = xorshift32(SEED);
    const int = (n: number) => Math.floor(rand() * n);
    const key = () => new Uint8Array([0x61 + int(4), ...(rand() < 0.5 ? [0x2f, 0x30 + int(4)] : []), ...(rand() < 0.1 ? [0xff] : [])]);
    const harnesses: Harness[] = [await levelHarness(), await memoryHarness()];
    const options = { kv: { sessionTtlMs: 500, maxResultsPerSession: 4, maxSessions: 6 } };
    let stores: NodeStore[] = await Promise.all(harnesses.map((h) => h.open(options)));
    let term = 1;
    let timeMs = 0;
    const seqs = new Map<string, number>();
    const both = async <T>(op: (s: NodeStore) => Promise<T>): Promise<T> => {
      const [a, b] = await Promise.all(stores.map(op));
      expect(b, REPLAY).toEqual(a);
      return a as T;
    };
    const command = (): Command | Uint8Array => {
      if (rand() < 0.05) return Uint8Array.from({ length: int(10) }, () => int(256));
      const base: Partial<Command> = {};
      if (rand() < 0.6) {
        const id = `s${int(8)}`;
        const seq = (seqs.get(id) ?? 0) + (rand() < 0.2 ? 0 : 1);
        seqs.set(id, Math.max(seq, 1));
        base.session = { id, seq: Math.max(seq, 1), ackedBelow: Math.max(1, seq - int(6)) };
      }
      if (rand() < 0.5) base.timeMs = (timeMs += int(200));
      const r = rand();
      if (r < 0.5) return { op: 'put', key: key(), value: Uint8Array.from({ length: int(20) }, () => int(256)), ...base } as Command;
      if (r < 0.7) return { op: 'del', key: key(), ...base } as Command;
      const cond = rand() < 0.4 ? { modRevision: int(30) } : rand() < 0.5 ? { absent: true as const } : { value: new Uint8Array([int(3)]) };
      return { op: 'cas', key: key(), cond, then: rand() < 0.7 ? { op: 'put', value: new Uint8Array([int(3)]) } : { op: 'del' }, ...base } as Command;
    };

    try {
      for (let step = 0; step < STEPS; step++) {
        const r = rand();
        const s0 = stores[0]!;
        if (r < 0.35) {
          const applied = s0.kv.appliedIndex();
          const items: ApplyItem[] = Array.from({ length: 1 + int(8) }, (_, i) => {
            const c = command();
            return { kind: 'entry', index: applied + 1 + i, term, data: c instanceof Uint8Array ? c : encodeCommand(c) };
          });
          await both((s) => s.kv.apply(items));
        } else if (r < 0.6) {
          if (rand() < 0.2) term++;
          const first = Math.max(s0.log.firstIndex(), s0.log.lastIndex() + 1 - int(4));
          const entries: LogEntry[] = Array.from({ length: 1 + int(5) }, (_, i) => ({ index: first + i, term, type: 0, data: new Uint8Array([int(256)]) }));
          const sync = rand() < 0.5;
          await both((s) => s.log.append({ hardState: { term, vote: 'n1', commit: 0 }, entries, sync }));
        } else if (r < 0.65 && s0.log.lastIndex() >= s0.log.firstIndex()) {
          const index = s0.log.firstIndex() + int(s0.log.lastIndex() - s0.log.firstIndex() + 1);
          await both((s) => s.log.compact(index));
        } else if (r < 0.85) {
          const limit = 1 + int(10);
          const req = rand() < 0.5 ? { prefix: key().subarray(0, 1 + int(2)) } : { start: key(), ...(rand() < 0.5 ? { end: key() } : {}) };
          await both((s) => s.kv.range(req, limit));
          const k = key();
          await both(async (s) => s.kv.get(k));
        } else if (r < 0.93) {
          stores = await Promise.all(stores.map(async (s, i) => (await s.close(), harnesses[i]!.open(options))));
        }
        await both(async (s) => [s.log.firstIndex(), s.log.lastIndex(), s.kv.applied(), await s.kv.stateHash()]);
      }
      await both((s) => s.log.load());
    } finally {
      for (const s of stores) await s.close();
      for (const h of harnesses) await h.cleanup();
    }
  });
});
