// MemoryStorage: the reference RaftStorage and the simulation's "disk". Appends replace a
// conflicting suffix, compaction keeps the snapshot's index/term as the log's dummy head, and
// applying a snapshot replaces the whole log.
import { describe, expect, it } from 'vitest';
import { CompactedError, EntryType, MemoryStorage, UnavailableError, type Entry } from '../src/index.js';

const ent = (index: number, term: number, data = ''): Entry => ({ index, term, type: EntryType.Normal, data: new TextEncoder().encode(data) });
const ents = (terms: number[], from = 1): Entry[] => terms.map((t, i) => ent(from + i, t));
const all = (s: MemoryStorage) => (s.lastIndex() < s.firstIndex() ? [] : s.entries(s.firstIndex(), s.lastIndex() + 1, Infinity));
const cs = { voters: ['n1', 'n2', 'n3'], learners: [] };

describe('MemoryStorage', () => {
  it('starts empty, with the given membership and hard state', () => {
    const s = new MemoryStorage({ confState: cs, hardState: { term: 3, vote: 'n2', commit: 0 } });
    expect(s.firstIndex()).toBe(1);
    expect(s.lastIndex()).toBe(0);
    expect(s.term(0)).toBe(0);
    expect(s.initialState()).toEqual({ hardState: { term: 3, vote: 'n2', commit: 0 }, confState: cs });
  });

  it('append replaces a conflicting suffix and extends at the end', () => {
    const s = new MemoryStorage();
    s.append(ents([1, 1, 1, 1, 1]));
    s.append(ents([2, 2], 3));
    expect(all(s).map((e) => `${e.term}/${e.index}`)).toEqual(['1/1', '1/2', '2/3', '2/4']);
    s.append(ents([2], 5));
    expect(s.lastIndex()).toBe(5);
    s.append([]);
    expect(s.lastIndex()).toBe(5);
  });

  it('append refuses a gap (a bug in the caller)', () => {
    const s = new MemoryStorage();
    s.append(ents([1]));
    expect(() => s.append(ents([1], 3))).toThrow(/invariant/);
  });

  it('append skips entries already covered by the snapshot', () => {
    const s = new MemoryStorage();
    s.append(ents([1, 1, 1, 1]));
    s.createSnapshot(3, cs, new Uint8Array());
    s.compact(3);
    s.append(ents([1, 1, 2, 2], 2)); // 2..3 are compacted; 4 is replaced; 5 appended
    expect(all(s).map((e) => `${e.term}/${e.index}`)).toEqual(['2/4', '2/5']);
    s.append(ents([1, 1], 1)); // entirely below the snapshot: nothing happens
    expect(s.lastIndex()).toBe(5);
  });

  it('entries honours [lo, hi) and the byte limit, and throws outside the log', () => {
    const s = new MemoryStorage();
    s.append([ent(1, 1, 'aaaa'), ent(2, 1, 'bbbb'), ent(3, 1, 'cccc')]);
    expect(s.entries(1, 4, Infinity)).toHaveLength(3);
    expect(s.entries(2, 3, Infinity).map((e) => e.index)).toEqual([2]);
    expect(s.entries(1, 4, 40)).toHaveLength(2); // 20 bytes each by entrySize
    expect(s.entries(1, 4, 0)).toHaveLength(1);
    expect(() => s.entries(1, 5, Infinity)).toThrow(UnavailableError);
    expect(() => s.term(4)).toThrow(UnavailableError);
  });

  it('compact keeps the snapshot index as the dummy head and drops entries up to it', () => {
    const s = new MemoryStorage();
    s.append(ents([1, 1, 2, 2, 3]));
    s.createSnapshot(4, cs, new Uint8Array([7]));
    s.compact(4);
    expect(s.firstIndex()).toBe(5);
    expect(s.lastIndex()).toBe(5);
    expect(s.term(4)).toBe(2);
    expect(() => s.term(3)).toThrow(CompactedError);
    expect(() => s.entries(4, 6, Infinity)).toThrow(CompactedError);
    s.compact(2); // already compacted: no-op
    expect(s.firstIndex()).toBe(5);
  });

  it('compact may not pass the snapshot (those entries could not be recovered)', () => {
    const s = new MemoryStorage();
    s.append(ents([1, 1, 1, 1]));
    s.createSnapshot(2, cs, new Uint8Array());
    expect(() => s.compact(3)).toThrow(/snapshot/);
    expect(() => s.compact(9)).toThrow(/invariant/);
  });

  it('createSnapshot records index, term, membership and data; it must move forward', () => {
    const s = new MemoryStorage();
    s.append(ents([1, 2, 2]));
    const snap = s.createSnapshot(2, cs, new Uint8Array([1, 2]));
    expect(snap.metadata).toEqual({ index: 2, term: 2, confState: cs });
    expect(s.snapshot()).toBe(snap);
    expect(s.initialState().confState).toEqual(cs);
    expect(() => s.createSnapshot(2, cs, new Uint8Array())).toThrow(/not newer/);
    expect(() => s.createSnapshot(4, cs, new Uint8Array())).toThrow(/past the last index/);
  });

  it('applySnapshot replaces the whole log; an older snapshot is ignored', () => {
    const s = new MemoryStorage();
    s.append(ents([1, 1, 1]));
    s.applySnapshot({ metadata: { index: 10, term: 4, confState: cs }, data: new Uint8Array([9]) });
    expect(s.firstIndex()).toBe(11);
    expect(s.lastIndex()).toBe(10);
    expect(s.term(10)).toBe(4);
    s.applySnapshot({ metadata: { index: 5, term: 2, confState: { voters: [], learners: [] } }, data: new Uint8Array() });
    expect(s.snapshot().metadata.index).toBe(10);
    s.append(ents([4, 5], 11));
    expect(s.lastIndex()).toBe(12);
  });

  it('clone is independent of the original', () => {
    const s = new MemoryStorage();
    s.append(ents([1, 1]));
    const c = s.clone();
    s.append(ents([2], 3));
    s.setHardState({ term: 2, vote: null, commit: 1 });
    expect(c.lastIndex()).toBe(2);
    expect(c.initialState().hardState.term).toBe(0);
  });
});
