// The checker's budgets: the step budget gives a verdict that depends on the history alone (what
// a simulation needs to replay a seed exactly), the time budget needs a clock passed in, and the
// memo is bounded in entries and bytes. Every budget is per key.
import { describe, expect, it } from 'vitest';
import type { HistoryLine, OpPair } from '../src/index.js';
import { checkLinearizable, generateRegisterHistory, historyOf, pairOps } from '../src/index.js';
import { Memo } from '../src/wgl.js';

/** A one-key history that needs tens of thousands of steps (seed 7: 56,431 steps). */
const hard = (): OpPair[] => pairOps(generateRegisterHistory({ seed: 7, processes: 8, ops: 400, keys: 1, infoRate: 0.3 }));

describe('linearizability checker: budgets', () => {
  it('the step budget gives the same verdict and step count on every run, and spends exactly what it is given', () => {
    const full = checkLinearizable(hard());
    expect(full.valid).toBe(true);
    const needed = full.evidence.steps;
    expect(needed).toBeGreaterThan(10_000);
    // Exactly enough: valid, every time; one step short: unknown, every time, at the same step.
    for (let run = 0; run < 5; run++) {
      expect(checkLinearizable(hard(), { budgetStepsPerKey: needed })).toEqual(full);
      const short = checkLinearizable(hard(), { budgetStepsPerKey: needed - 1 });
      expect(short.valid).toBe('unknown');
      expect(short.evidence.steps).toBe(needed - 1);
      expect(short.evidence.unknownKeys).toEqual([{ key: 'k0', budget: 'steps', reason: `step budget of ${needed - 1} spent` }]);
    }
  });

  it('reads no clock unless a time budget is asked for', () => {
    const nowMs = (): number => {
      throw new Error('the clock was read');
    };
    expect(checkLinearizable(hard(), { budgetStepsPerKey: 1000, nowMs }).valid).toBe('unknown');
    expect(checkLinearizable(hard(), { nowMs }).valid).toBe(true);
  });

  it('reports unknown (not invalid) when the time budget is spent, on the clock it was given', () => {
    let t = 0;
    const r = checkLinearizable(hard(), { budgetMsPerKey: 5, nowMs: () => (t += 1) });
    expect(r.valid).toBe('unknown');
    expect(r.evidence.unknownKeys[0]).toMatchObject({ key: 'k0', budget: 'time', reason: 'time budget of 5 ms spent' });
    expect(r.evidence.failures).toEqual([]);
    // The clock is read once per 1024 steps: the search stopped at the first read past 1 + 5 ms.
    expect(r.evidence.steps).toBe(6 * 1024);
  });

  it('bounds the memo in entries and in bytes', () => {
    const entries = checkLinearizable(hard(), { memoEntriesMaxPerKey: 100 });
    expect(entries.valid).toBe('unknown');
    expect(entries.evidence.unknownKeys[0]).toMatchObject({ budget: 'memo', reason: 'memo bound of 100 entries reached' });
    const bytes = checkLinearizable(hard(), { memoBytesMaxPerKey: 10_000 });
    expect(bytes.valid).toBe('unknown');
    expect(bytes.evidence.unknownKeys[0]).toMatchObject({ budget: 'memo', reason: 'memo bound of 10000 bytes reached' });
  });

  it('spends the budget per key: a key out of budget does not hide another key that is not linearizable', () => {
    const bad: HistoryLine[] = [
      [90, 'invoke', 'write', ['z', 1]], [90, 'ok', 'write', ['z', 1]],
      [91, 'invoke', 'read', ['z', null]], [91, 'ok', 'read', ['z', null]],
    ];
    const pairs = [...hard(), ...pairOps(historyOf(bad))];
    const r = checkLinearizable(pairs, { budgetStepsPerKey: 1000 });
    expect(r.valid).toBe(false);
    expect(r.evidence.failures.map((f) => f.key)).toEqual(['z']);
    expect(r.evidence.unknownKeys.map((u) => u.key)).toEqual(['k0']);
  });
});

describe('the memo', () => {
  it('keeps configurations whose hashes collide apart (exact, not probabilistic)', () => {
    const memo = new Memo(2, 3);
    expect(memo.add(42, Uint32Array.of(0b01, 7))).toBe('added');
    expect(memo.add(42, Uint32Array.of(0b10, 7))).toBe('added'); // same hash, different configuration
    expect(memo.add(42, Uint32Array.of(0b01, 7))).toBe('present');
    expect(memo.add(42, Uint32Array.of(0b01, 8))).toBe('added'); // same ops, other state
    expect(memo.add(43, Uint32Array.of(0b11, 7))).toBe('full');
    expect(memo.add(42, Uint32Array.of(0b10, 7))).toBe('present'); // a full memo still answers
    expect(memo.size).toBe(3);
  });

  it('grows past its first capacity without losing entries', () => {
    const memo = new Memo(1, 5000);
    for (let i = 0; i < 5000; i++) expect(memo.add(i % 7, Uint32Array.of(i))).toBe('added');
    for (let i = 0; i < 5000; i++) expect(memo.add(i % 7, Uint32Array.of(i))).toBe('present');
    expect(memo.add(0, Uint32Array.of(5000))).toBe('full');
  });
});
