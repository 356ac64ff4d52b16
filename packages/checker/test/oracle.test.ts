// The WGL checker against a brute-force oracle on seeded random histories. Every failure names
// its seed and the command that replays it; CHECKER_SEEDS=N runs N seeds from CHECKER_SEED
// (default 1000) instead of the usual 300, to hunt further.
import { describe, expect, it } from 'vitest';
import type { OpPair } from '../src/index.js';
import {
  checkLinearizable,
  createRng,
  generateRegisterHistory,
  mutateReadToOtherValue,
  mutateReadToUnwritten,
  outcomeOf,
  pairOps,
  parseHistory,
  serializeHistory,
} from '../src/index.js';

/** Seeds of this run: CHECKER_SEED (default 1000) and the CHECKER_SEEDS (default 300) after it. */
const SEED_BASE = Number(process.env.CHECKER_SEED ?? 1000);
const SEED_COUNT = Number(process.env.CHECKER_SEEDS ?? (process.env.CHECKER_SEED === undefined ? 300 : 1));
const seeds = Array.from({ length: SEED_COUNT }, (_, i) => SEED_BASE + i);
const replay = (seed: number) => `seed ${seed} (replay: CHECKER_SEED=${seed} pnpm exec vitest run --project unit packages/checker/test/oracle.test.ts)`;
console.log(`checker oracle seeds ${SEED_BASE}..${SEED_BASE + SEED_COUNT - 1}`);

/**
 * Brute force straight from the definition: some order of the ops that respects real time
 * (an op may go first only if no other op returned before it was invoked), in which every
 * `ok` op appears and each `info` write/cas appears or not, is legal for the register. `fail`
 * ops and `info` reads are left out. Exponential: small histories only. It shares no code with
 * the checker (no pruning of unobserved info writes, no memo, no interning).
 */
function bruteForce(pairs: readonly OpPair[]): boolean {
  const byKey = new Map<string, OpPair[]>();
  for (const p of pairs) {
    if (outcomeOf(p) === 'fail') continue;
    if (p.invoke.f === 'read' && outcomeOf(p) === 'info') continue;
    const k = (p.invoke.value as unknown[])[0] as string;
    byKey.set(k, [...(byKey.get(k) ?? []), p]);
  }
  return [...byKey.values()].every((ps) => search(ps, new Set(), null));
}

function search(ps: readonly OpPair[], done: Set<number>, state: unknown): boolean {
  const remaining = ps.filter((_, i) => !done.has(i));
  if (remaining.every((p) => outcomeOf(p) === 'info')) return true;
  const ret = (p: OpPair) => (outcomeOf(p) === 'info' ? Infinity : p.complete!.time);
  for (let i = 0; i < ps.length; i++) {
    if (done.has(i)) continue;
    const p = ps[i]!;
    if (remaining.some((q) => ret(q) < p.invoke.time)) continue;
    const next = applyOp(p, state);
    if (next === NOT_NOW) continue;
    done.add(i);
    if (search(ps, done, next)) return true;
    done.delete(i);
  }
  return false;
}

const NOT_NOW = Symbol('not now');

function applyOp(p: OpPair, state: unknown): unknown {
  const v = (p.invoke.value as unknown[])[1];
  const same = (a: unknown, b: unknown) => JSON.stringify(a ?? null) === JSON.stringify(b ?? null);
  switch (p.invoke.f) {
    case 'read':
      return same((p.complete!.value as unknown[])[1], state) ? state : NOT_NOW;
    case 'write':
      return v;
    case 'delete':
      return null;
    default: {
      const [from, to] = v as unknown[];
      return same(from, state) ? to : NOT_NOW;
    }
  }
}

describe('linearizability checker: seeded random histories', () => {
  it('accepts every history generated from the sequential model', () => {
    for (const seed of seeds.slice(0, 150)) {
      const ops = generateRegisterHistory({ seed, processes: 5, ops: 120, keys: 3, deleteRate: 0.1 });
      // Round-trip through the file format on the way, so the parser is exercised too.
      const r = checkLinearizable(pairOps(parseHistory(serializeHistory(ops))));
      expect(r.valid, replay(seed)).toBe(true);
    }
  });

  it('rejects every history with a read of a never-written value', () => {
    for (const seed of seeds.slice(0, 150)) {
      const ops = mutateReadToUnwritten(generateRegisterHistory({ seed, processes: 5, ops: 120, keys: 3 }), createRng(seed));
      if (ops === undefined) continue;
      expect(checkLinearizable(pairOps(ops)).valid, replay(seed)).toBe(false);
    }
  });

  it('agrees with a brute-force oracle on small valid and mutated histories (info ops that did and did not take effect, deletes)', () => {
    let invalidSeen = 0;
    let validSeen = 0;
    for (const seed of seeds) {
      // Half the seeds with many info ops, to exercise dropping unobserved info writes.
      const base = generateRegisterHistory({ seed, processes: 3, ops: 8, keys: 1, infoRate: seed % 2 === 0 ? 0.25 : 0.5, deleteRate: 0.15 });
      for (const ops of [base, mutateReadToOtherValue(base, createRng(seed + 1))]) {
        if (ops === undefined) continue;
        const pairs = pairOps(ops);
        const expected = bruteForce(pairs);
        if (expected) validSeen++;
        else invalidSeen++;
        expect(checkLinearizable(pairs).valid, `${replay(seed)}\n${serializeHistory(ops)}`).toBe(expected);
      }
    }
    // Both verdicts must be well represented, or the comparison proves little.
    if (SEED_COUNT >= 300) {
      expect(invalidSeen).toBeGreaterThan(10);
      expect(validSeen).toBeGreaterThan(100);
    }
  });
});
