// The incremental checker: ops fed in as they happen, checks at any point, the same final verdict
// as checking the whole history at the end.
import { describe, expect, it } from 'vitest';
import type { HistoryLine, Op } from '../src/index.js';
import { LinearizabilityMonitor, checkLinearizable, createRng, generateRegisterHistory, historyOf, mutateReadToOtherValue, pairOps } from '../src/index.js';

/** Feeds `ops` to a monitor, checking after every `every` ops; returns every verdict seen. */
function feed(ops: readonly Op[], every: number): { verdicts: (true | false | 'unknown')[]; monitor: LinearizabilityMonitor } {
  const monitor = new LinearizabilityMonitor();
  const verdicts: (true | false | 'unknown')[] = [];
  ops.forEach((op, i) => {
    monitor.observe(op);
    if ((i + 1) % every === 0) verdicts.push(monitor.check().valid);
  });
  verdicts.push(monitor.check().valid);
  return { verdicts, monitor };
}

describe('LinearizabilityMonitor', () => {
  it('agrees with the whole-history check at the end, and never calls a prefix of a valid history invalid', () => {
    let invalidSeen = 0;
    for (let seed = 500; seed < 530; seed++) {
      const base = generateRegisterHistory({ seed, processes: 5, ops: 150, keys: 3, infoRate: 0.2, deleteRate: 0.1 });
      for (const ops of [base, mutateReadToOtherValue(base, createRng(seed))]) {
        if (ops === undefined) continue;
        const whole = checkLinearizable(pairOps(ops));
        const { verdicts, monitor } = feed(ops, 3 + (seed % 17));
        expect(verdicts.at(-1), `seed ${seed}`).toBe(whole.valid);
        expect(monitor.check().evidence.failures.map((f) => f.key), `seed ${seed}`).toEqual(whole.evidence.failures.map((f) => f.key));
        if (whole.valid === true) expect(verdicts.every((v) => v === true), `seed ${seed}`).toBe(true);
        else invalidSeen++;
      }
    }
    expect(invalidSeen).toBeGreaterThan(3);
  });

  it('reports a stale read as soon as it completes, and does not search that key again', () => {
    const lines: HistoryLine[] = [
      [0, 'invoke', 'write', ['x', 1]], [0, 'ok', 'write', ['x', 1]],
      [0, 'invoke', 'write', ['x', 2]], [0, 'ok', 'write', ['x', 2]],
      [1, 'invoke', 'read', ['x', null]], [1, 'ok', 'read', ['x', 1]],
    ];
    for (let i = 0; i < 50; i++) lines.push([2, 'invoke', 'write', ['x', 10 + i]], [2, 'ok', 'write', ['x', 10 + i]]);
    const ops = historyOf(lines);
    const monitor = new LinearizabilityMonitor();
    ops.slice(0, 5).forEach((op) => monitor.observe(op));
    expect(monitor.check().valid).toBe(true); // the read is still open: it constrains nothing yet
    monitor.observe(ops[5]!);
    const caught = monitor.check();
    expect(caught.valid).toBe(false);
    expect(caught.evidence.failures[0]).toMatchObject({ key: 'x', blockedOp: { f: 'read', value: 1 } });
    ops.slice(6).forEach((op) => monitor.observe(op));
    expect(monitor.check()).toEqual(caught);
  });

  it('treats a write still open at the check as one that may have taken effect', () => {
    const monitor = new LinearizabilityMonitor();
    const ops = historyOf([
      [0, 'invoke', 'write', ['x', 1]],
      [1, 'invoke', 'read', ['x', null]], [1, 'ok', 'read', ['x', 1]],
      [1, 'invoke', 'read', ['x', null]], [1, 'ok', 'read', ['x', null]],
    ]);
    ops.slice(0, 3).forEach((op) => monitor.observe(op));
    expect(monitor.check().valid).toBe(true);
    // Once the read of 1 is followed by a read of null, no order of one write explains both.
    ops.slice(3).forEach((op) => monitor.observe(op));
    expect(monitor.check().valid).toBe(false);
  });

  it('refuses a completion without an invocation, and a second open op of one process', () => {
    const monitor = new LinearizabilityMonitor();
    const [inv, ok] = historyOf([[0, 'invoke', 'write', ['x', 1]], [0, 'ok', 'write', ['x', 1]]]);
    expect(() => monitor.observe(ok!)).toThrow(/completion without invocation/);
    monitor.observe(inv!);
    expect(() => monitor.observe({ ...inv!, index: 5 })).toThrow(/invokes while another op is open/);
  });
});
