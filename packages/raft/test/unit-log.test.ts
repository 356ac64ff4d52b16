// RaftLog: stable storage plus the unstable tail, the follower's append/conflict rules, the fast
// back-off hint, size-limited slices, and the commit rule of §5.4.2.
import { describe, expect, it } from 'vitest';
import { CompactedError, EntryType, MemoryStorage, UnavailableError, type Entry } from '../src/index.js';
import { RaftLog, entrySize, limitSize } from '../src/log.js';

const ent = (index: number, term: number, data = ''): Entry => ({ index, term, type: EntryType.Normal, data: new TextEncoder().encode(data) });
/** Entries 1..n with the given terms. */
const ents = (terms: number[], from = 1): Entry[] => terms.map((t, i) => ent(from + i, t));
const terms = (log: RaftLog): number[] => {
  const out: number[] = [];
  for (let i = log.firstIndex(); i <= log.lastIndex(); i++) out.push(log.term(i));
  return out;
};

/** A log whose first `stable` entries are in storage and the rest unstable. */
function logWith(ts: number[], stable = ts.length): RaftLog {
  const s = new MemoryStorage();
  s.append(ents(ts.slice(0, stable)));
  const log = new RaftLog(s, 0);
  log.append(ents(ts.slice(stable), stable + 1));
  return log;
}

describe('RaftLog.maybeAppend', () => {
  it('appends after a matching entry and returns the last new index', () => {
    const log = logWith([1, 1, 2]);
    expect(log.maybeAppend(3, 2, 0, ents([2, 3], 4))).toBe(5);
    expect(terms(log)).toEqual([1, 1, 2, 2, 3]);
  });

  it('refuses when the previous entry does not match (missing or other term)', () => {
    const log = logWith([1, 1, 2]);
    expect(log.maybeAppend(4, 2, 0, ents([2], 5))).toBeUndefined(); // index 4 missing
    expect(log.maybeAppend(3, 1, 0, ents([2], 4))).toBeUndefined(); // term of 3 is 2
    expect(terms(log)).toEqual([1, 1, 2]);
  });

  it('ignores entries it already has (a duplicate or reordered append truncates nothing)', () => {
    const log = logWith([1, 1, 2, 2, 2]);
    expect(log.maybeAppend(1, 1, 0, ents([1, 2], 2))).toBe(3);
    expect(terms(log)).toEqual([1, 1, 2, 2, 2]);
  });

  it('replaces a conflicting suffix from the first conflict on, in storage and unstable', () => {
    const log = logWith([1, 1, 2, 2, 2], 3);
    expect(log.maybeAppend(2, 1, 0, ents([2, 3], 3))).toBe(4);
    expect(terms(log)).toEqual([1, 1, 2, 3]);
    const log2 = logWith([1, 1, 2, 2], 4);
    expect(log2.maybeAppend(1, 1, 0, ents([4], 2))).toBe(2);
    expect(terms(log2)).toEqual([1, 4]);
    expect(log2.unstableEntries().map((e) => e.index)).toEqual([2]);
  });

  it('commits up to min(leader commit, last new index)', () => {
    const log = logWith([1, 1, 1]);
    log.maybeAppend(1, 1, 10, ents([1], 2));
    expect(log.committed).toBe(2); // not 3: only what this append vouches for
    log.maybeAppend(3, 1, 3, []);
    expect(log.committed).toBe(3);
  });

  it('a conflict at or below the commit index is a broken invariant', () => {
    const log = logWith([1, 1, 1]);
    log.commitTo(2);
    expect(() => log.maybeAppend(1, 1, 0, ents([5], 2))).toThrow(/invariant/);
  });
});

describe('RaftLog.findConflictByTerm', () => {
  // The follower's log of Figure 7 (f): terms 1 1 1 2 2 2 3 3 3 3 3.
  const log = logWith([1, 1, 1, 2, 2, 2, 3, 3, 3, 3, 3]);
  const cases: Array<[number, number, { index: number; term: number }]> = [
    [11, 6, { index: 11, term: 3 }], // every entry has a term <= 6
    [10, 2, { index: 6, term: 2 }], // skips the whole run of term 3
    [10, 1, { index: 3, term: 1 }],
    [5, 1, { index: 3, term: 1 }],
    [10, 0, { index: 0, term: 0 }],
    [0, 0, { index: 0, term: 0 }],
  ];
  for (const [index, term, want] of cases) {
    it(`(${index}, ${term}) -> ${want.index}/${want.term}`, () => {
      expect(log.findConflictByTerm(index, term)).toEqual(want);
    });
  }

  it('stops at the compaction point with term 0', () => {
    const s = new MemoryStorage();
    s.append(ents([1, 1, 2, 2, 3]));
    s.createSnapshot(3, { voters: [], learners: [] }, new Uint8Array());
    s.compact(3);
    const l = new RaftLog(s, 0);
    expect(l.findConflictByTerm(5, 2)).toEqual({ index: 4, term: 2 });
    expect(l.findConflictByTerm(5, 1)).toEqual({ index: 2, term: 0 });
  });
});

