import { describe, expect, it } from 'vitest';
import { generateRegisterHistory } from '@quorumkv/checker';
import { checkAvailability } from '../src/checkers/availability.js';
import { checkLinearizable } from '../src/checkers/linearizable.js';
import { checkLogAgreement } from '../src/checkers/log-agreement.js';
import { checkSet } from '../src/checkers/set.js';
import { type WatchRecord, type WatchedChange, checkWatch } from '../src/checkers/watch.js';
import type { StatusSample } from '../src/checkers/split-brain.js';
import { checkSplitBrain } from '../src/checkers/split-brain.js';
import { compose, mergeValid } from '../src/checker.js';
import type { Op } from '../src/history.js';
import { pairOps } from '../src/history.js';
import { hist } from './helpers.js';

describe('set checker', () => {
  const adds = hist([
    [0, 'invoke', 'add', 1], [0, 'ok', 'add', 1],
    [1, 'invoke', 'add', 2], [1, 'info', 'add', 2],
    [0, 'invoke', 'add', 3], [0, 'ok', 'add', 3],
    [2, 'invoke', 'add', 4], [2, 'fail', 'add', 4],
  ]);
  const withReads = (...reads: [string, unknown[]][]): Op[] => {
    const ops = adds.slice();
    for (const [node, elements] of reads) {
      ops.push({ index: ops.length, process: 9, type: 'invoke', f: 'read', value: null, time: ops.length * 10 + 10, node });
      ops.push({ index: ops.length, process: 9, type: 'ok', f: 'read', value: elements, time: ops.length * 10 + 10, node });
    }
    return ops;
  };

  it('accepts final reads holding every acknowledged add (info adds may or may not appear)', () => {
    const r = checkSet(pairOps(withReads(['n1', [1, 2, 3]], ['n2', [1, 3]])));
    expect(r.valid).toBe(true);
    expect(r.evidence).toMatchObject({ acknowledgedCount: 2, recoveredCount: 1, divergentCount: 1 });
  });

  it('flags a lost acknowledged add and names the node that lacks it', () => {
    const r = checkSet(pairOps(withReads(['n1', [1, 3]], ['n2', [1]])));
    expect(r.valid).toBe(false);
    expect(r.evidence.lost).toEqual([{ element: 3, missingOn: ['n2'] }]);
  });

  it('flags a failed add that is present: its error said "not applied" and lied', () => {
    const r = checkSet(pairOps(withReads(['n1', [1, 3, 4]], ['n2', [1, 3]])));
    expect(r.valid).toBe(false);
    expect(r.evidence.failedButPresent).toEqual([{ element: 4, error: undefined, seenOn: ['n1'] }]);
  });

  it('flags an element nobody added', () => {
    const r = checkSet(pairOps(withReads(['n1', [1, 3, 99]])));
    expect(r.valid).toBe(false);
    expect(r.evidence.unexpected).toEqual([{ element: 99, seenOn: ['n1'] }]);
  });

  it('is unknown without a final read', () => {
    expect(checkSet(pairOps(adds)).valid).toBe('unknown');
  });
});

describe('linearizable checker (the shared one, on the wall clock)', () => {
  it('stops a key at --budget-ms on the real clock, as well as at the step budget', () => {
    // One key that needs ~330,000 steps (tens of ms): 1 ms is not enough.
    const pairs = pairOps(generateRegisterHistory({ seed: 4, processes: 16, ops: 600, keys: 1, infoRate: 0.3 }));
    const timed = checkLinearizable(pairs, { budgetMsPerKey: 1 });
    expect(timed.valid).toBe('unknown');
    expect(timed.evidence.unknownKeys[0]).toMatchObject({ budget: 'time', reason: 'time budget of 1 ms spent' });
    expect(checkLinearizable(pairs, { budgetStepsPerKey: 1000 }).evidence.unknownKeys[0]).toMatchObject({ budget: 'steps' });
    expect(checkLinearizable(pairs).valid).toBe(true); // within the default 5 s
  });
});

