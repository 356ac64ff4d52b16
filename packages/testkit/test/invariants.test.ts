import { describe, expect, it } from 'vitest';
import { InvariantViolation, KvStateMachine, LogChain, SafetyChecker, decodeWrite, encodeWrite } from '@quorumkv/testkit';
import type { EntryLike } from '@quorumkv/testkit';

const enc = new TextEncoder();

function ents(spec: string): EntryLike[] {
  // "1:1:a 2:1:b" = index:term:data
  return spec.split(' ').map((s) => {
    const [i, t, d] = s.split(':');
    return { index: Number(i), term: Number(t), type: 0, data: enc.encode(d ?? '') };
  });
}

/** A log as the checker sees it: appends go through LogChain with Log Matching checked. */
function logOf(checker: SafetyChecker, node: string, spec: string): LogChain {
  const log = new LogChain();
  log.append(ents(spec), (i, t, c) => checker.observeEntry(node, i, t, c));
  return log;
}

function violation(fn: () => void): string {
  try {
    fn();
  } catch (err) {
    if (err instanceof InvariantViolation) return err.invariant;
    throw err;
  }
  return 'none';
}

describe('LogChain', () => {
  it('reports only real changes when a suffix is replaced', () => {
    const log = new LogChain();
    expect(log.append(ents('1:1:a 2:1:b 3:1:c'))).toBe(Infinity);
    expect(log.append(ents('2:1:b 3:1:c'))).toBe(Infinity); // identical re-append
    expect(log.append(ents('3:2:x'))).toBe(3);
    expect(log.lastIndex).toBe(3);
    expect(log.termAt(3)).toBe(2);
    expect(log.append(ents('2:1:b'))).toBe(3); // shorter replacement drops entry 3
    expect(log.lastIndex).toBe(2);
  });

  it('compacts and restarts from a snapshot', () => {
    const log = new LogChain();
    log.append(ents('1:1:a 2:1:b 3:1:c'));
    const c3 = log.chainAt(3);
    log.compact(2);
    expect(log.chainAt(1)).toBeUndefined();
    expect(log.chainAt(3)).toBe(c3);
    log.installSnapshot(10, 4, 1234);
    expect(log.lastIndex).toBe(10);
    expect(log.chainAt(10)).toBe(1234);
    expect(log.append(ents('5:1:old'))).toBe(Infinity); // covered by the snapshot: skipped
    expect(() => log.append(ents('12:4:gap'))).toThrow(/gap/);
  });
});

