// The simulated world's parts on their own: a paused node runs nothing until it resumes (then in
// arrival order), a timer cleared during a pause stays cleared, microtasks settle between events,
// and a power failure decides every write on its way (landed or lost) and may tear the mark record.
import { describe, expect, test } from 'vitest';
import { MemoryDisk, openMemoryNodeStore } from '@quorumkv/storage';
import { Prng } from '@quorumkv/testkit';
import { SimDisk } from '../src/sim-disk.js';
import { SimScheduler, type Liveness } from '../src/scheduler.js';

const noop = () => undefined;

function pausable(): Liveness & { resumeAt: number } {
  return { resumeAt: 0, alive: () => true, resumeAtMs() { return this.resumeAt; } };
}

describe('SimScheduler', () => {
  test('a paused owner runs its timers when it resumes, in the order they were due', async () => {
    const sched = new SimScheduler();
    const owner = pausable();
    const clock = sched.clockFor(owner);
    const ran: string[] = [];
    clock.setTimer(10, () => ran.push(`a@${sched.nowMs()}`));
    clock.setTimer(20, () => ran.push(`b@${sched.nowMs()}`));
    clock.setTimer(500, () => ran.push(`c@${sched.nowMs()}`));
    owner.resumeAt = 300; // paused from 0 to 300
    await sched.runUntil(1_000, noop);
    expect(ran).toEqual(['a@300', 'b@300', 'c@500']);
  });

  test('a timer cleared while a pause holds it does not fire', async () => {
    const sched = new SimScheduler();
    const owner = pausable();
    const clock = sched.clockFor(owner);
    const ran: string[] = [];
    owner.resumeAt = 100;
    const t = clock.setTimer(10, () => ran.push('cleared one'));
    sched.after(50, () => clock.clearTimer(t)); // after it came due, while the pause holds it
    await sched.runUntil(1_000, noop);
    expect(ran).toEqual([]);
  });

  test('an event sees the whole promise chain of the event before it settled', async () => {
    const sched = new SimScheduler();
    let depth = 0;
    const chain = async (n: number): Promise<void> => {
      for (let i = 0; i < n; i++) await Promise.resolve(); // a long chain of awaits
      depth = n;
    };
    const seen: number[] = [];
    sched.after(1, () => void chain(200));
    sched.after(1, () => seen.push(depth));
    await sched.runUntil(10, noop);
    expect(seen).toEqual([200]);
  });
});

describe('SimDisk power failure', () => {
  /** Appends entry 1 synced, then starts entry 2 (on its way), and fails the power. */
  async function failWithAppendOnItsWay(seed: number) {
    const sched = new SimScheduler();
    const disk = new SimDisk(new MemoryDisk(), sched, new Prng(seed));
    const owner = { alive: () => true };
    const store = disk.wrap(await openMemoryNodeStore(disk.memory), owner);
    const entry = (index: number) => ({ index, term: 1, type: 0, data: new Uint8Array([index]) });
    const first = store.log.append({ entries: [entry(1)], hardState: { term: 1, vote: null, commit: 0 }, sync: true });
    await sched.runUntil(1_000, noop);
    await first;
    void store.log.append({ entries: [entry(2)], sync: true });
    expect(disk.appending()).toBe(true);
    const f = await disk.powerFailure();
    const after = await openMemoryNodeStore(disk.memory);
    return { f, lastIndex: after.log.lastIndex(), mark: after.log.highWaterMark().index };
  }

  test('a write on its way either lands or never happens, and a torn mark record falls back to the other slot', async () => {
    const outcomes = new Set<string>();
    for (let seed = 1; seed <= 40; seed++) {
      const { f, lastIndex, mark } = await failWithAppendOnItsWay(seed);
      expect(f.inFlightLanded + f.inFlightLost).toBe(1);
      // Landed: entry 2 is in the log. Lost: the log ends at the synced entry 1, which survives.
      expect(lastIndex).toBe(f.inFlightLanded === 1 ? 2 : 1);
      // The mark never promises more than the log holds; a torn record leaves the one before.
      expect(mark).toBeLessThanOrEqual(lastIndex);
      expect(mark).toBeGreaterThanOrEqual(1);
      outcomes.add(`${f.inFlightLanded}/${f.markTorn}`);
    }
    // Every outcome happens: lost, landed whole, landed with a torn mark record.
    expect([...outcomes].sort()).toEqual(['0/false', '1/false', '1/true']);
  });
});
