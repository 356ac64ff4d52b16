// Compaction as a decision (src/compaction.ts): the host loop asks between two Readys and carries
// out what it is told. These tests drive the decision against the core's in-memory log.
import { describe, expect, it } from 'vitest';
import { EntryType, MemoryStorage } from '@quorumkv/raft';
import { CompactionPolicy } from '../src/compaction.js';

const LIMITS = { snapshotEntries: 100, snapshotLogBytes: 1_000_000, snapshotKeepEntries: 20, snapshotKeepBytes: 1_000_000 };

/** A core log holding entries 1..n of `bytes` bytes each. */
function logOf(n: number, bytes = 10): MemoryStorage {
  const mem = new MemoryStorage();
  mem.append(Array.from({ length: n }, (_, i) => ({ index: i + 1, term: 1, type: EntryType.Normal, data: new Uint8Array(bytes) })));
  return mem;
}

describe('compaction decision', () => {
  it('is due after snapshotEntries written entries, and keeps snapshotKeepEntries behind the snapshot point', () => {
    const mem = logOf(150);
    const p = new CompactionPolicy(LIMITS, { snapshotIndex: 0, appliedIndex: 0 });
    expect(p.noteWritten(99, 990)).toBe(false);
    expect(p.decide(mem, null)).toBeNull();
    expect(p.noteWritten(120, 210)).toBe(true);
    expect(p.decide(mem, null)).toEqual({ snapshotIndex: 120, compactTo: 100 });
    // Counted from the new snapshot point: not due again until 100 more.
    expect(p.noteWritten(150, 300)).toBe(false);
    expect(p.decide(mem, null)).toBeNull();
  });

  it('is due after snapshotLogBytes of applied data, whatever the count', () => {
    const mem = logOf(10, 400);
    const p = new CompactionPolicy({ ...LIMITS, snapshotLogBytes: 1000, snapshotKeepEntries: 2 }, { snapshotIndex: 0, appliedIndex: 0 });
    expect(p.noteWritten(3, 1200)).toBe(true);
    expect(p.decide(mem, null)).toEqual({ snapshotIndex: 3, compactTo: 1 });
  });

  it('never compacts past a snapshot still being sent', () => {
    const mem = logOf(150);
    const p = new CompactionPolicy(LIMITS, { snapshotIndex: 0, appliedIndex: 0 });
    p.noteWritten(150, 0);
    expect(p.decide(mem, 40)).toEqual({ snapshotIndex: 150, compactTo: 40 });
  });

  it('keeps fewer entries when they hold more than snapshotKeepBytes', () => {
    const mem = logOf(150, 100);
    const p = new CompactionPolicy({ ...LIMITS, snapshotKeepBytes: 550 }, { snapshotIndex: 0, appliedIndex: 0 });
    p.noteWritten(150, 0);
    expect(p.decide(mem, null)).toEqual({ snapshotIndex: 150, compactTo: 145 }); // keeps 146..150
  });

  it('counts only what is written: the decision never records a snapshot point past the written applied index', () => {
    const mem = logOf(500);
    const p = new CompactionPolicy(LIMITS, { snapshotIndex: 0, appliedIndex: 0 });
    p.noteWritten(130, 0);
    // The core's log runs to 500 (committed, maybe computed) but only 130 is applied and written.
    expect(p.decide(mem, null)?.snapshotIndex).toBe(130);
  });

  it('after a snapshot install counts from the installed index; a snapshot point already past the applied index is not recorded again', () => {
    const mem = logOf(300);
    const p = new CompactionPolicy(LIMITS, { snapshotIndex: 0, appliedIndex: 0 });
    p.reset(250);
    expect(p.noteWritten(300, 0)).toBe(false);
    const q = new CompactionPolicy(LIMITS, { snapshotIndex: 0, appliedIndex: 200 });
    mem.createSnapshot(220, { voters: ['n1'], learners: [] }, new Uint8Array(0));
    expect(q.decide(mem, null)).toBeNull(); // 200 <= the recorded 220
    expect(q.isDue()).toBe(false);
  });
});