describe('split-brain checker', () => {
  const poll = (node: string, time: number, role: string, term: number, leader: string | null): StatusSample => ({ node, time, role, term, leader });

  it('accepts one leader per term across elections', () => {
    const r = checkSplitBrain([poll('n1', 1, 'leader', 1, 'n1'), poll('n2', 2, 'follower', 1, 'n1'), poll('n2', 5, 'leader', 2, 'n2'), poll('n1', 6, 'follower', 2, 'n2')], []);
    expect(r.valid).toBe(true);
    expect(r.evidence.termsSeen).toBe(2);
  });

  it('flags two leaders in one term', () => {
    const r = checkSplitBrain([poll('n1', 1, 'leader', 3, 'n1'), poll('n2', 2, 'leader', 3, 'n2')], []);
    expect(r.valid).toBe(false);
    expect(r.evidence.multipleLeaders[0]?.term).toBe(3);
    expect(r.evidence.multipleLeaders[0]?.leaders.map((l) => l.node).sort()).toEqual(['n1', 'n2']);
  });

  it('flags two leaders in one term seen only through followers', () => {
    const r = checkSplitBrain([poll('n2', 1, 'follower', 4, 'n1'), poll('n3', 2, 'follower', 4, 'n3')], []);
    expect(r.valid).toBe(false);
  });

  it('flags a write acknowledged in a term superseded before it was invoked', () => {
    const writes = [
      { index: 1, invokeTime: 0, completeTime: 10, term: 2 },
      { index: 3, invokeTime: 20, completeTime: 30, term: 3 }, // term 3 committed at 30
      { index: 5, invokeTime: 25, completeTime: 40, term: 2 }, // invoked before 30: fine
      { index: 7, invokeTime: 35, completeTime: 45, term: 2 }, // invoked after 30: stale
    ];
    const r = checkSplitBrain([], writes);
    expect(r.valid).toBe(false);
    expect(r.evidence.staleTermWrites.map((s) => s.write.index)).toEqual([7]);
    expect(r.evidence.staleTermWrites[0]).toMatchObject({ supersededByTerm: 3, supersededAtNs: 30 });
  });

  it('is unknown with no data', () => {
    expect(checkSplitBrain([], []).valid).toBe('unknown');
  });
});

describe('committed-log agreement checker', () => {
  const s = (node: string, appliedIndex: number, appliedHash: string, time = 0) => ({ node, time, appliedIndex, appliedHash });
  const f = (node: string, appliedIndex: number, appliedHash: string, stateHash: string | null) => ({ node, appliedIndex, appliedHash, stateHash });

  it('accepts nodes agreeing on the common prefix and converged state', () => {
    const r = checkLogAgreement([s('n1', 5, 'a5'), s('n2', 5, 'a5'), s('n3', 7, 'a7')], [f('n1', 9, 'a9', 'S'), f('n2', 9, 'a9', 'S'), f('n3', 9, 'a9', 'S')]);
    expect(r.valid).toBe(true);
    expect(r.evidence.commonPrefixIndex).toBe(9);
  });

  it('flags diverging hashes at one index', () => {
    const r = checkLogAgreement([s('n1', 5, 'a5'), s('n2', 5, 'XX')], [f('n1', 9, 'a9', 'S'), f('n2', 9, 'a9', 'S')]);
    expect(r.valid).toBe(false);
    expect(r.evidence.conflicts[0]?.index).toBe(5);
  });

  it('flags a node whose own hash at an index changed over time', () => {
    const r = checkLogAgreement([s('n1', 5, 'a5', 1), s('n1', 5, 'b5', 2)], []);
    expect(r.valid).toBe(false);
  });

  it('flags equal applied indexes with different state hashes', () => {
    const r = checkLogAgreement([], [f('n1', 9, 'a9', 'S'), f('n2', 9, 'a9', 'T')]);
    expect(r.valid).toBe(false);
    expect(r.evidence.stateHashesMatch).toBe(false);
  });

  it('is unknown when the nodes did not converge', () => {
    expect(checkLogAgreement([], [f('n1', 9, 'a9', 'S'), f('n2', 8, 'a8', 'R')]).valid).toBe('unknown');
  });

  it('never compares a state hash with an applied hash: a node without a state hash at its index makes it unknown, not invalid', () => {
    const r = checkLogAgreement([], [f('n1', 9, 'a9', 'S'), f('n2', 9, 'a9', 'S'), f('n3', 9, 'a9', null)]);
    expect(r.valid).toBe('unknown');
    expect(r.evidence.stateHashesMatch).toBe(true);
    // ... but the state hashes that were taken still must agree.
    expect(checkLogAgreement([], [f('n1', 9, 'a9', 'S'), f('n2', 9, 'a9', 'T'), f('n3', 9, 'a9', null)]).valid).toBe(false);
  });
});

