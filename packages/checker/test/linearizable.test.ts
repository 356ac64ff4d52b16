import { describe, expect, it } from 'vitest';
import { checkLinearizable } from '../src/linearizable.js';
import { generateRegisterHistory, mutateReadToOtherValue, mutateReadToUnwritten } from '../src/generate.js';
import type { Op, OpPair } from '../src/history.js';
import { outcomeOf, pairOps, parseHistory, serializeHistory } from '../src/history.js';
import { createRng } from '../src/random.js';
import { hist } from './helpers.js';

const check = (ops: Op[]) => checkLinearizable(pairOps(ops));

describe('linearizability checker: hand-made histories', () => {
  it('accepts a sequential history', () => {
    const r = check(hist([
      [0, 'invoke', 'write', ['x', 1]], [0, 'ok', 'write', ['x', 1]],
      [1, 'invoke', 'read', ['x', null]], [1, 'ok', 'read', ['x', 1]],
      [0, 'invoke', 'cas', ['x', [1, 2]]], [0, 'ok', 'cas', ['x', [1, 2]]],
      [1, 'invoke', 'read', ['x', null]], [1, 'ok', 'read', ['x', 2]],
    ]));
    expect(r.valid).toBe(true);
  });

  it('flags a stale read and reports the key, the blocked op and the longest prefix', () => {
    const r = check(hist([
      [0, 'invoke', 'write', ['x', 1]], [0, 'ok', 'write', ['x', 1]],
      [0, 'invoke', 'write', ['x', 2]], [0, 'ok', 'write', ['x', 2]],
      [1, 'invoke', 'read', ['x', null]], [1, 'ok', 'read', ['x', 1]],
    ]));
    expect(r.valid).toBe(false);
    const failure = r.evidence.failures[0]!;
    expect(failure.key).toBe('x');
    expect(failure.longestPrefix.map((o) => o.value)).toEqual([1, 2]);
    expect(failure.stateAfterPrefix).toBe(2);
    expect(failure.blockedOp).toMatchObject({ f: 'read', value: 1, process: 1 });
    expect(failure.explanation).toBe('key x: after 2 ops the register held 2; the read 1 by process 1 (history lines 4-5) fits no order of it and the 0 ops concurrent with it');
  });

  it('flags a lost write (an acknowledged write that a later read does not see)', () => {
    const r = check(hist([
      [0, 'invoke', 'write', ['x', 1]], [0, 'ok', 'write', ['x', 1]],
      [1, 'invoke', 'read', ['x', null]], [1, 'ok', 'read', ['x', null]],
    ]));
    expect(r.valid).toBe(false);
  });

  it('accepts a history that is valid only because an info write took effect late', () => {
    const lines = [
      [0, 'invoke', 'write', ['x', 1]], [0, 'info', 'write', ['x', 1]],
      [1, 'invoke', 'read', ['x', null]], [1, 'ok', 'read', ['x', null]],
      [1, 'invoke', 'read', ['x', null]], [1, 'ok', 'read', ['x', 1]],
    ] as const;
    expect(check(hist(lines.map((l) => [...l])))).toMatchObject({ valid: true });
    // The same history with the write known to have failed is not linearizable…
    const failed = lines.map((l, i) => (i === 1 ? [0, 'fail', 'write', ['x', 1]] : [...l]));
    expect(check(hist(failed as never)).valid).toBe(false);
    // …nor is one where the write was acknowledged before the first read.
    const acked = lines.map((l, i) => (i === 1 ? [0, 'ok', 'write', ['x', 1]] : [...l]));
    expect(check(hist(acked as never)).valid).toBe(false);
  });

  it('lets an info write never happen', () => {
    const r = check(hist([
      [0, 'invoke', 'write', ['x', 1]], [0, 'info', 'write', ['x', 1]],
      [1, 'invoke', 'read', ['x', null]], [1, 'ok', 'read', ['x', null]],
    ]));
    expect(r.valid).toBe(true);
  });

  it('does not let an info write take effect before its invocation', () => {
    const r = check(hist([
      [1, 'invoke', 'read', ['x', null]], [1, 'ok', 'read', ['x', 1]],
      [0, 'invoke', 'write', ['x', 1]], [0, 'info', 'write', ['x', 1]],
    ]));
    expect(r.valid).toBe(false);
  });

  it('treats concurrent ops as orderable either way', () => {
    const r = check(hist([
      [0, 'invoke', 'write', ['x', 1]],
      [1, 'invoke', 'read', ['x', null]],
      [1, 'ok', 'read', ['x', 1]],
      [0, 'ok', 'write', ['x', 1]],
    ]));
    expect(r.valid).toBe(true);
  });

  it('checks keys independently and names only the bad key', () => {
    const r = check(hist([
      [0, 'invoke', 'write', ['a', 1]], [0, 'ok', 'write', ['a', 1]],
      [0, 'invoke', 'write', ['b', 1]], [0, 'ok', 'write', ['b', 1]],
      [1, 'invoke', 'read', ['a', null]], [1, 'ok', 'read', ['a', 1]],
      [1, 'invoke', 'read', ['b', null]], [1, 'ok', 'read', ['b', 7]],
    ]));
    expect(r.valid).toBe(false);
    expect(r.evidence.failures.map((f) => f.key)).toEqual(['b']);
    expect(r.evidence.keysChecked).toBe(2);
  });

  it('reports unknown (not invalid) when the per-key budget is spent', () => {
    const ops = generateRegisterHistory({ seed: 7, processes: 8, ops: 400, keys: 1, infoRate: 0.3 });
    let t = 0;
    const r = checkLinearizable(pairOps(ops), { budgetMsPerKey: 5, nowMs: () => (t += 1) });
    expect(r.valid).toBe('unknown');
    expect(r.evidence.unknownKeys[0]?.reason).toMatch(/budget/);
    expect(r.evidence.failures).toEqual([]);
  });
});