describe('SafetyChecker', () => {
  it('election safety: one leader per term', () => {
    const c = new SafetyChecker();
    c.observeLeader(1, 'n1');
    c.observeLeader(1, 'n1');
    c.observeLeader(2, 'n2');
    expect(violation(() => c.observeLeader(2, 'n3'))).toBe('election-safety');
  });

  it('log matching: the same (index, term) with a different prefix is caught', () => {
    const c = new SafetyChecker();
    logOf(c, 'n1', '1:1:a 2:1:b 3:2:c');
    logOf(c, 'n2', '1:1:a 2:1:b'); // a prefix: fine
    expect(violation(() => logOf(c, 'n3', '1:1:a 2:1:z 3:2:c'))).toBe('log-matching'); // entry 2 differs
    expect(violation(() => logOf(c, 'n4', '1:1:other'))).toBe('log-matching');
  });

  it('committed durability: a committed index cannot change or be truncated', () => {
    const c = new SafetyChecker();
    const a = logOf(c, 'n1', '1:1:a 2:1:b');
    c.observeCommit('n1', 1, 1, 2, (i) => a.chainAt(i));
    expect(c.maxCommit).toBe(2);
    const other = new SafetyChecker();
    const b = logOf(other, 'n2', '1:1:a 2:2:x');
    expect(violation(() => c.observeCommit('n2', 2, 1, 2, (i) => b.chainAt(i)))).toBe('committed-durability');
    expect(violation(() => c.observeTruncate('n1', 2, 2))).toBe('committed-durability');
    c.observeTruncate('n1', 3, 2);
  });

  it('leader completeness: a leader must hold entries committed in earlier terms only', () => {
    const c = new SafetyChecker();
    const a = logOf(c, 'n1', '1:1:a 2:1:b 3:3:c');
    c.observeCommit('n1', 1, 1, 2, (i) => a.chainAt(i)); // 1..2 committed in term 1
    c.observeCommit('n1', 3, 3, 3, (i) => a.chainAt(i)); // 3 committed in term 3
    const stale = new SafetyChecker();
    const b = logOf(stale, 'n2', '1:1:a');
    // Leader of term 2 may lack entry 3 (committed later, in term 3) but not entry 2.
    expect(violation(() => c.observeLeaderLog('n2', 2, 0, (i) => b.chainAt(i)))).toBe('committed-durability');
    const d = logOf(stale, 'n3', '1:1:a 2:1:b');
    c.observeLeaderLog('n3', 2, 0, (i) => d.chainAt(i));
    expect(violation(() => c.observeLeaderLog('n3', 4, 0, (i) => d.chainAt(i)))).toBe('committed-durability');
    c.observeLeaderLog('n3', 4, 5, (i) => d.chainAt(i)); // its snapshot covers the entries
  });

  it('state machine safety: every node applies the same sequence', () => {
    const c = new SafetyChecker();
    const sm1 = new KvStateMachine();
    const sm2 = new KvStateMachine();
    for (const e of ents('1:1:a 2:1:b')) c.observeApply('n1', e.index, sm1.apply(e, 0));
    c.observeApply('n2', 1, sm2.apply(ents('1:1:a')[0]!, 0));
    expect(violation(() => c.observeApply('n2', 2, sm2.apply(ents('2:2:b')[0]!, 0)))).toBe('state-machine-safety');
    expect(violation(() => c.observeSnapshot('n3', 2, 999))).toBe('state-machine-safety');
  });

  it('read linearizability: a read sees everything committed before it started', () => {
    const c = new SafetyChecker();
    const a = logOf(c, 'n1', '1:1:a 2:1:b 3:1:c');
    c.observeCommit('n1', 1, 1, 2, (i) => a.chainAt(i));
    c.observeReadStart(1, 'n2', 10);
    c.observeReadStart(2, 'n3', 11);
    c.observeCommit('n1', 1, 3, 3, (i) => a.chainAt(i));
    c.observeReadStart(3, 'n2', 12);
    expect(c.observeReadServed(1, 'n2', 2)).toBe(true);
    expect(c.observeReadServed(1, 'n2', 2)).toBe(false); // already served
    expect(violation(() => c.observeReadServed(3, 'n2', 2))).toBe('read-linearizability');
    c.forgetRead(2);
    expect(c.observeReadServed(2, 'n3', 0)).toBe(false);
  });
});

describe('KvStateMachine', () => {
  it('applies writes in order, refuses gaps and round-trips through a snapshot', () => {
    const sm = new KvStateMachine();
    sm.apply({ index: 1, term: 1, type: 0, data: new Uint8Array(0) }, 0);
    sm.apply({ index: 2, term: 1, type: 0, data: encodeWrite({ id: 7, key: 'k1', value: 'v7' }) }, 0);
    expect(sm.kv.get('k1')).toBe('v7');
    expect(() => sm.apply({ index: 4, term: 1, type: 0, data: new Uint8Array(0) }, 0)).toThrow(/applying index 4 after 2/);
    const copy = new KvStateMachine();
    copy.restore(sm.snapshotData());
    expect(copy.appliedIndex).toBe(2);
    expect(copy.chain).toBe(sm.chain);
    expect(copy.kv.get('k1')).toBe('v7');
    expect(decodeWrite(encodeWrite({ id: 3, key: 'a', value: 'b' }))).toEqual({ id: 3, key: 'a', value: 'b' });
    expect(decodeWrite(new TextEncoder().encode('garbage'))).toBeUndefined();
    expect(() => copy.restore(new TextEncoder().encode('{'))).toThrow(/not valid JSON/);
  });
});