describe('availability checker', () => {
  const ms = 1e6;
  const op = (process: number, f: 'write' | 'read', type: 'ok' | 'fail' | 'info', startMs: number, endMs: number): Op[] => [
    { index: 0, process, type: 'invoke', f, value: null, time: startMs * ms },
    { index: 0, process, type, f, value: null, time: endMs * ms },
  ];
  const ops = [...op(0, 'write', 'ok', 0, 10), ...op(0, 'write', 'info', 1000, 1500), ...op(0, 'write', 'fail', 1600, 1700), ...op(0, 'write', 'ok', 1800, 2300), ...op(1, 'read', 'ok', 3100, 3200)];

  it('measures failover, error rates and windows with an ok write', () => {
    const r = checkAvailability(pairOps(ops.map((o, index) => ({ ...o, index }))), [{ id: 'f1', kind: 'kill', startNs: 1000 * ms, endNs: 2000 * ms }]);
    expect(r.valid).toBe(true);
    expect(r.evidence.failovers).toEqual([{ id: 'f1', kind: 'kill', failoverMs: 1300 }]);
    expect(r.evidence.duringFaults).toMatchObject({ ops: 3, ok: 1, fail: 1, info: 1 });
    expect(r.evidence.duringFaults.errorRate).toBeCloseTo(2 / 3);
    expect(r.evidence.outsideFaults).toMatchObject({ ops: 2, errorRate: 0 });
    expect(r.evidence).toMatchObject({ windows: 4, windowsWithOkWrite: 2, okWindowShare: 0.5 });
  });

  it('judges only when thresholds are given', () => {
    const pairs = pairOps(ops.map((o, index) => ({ ...o, index })));
    const r = checkAvailability(pairs, [{ id: 'f1', kind: 'kill', startNs: 1000 * ms, endNs: 2000 * ms }], { failoverMsMax: 1000 });
    expect(r.valid).toBe(false);
    expect(r.evidence.violations[0]).toMatch(/f1/);
  });
});

describe('compose', () => {
  it('lets false win over unknown over true', () => {
    expect(mergeValid([true, 'unknown', false])).toBe(false);
    expect(mergeValid([true, 'unknown'])).toBe('unknown');
    expect(mergeValid([])).toBe(true);
    expect(compose({ a: { valid: true, evidence: null }, b: { valid: 'unknown', evidence: null } }).valid).toBe('unknown');
  });
});

describe('availability: recovery after the last heal', () => {
  const ms = 1e6;
  const pairsWith = (okWriteAtMs: number[]) =>
    pairOps(
      okWriteAtMs.flatMap((t, i): Op[] => [
        { index: 2 * i, process: 0, type: 'invoke', f: 'write', value: null, time: (t - 5) * ms },
        { index: 2 * i + 1, process: 0, type: 'ok', f: 'write', value: null, time: t * ms },
      ]),
    );
  const faults = [{ id: 'e1', kind: 'kill-all', startNs: 100 * ms, endNs: 200 * ms }];

  it('is invalid when no write succeeds after the last heal', () => {
    const r = checkAvailability(pairsWith([50]), faults, { requireRecovery: true });
    expect(r.valid).toBe(false);
    expect(r.evidence.recoveredAfterLastHeal).toBe(false);
    expect(r.evidence.violations[0]).toMatch(/did not recover/);
  });

  it('is valid once a write succeeds after the heal', () => {
    const r = checkAvailability(pairsWith([50, 250]), faults, { requireRecovery: true });
    expect(r.valid).toBe(true);
    expect(r.evidence.recoveredAfterLastHeal).toBe(true);
  });
});

describe('availability: failover counts only writes invoked after the fault', () => {
  it('ignores a write that was already in flight when the fault started', () => {
    const ms = 1e6;
    const ops: Op[] = [
      { index: 0, process: 0, type: 'invoke', f: 'write', value: null, time: 900 * ms },
      { index: 1, process: 1, type: 'invoke', f: 'write', value: null, time: 1100 * ms },
      { index: 2, process: 0, type: 'ok', f: 'write', value: null, time: 1001 * ms },
      { index: 3, process: 1, type: 'ok', f: 'write', value: null, time: 1600 * ms },
    ];
    const r = checkAvailability(pairOps(ops), [{ id: 'f', kind: 'kill', startNs: 1000 * ms, endNs: 1200 * ms }]);
    expect(r.evidence.failovers[0]?.failoverMs).toBe(600);
  });
});

