// The byte limit on log entries kept behind a snapshot (--snapshot-keep-bytes): the core keeps its
// log in memory, so with large values a count of entries alone let it grow to gigabytes.
import { describe, expect, it } from 'vitest';
import { EntryType, MemoryStorage } from '@quorumkv/raft';
import { keptByBytesFrom } from '../src/compaction.js';

describe('log kept behind a snapshot', () => {
  it('keptByBytesFrom: the entries kept behind the applied index fit in the byte limit', () => {
    const mem = new MemoryStorage();
    // Entries 1..10 of 100 bytes each.
    mem.append(Array.from({ length: 10 }, (_, i) => ({ index: i + 1, term: 1, type: EntryType.Normal, data: new Uint8Array(100) })));
    expect(keptByBytesFrom(mem, 10, 1000)).toBe(0); // everything fits: the byte limit compacts nothing
    expect(keptByBytesFrom(mem, 10, 350)).toBe(7); // keeps 8, 9, 10
    expect(keptByBytesFrom(mem, 10, 0)).toBe(10);
    expect(keptByBytesFrom(mem, 6, 250)).toBe(4); // keeps 5, 6 behind applied 6
  });
});
