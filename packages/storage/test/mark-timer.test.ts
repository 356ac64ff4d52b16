// The high-water mark's confirmation runs on the timer the store is given (the whole-node
// simulation passes its simulated clock), never on the process's own setTimeout: a run that
// depended on when a real timer fired would not replay from its seed.
import { describe, expect, test } from 'vitest';
import { MemoryDisk, openMemoryNodeStore, type MarkTimer } from '@quorumkv/storage';

/** A timer that fires only when the test says so. */
function manualTimer(): MarkTimer & { due: Array<{ fn: () => void; delayMs: number }> } {
  const due: Array<{ fn: () => void; delayMs: number } | undefined> = [];
  return {
    due: due as Array<{ fn: () => void; delayMs: number }>,
    set: (fn, delayMs) => due.push({ fn, delayMs }) - 1,
    clear: (handle) => void (due[handle as number] = undefined),
  };
}

const realMs = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('mark confirmation timer', () => {
  test('the confirmation record is written when the given timer fires, not before', async () => {
    const disk = new MemoryDisk();
    const timer = manualTimer();
    const store = await openMemoryNodeStore(disk, { markTimer: timer, markConfirmDelayMs: 5 });
    await store.log.append({ entries: [{ index: 1, term: 1, type: 0, data: new Uint8Array([1]) }], hardState: { term: 1, vote: null, commit: 0 }, sync: true });
    expect(timer.due.map((t) => t.delayMs)).toEqual([5]);
    const afterAppend = disk.mark?.slice();
    await realMs(30); // a real 5 ms timer would have written the confirmation by now
    expect(disk.mark).toEqual(afterAppend);
    timer.due[0]!.fn();
    await realMs(0);
    expect(disk.mark).not.toEqual(afterAppend);
    await store.close();
  });
});