describe('availability: a failed compare-and-set is an answer, not an error', () => {
  it('does not count QKV_CAS_FAILED in the error rate', () => {
    const ops: Op[] = [
      { index: 0, process: 0, type: 'invoke', f: 'cas', value: null, time: 1 },
      { index: 1, process: 0, type: 'fail', f: 'cas', value: null, time: 2, error: 'QKV_CAS_FAILED' },
      { index: 2, process: 0, type: 'invoke', f: 'write', value: null, time: 3 },
      { index: 3, process: 0, type: 'fail', f: 'write', value: null, time: 4, error: 'QKV_TOO_LARGE' },
    ];
    const r = checkAvailability(pairOps(ops), []);
    expect(r.evidence.outsideFaults).toMatchObject({ ops: 2, answeredFail: 1, fail: 1, errorRate: 0.5 });
  });
});

describe('watch checker', () => {
  const w = (key: string, v: number): [string, number] => [`jl-w/${key}`, v];
  const writes = pairOps(hist([
    [0, 'invoke', 'write', w('a', 1)], [0, 'ok', 'write', w('a', 1)],
    [1, 'invoke', 'write', w('b', 2)], [1, 'ok', 'write', w('b', 2)],
    [2, 'invoke', 'write', w('a', 3)], [2, 'info', 'write', w('a', 3)],
    [0, 'invoke', 'write', w('b', 4)], [0, 'fail', 'write', w('b', 4)],
  ]));
  const ch = (key: string, v: number, revision: number): WatchedChange => ({ type: 'put', key: `jl-w/${key}`, value: String(v), revision });
  const reference = [ch('a', 1, 5), ch('b', 2, 6), ch('a', 3, 7)];
  const record = (watchers: WatchRecord['watchers'], ref = reference): WatchRecord => ({ prefix: 'jl-w/', startRevision: 5, finalRevision: 8, reference: ref, watchers });

  it('accepts watchers whose sequences equal the committed one (an info write may be in it)', () => {
    const r = checkWatch(record([{ id: 'w1', throughRevision: 8, changes: reference }, { id: 'w2', throughRevision: 8, changes: reference.slice() }]), writes);
    expect(r.valid).toBe(true);
    expect(r.evidence).toMatchObject({ referenceChanges: 3, divergent: [], stopped: [], reference: [] });
  });

  it('flags a gap, a duplicate and a reordering, each at its first divergence', () => {
    const r = checkWatch(
      record([
        { id: 'gap', throughRevision: 8, changes: [reference[0]!, reference[2]!] },
        { id: 'dup', throughRevision: 8, changes: [reference[0]!, reference[1]!, reference[1]!, reference[2]!] },
        { id: 'reorder', throughRevision: 8, changes: [reference[1]!, reference[0]!, reference[2]!] },
      ]),
      writes,
    );
    expect(r.valid).toBe(false);
    expect(r.evidence.divergent.map((d) => [d.id, d.at, d.why])).toEqual([
      ['gap', 1, 'gap: the watcher skipped this change'],
      ['dup', 2, 'duplicate'],
      ['reorder', 0, 'gap: the watcher skipped this change'],
    ]);
  });

  it('flags a watcher that stopped short or ended by itself', () => {
    const r = checkWatch(record([{ id: 'short', throughRevision: 6, changes: reference.slice(0, 2) }, { id: 'err', throughRevision: 8, changes: reference, error: 'QKV_COMPACTED' }]), writes);
    expect(r.valid).toBe(false);
    expect(r.evidence.divergent).toEqual([]);
    expect(r.evidence.stopped.map((s) => s.id)).toEqual(['short', 'err']);
  });

  it('flags a committed sequence that lost an acknowledged write or holds a write that failed', () => {
    const lost = checkWatch(record([], [ch('a', 1, 5), ch('a', 3, 7)]), writes);
    expect(lost.valid).toBe(false);
    expect(lost.evidence.reference).toEqual(['acknowledged write jl-w/b=2 is in the committed sequence 0 times']);
    const failed = checkWatch(record([], [...reference, ch('b', 4, 8)]), writes);
    expect(failed.evidence.reference).toEqual(['write jl-w/b=4 failed as not applied, yet it is in the committed sequence']);
  });
});