/** Brute force oracle: tries every order that respects real time (info ops optional). */
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
    const v = (p.invoke.value as unknown[])[1];
    let next: unknown;
    if (p.invoke.f === 'read') {
      if (JSON.stringify((p.complete!.value as unknown[])[1]) !== JSON.stringify(state)) continue;
      next = state;
    } else if (p.invoke.f === 'write') next = v;
    else {
      const [from, to] = v as unknown[];
      if (JSON.stringify(from) !== JSON.stringify(state)) continue;
      next = to;
    }
    done.add(i);
    if (search(ps, done, next)) return true;
    done.delete(i);
  }
  return false;
}

describe('linearizability checker: seeded random histories', () => {
  const seeds = Array.from({ length: 300 }, (_, i) => 1000 + i);
  const replay = (seed: number) => `seed ${seed} (replay: JL_SEED=${seed} pnpm vitest run jepsen-lite/test/linearizable.test.ts)`;
  const only = process.env.JL_SEED === undefined ? seeds : [Number(process.env.JL_SEED)];

  it('accepts every history generated from the sequential model', () => {
    for (const seed of only.slice(0, 150)) {
      const ops = generateRegisterHistory({ seed, processes: 5, ops: 120, keys: 3 });
      // Round-trip through the file format on the way, so the loader is exercised too.
      const r = checkLinearizable(pairOps(parseHistory(serializeHistory(ops))));
      expect(r.valid, replay(seed)).toBe(true);
    }
  });

  it('rejects every history with a read of a never-written value', () => {
    for (const seed of only.slice(0, 150)) {
      const ops = mutateReadToUnwritten(generateRegisterHistory({ seed, processes: 5, ops: 120, keys: 3 }), createRng(seed));
      if (ops === undefined) continue;
      expect(check(ops).valid, replay(seed)).toBe(false);
    }
  });

  it('agrees with a brute-force oracle on small valid and mutated histories', () => {
    let invalidSeen = 0;
    for (const seed of only) {
      // Half the seeds with many info ops, to exercise dropping unobserved info writes.
      const base = generateRegisterHistory({ seed, processes: 3, ops: 8, keys: 1, infoRate: seed % 2 === 0 ? 0.25 : 0.5 });
      for (const ops of [base, mutateReadToOtherValue(base, createRng(seed + 1))]) {
        if (ops === undefined) continue;
        const pairs = pairOps(ops);
        const expected = bruteForce(pairs);
        if (!expected) invalidSeen++;
        expect(checkLinearizable(pairs).valid, replay(seed)).toBe(expected);
      }
    }
    expect(invalidSeen).toBeGreaterThan(10);
  });
});