describe('RaftLog.slice and terms', () => {
  it('slices across storage and unstable, limited in bytes but never empty', () => {
    const log = logWith([1, 1, 1, 2, 2], 3);
    expect(log.slice(2, 6, Number.MAX_SAFE_INTEGER).map((e) => e.index)).toEqual([2, 3, 4, 5]);
    const one = entrySize(ent(1, 1));
    expect(log.slice(2, 6, 2 * one).map((e) => e.index)).toEqual([2, 3]);
    expect(log.slice(2, 6, 3 * one).map((e) => e.index)).toEqual([2, 3, 4]); // crosses into unstable
    expect(log.slice(2, 6, 1).map((e) => e.index)).toEqual([2]); // at least one
    expect(log.slice(4, 4, 1)).toEqual([]);
    expect(log.entriesFrom(6, 100)).toEqual([]);
  });

  it('throws CompactedError below the first index and asserts past the end', () => {
    const s = new MemoryStorage();
    s.append(ents([1, 1, 1, 1]));
    s.createSnapshot(2, { voters: [], learners: [] }, new Uint8Array());
    s.compact(2);
    const log = new RaftLog(s, 0);
    expect(() => log.slice(2, 4, 100)).toThrow(CompactedError);
    expect(() => log.slice(3, 6, 100)).toThrow(/invariant/);
    expect(log.term(2)).toBe(1); // the snapshot's own index still has a term
    expect(() => log.term(1)).toThrow(CompactedError);
    expect(() => log.term(5)).toThrow(UnavailableError);
    expect(log.zeroTermOnOutOfBounds(1)).toBe(0);
    expect(log.zeroTermOnOutOfBounds(5)).toBe(0);
  });

  it('limitSize keeps the longest prefix within the limit', () => {
    const es = ents([1, 1, 1]);
    const one = entrySize(es[0]!);
    expect(limitSize(es, 0)).toHaveLength(1);
    expect(limitSize(es, 2 * one + 1)).toHaveLength(2);
    expect(limitSize(es, 3 * one)).toHaveLength(3);
    expect(limitSize([], 10)).toEqual([]);
  });
});

describe('RaftLog commit and election rules', () => {
  it('isUpToDate compares last term first, then last index (§5.4.1)', () => {
    const log = logWith([1, 2, 2]);
    expect(log.isUpToDate(3, 2)).toBe(true);
    expect(log.isUpToDate(2, 2)).toBe(false);
    expect(log.isUpToDate(1, 3)).toBe(true);
    expect(log.isUpToDate(9, 1)).toBe(false);
  });

  it('maybeCommit counts only entries of the current term (§5.4.2)', () => {
    const log = logWith([1, 1, 2]);
    expect(log.maybeCommit(2, 2)).toBe(false);
    expect(log.committed).toBe(0);
    expect(log.maybeCommit(3, 2)).toBe(true);
    expect(log.committed).toBe(3);
    expect(log.maybeCommit(2, 2)).toBe(false); // never backwards
  });

  it('applied never passes committed', () => {
    const log = logWith([1, 1, 1]);
    log.commitTo(2);
    log.appliedTo(2);
    expect(() => log.appliedTo(3)).toThrow(/invariant/);
    expect(() => log.commitTo(4)).toThrow(/invariant/);
    expect(log.nextCommittedEntries(100)).toEqual([]);
  });

  it('hands out committed entries once, bounded in bytes', () => {
    const log = logWith([1, 1, 1, 1]);
    log.commitTo(4);
    expect(log.hasNextCommittedEntries()).toBe(true);
    const first = log.nextCommittedEntries(1);
    expect(first.map((e) => e.index)).toEqual([1]);
    log.appliedTo(1);
    expect(log.nextCommittedEntries(1e9).map((e) => e.index)).toEqual([2, 3, 4]);
  });
});
