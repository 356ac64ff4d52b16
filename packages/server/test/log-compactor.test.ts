// The log compactor (log-compactor.ts): the snapshot point is recorded at once, the in-memory log
// drops entries only after the disk compaction landed, a failed disk compaction drops nothing, and
// only one compaction runs at a time.
import { describe, expect, it } from 'vitest';
import { EntryType, MemoryStorage, type Entry } from '@quorumkv/raft';
import { LogCompactor } from '../src/log-compactor.js';
import { createLogger } from '../src/logger.js';

const limits = { snapshotEntries: 10, snapshotLogBytes: 1 << 30, snapshotKeepEntries: 2, snapshotKeepBytes: 1 << 30 };

function setup(entries = 20) {
  const mem = new MemoryStorage({ hardState: { term: 1, vote: '', commit: entries }, confState: { voters: ['n1'], learners: [] } });
  const es: Entry[] = [];
  for (let i = 1; i <= entries; i++) es.push({ index: i, term: 1, type: EntryType.Normal, data: new Uint8Array(1) });
  mem.append(es);
  const disk: Array<{ compactTo: number; done(): void; fail(): void }> = [];
  let scheduled = 0;
  const c = new LogCompactor(
    {
      mem,
      compactOnDisk: (compactTo) => new Promise<void>((resolve, reject) => disk.push({ compactTo, done: resolve, fail: () => reject(new Error('disk')) })),
      heldIndex: () => null,
      confState: () => ({ voters: ['n1'], learners: [] }),
      elapsedMs: () => 0,
      log: createLogger('n1', 'silent'),
      schedule: () => void scheduled++,
    },
    limits,
    { snapshotIndex: 0, appliedIndex: 0 },
  );
  return { mem, c, disk, scheduled: () => scheduled };
}

const tick = () => new Promise((r) => setTimeout(r, 0));

describe('LogCompactor', () => {
  it('records the snapshot point at once and drops entries in memory only after the disk part landed', async () => {
    const { mem, c, disk, scheduled } = setup();
    expect(c.noteWritten(20, 20)).toBe(true);
    c.step();
    expect(mem.snapshot().metadata.index).toBe(20);
    expect(disk.map((d) => d.compactTo)).toEqual([18]);
    expect(mem.firstIndex()).toBe(1); // not yet: the disk part is running
    c.step(); // one at a time: nothing new starts, nothing dropped
    expect(disk).toHaveLength(1);
    disk[0]!.done();
    await tick();
    expect(scheduled()).toBe(1);
    c.step();
    expect(mem.firstIndex()).toBe(19);
  });

  it('drops nothing in memory when the disk compaction failed', async () => {
    const { mem, c, disk } = setup();
    c.noteWritten(20, 20);
    c.step();
    disk[0]!.fail();
    await c.settled();
    await tick();
    c.step();
    expect(mem.firstIndex()).toBe(1);
  });

  it('a snapshot install forgets a running compaction once its disk part landed', async () => {
    const { mem, c, disk } = setup();
    c.noteWritten(20, 20);
    c.step();
    let reset = false;
    const r = c.resetForSnapshot().then(() => (reset = true));
    await tick();
    expect(reset).toBe(false);
    disk[0]!.done();
    await r;
    c.step();
    expect(mem.firstIndex()).toBe(1); // the forgotten compaction is not finished in memory
  });
});
