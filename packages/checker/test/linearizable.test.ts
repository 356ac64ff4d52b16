import { describe, expect, it } from 'vitest';
import type { HistoryLine, Op } from '../src/index.js';
import { LinearizableOptionsError, checkLinearizable, historyOf as hist, pairOps } from '../src/index.js';

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

  it('counts intervals that touch (one returns at the instant the other is invoked) as concurrent', () => {
    const ops: Op[] = [
      { index: 0, process: 0, type: 'invoke', f: 'read', value: ['x', null], time: 10 },
      { index: 1, process: 1, type: 'invoke', f: 'write', value: ['x', 1], time: 20 },
      { index: 2, process: 0, type: 'ok', f: 'read', value: ['x', 1], time: 20 },
      { index: 3, process: 1, type: 'ok', f: 'write', value: ['x', 1], time: 30 },
    ];
    expect(check(ops).valid).toBe(true);
    expect(check(ops.map((o) => (o.index === 2 ? { ...o, time: 19 } : o)).sort((a, b) => a.time - b.time)).valid).toBe(false);
  });

  it('flags a cas race: two concurrent cas from the same value cannot both succeed', () => {
    const race: HistoryLine[] = [
      [0, 'invoke', 'write', ['x', 0]], [0, 'ok', 'write', ['x', 0]],
      [1, 'invoke', 'cas', ['x', [0, 1]]],
      [2, 'invoke', 'cas', ['x', [0, 2]]],
      [1, 'ok', 'cas', ['x', [0, 1]]],
      [2, 'ok', 'cas', ['x', [0, 2]]],
    ];
    const r = check(hist(race));
    expect(r.valid).toBe(false);
    expect(r.evidence.failures[0]!.blockedOp).toMatchObject({ f: 'cas' });
    // The honest outcome of the same race: one wins, the other fails (and a read sees the winner).
    const honest = race.map((l, i): HistoryLine => (i === 5 ? [2, 'fail', 'cas', ['x', [0, 2]]] : l));
    honest.push([0, 'invoke', 'read', ['x', null]], [0, 'ok', 'read', ['x', 1]]);
    expect(check(hist(honest)).valid).toBe(true);
  });

  it('lets an info cas take effect late, but only if its expected value held', () => {
    const lines: HistoryLine[] = [
      [0, 'invoke', 'write', ['x', 1]], [0, 'ok', 'write', ['x', 1]],
      [1, 'invoke', 'cas', ['x', [1, 2]]], [1, 'info', 'cas', ['x', [1, 2]]],
      [0, 'invoke', 'read', ['x', null]], [0, 'ok', 'read', ['x', 1]],
      [0, 'invoke', 'read', ['x', null]], [0, 'ok', 'read', ['x', 2]],
    ];
    expect(check(hist(lines)).valid).toBe(true);
    // A write of 3 acknowledged before the first read: the cas can no longer find 1.
    const overwritten: HistoryLine[] = [...lines.slice(0, 4), [0, 'invoke', 'write', ['x', 3]], [0, 'ok', 'write', ['x', 3]], [0, 'invoke', 'read', ['x', null]], [0, 'ok', 'read', ['x', 2]]];
    expect(check(hist(overwritten)).valid).toBe(false);
  });

  it('treats a delete as a write of null: a read of the old value after it is stale', () => {
    const lines: HistoryLine[] = [
      [0, 'invoke', 'write', ['x', 1]], [0, 'ok', 'write', ['x', 1]],
      [0, 'invoke', 'delete', ['x', null]], [0, 'ok', 'delete', ['x', null]],
      [1, 'invoke', 'read', ['x', null]], [1, 'ok', 'read', ['x', null]],
    ];
    expect(check(hist(lines)).valid).toBe(true);
    const stale = lines.map((l, i): HistoryLine => (i === 5 ? [1, 'ok', 'read', ['x', 1]] : l));
    expect(check(hist(stale)).valid).toBe(false);
  });

  it('never lets a failed write take effect, even when a read would need it', () => {
    const r = check(hist([
      [0, 'invoke', 'write', ['x', 1]], [0, 'fail', 'write', ['x', 1]],
      [1, 'invoke', 'read', ['x', null]], [1, 'ok', 'read', ['x', 1]],
    ]));
    expect(r.valid).toBe(false);
    expect(r.evidence.opsChecked).toBe(1);
  });

  it('reads an op it cannot interpret as unknown, not as a violation', () => {
    const r = check(hist([
      [0, 'invoke', 'write', ['x', 1]], [0, 'ok', 'write', ['x', 1]],
      [1, 'invoke', 'read', 'x'], [1, 'ok', 'read', 'x'],
    ]));
    expect(r.valid).toBe('unknown');
    expect(r.evidence.malformedOps).toEqual([2]);
  });

  it('starts from initialValue when given', () => {
    const lines: HistoryLine[] = [[0, 'invoke', 'read', ['x', null]], [0, 'ok', 'read', ['x', 'seed']]];
    expect(check(hist(lines)).valid).toBe(false);
    expect(checkLinearizable(pairOps(hist(lines)), { initialValue: 'seed' }).valid).toBe(true);
  });

  it('refuses options it cannot honour with a typed error, before searching', () => {
    const pairs = pairOps(hist([[0, 'invoke', 'write', ['x', 1]], [0, 'ok', 'write', ['x', 1]]]));
    for (const bad of [{ budgetMsPerKey: 100 }, { budgetStepsPerKey: 0 }, { budgetStepsPerKey: 1.5 }, { memoEntriesMaxPerKey: 2 ** 25 }, { memoBytesMaxPerKey: -1 }]) {
      expect(() => checkLinearizable(pairs, bad), JSON.stringify(bad)).toThrow(LinearizableOptionsError);
    }
    try {
      checkLinearizable(pairs, { budgetMsPerKey: 100 });
    } catch (err) {
      expect((err as LinearizableOptionsError).code).toBe('QKV_CHECKER_OPTIONS');
      expect((err as Error).message).toMatch(/needs nowMs/);
    }
  });
});
