// Deterministic simulation of the Raft core, 3-node clusters (the 5-node half of the default
// run is in sim-5nodes.test.ts, so the halves run in parallel where vitest has two workers). Each seed is one
// run of 400 faulty ticks (drops, delays, duplicates, reordering, partitions, crashes,
// compactions, leader transfers, membership changes, writes and ReadIndex reads) with every
// safety invariant checked as it runs, then a liveness phase. A failure prints the seed, the
// invariant, the trace and the `pnpm sim` command that replays it. See docs/simulation.md.
import { describe, expect, it } from 'vitest';
import { CHURN_PROFILE, CRASHY_PROFILE, expectSeedsPass, seedChunks } from '@quorumkv/testkit';

const SEEDS_3_NODES = 1200;
const STEPS = 400;
/** Generous: the machine may be busy with other test files; nothing here asserts speed. */
const TIMEOUT_MS = 180_000;

describe('simulation, 3 nodes, default fault mix', () => {
  it.each(seedChunks(1, SEEDS_3_NODES, 100))('seeds %i.. (%i seeds)', (from, count) => {
    const batch = expectSeedsPass({ from, count, nodes: 3, steps: STEPS });
    // The runs did real work: the schedule is not accidentally idle.
    expect(batch.totals.writesAcked).toBeGreaterThan(count * 20);
    expect(batch.totals.readsServed).toBeGreaterThan(count * 5);
    expect(batch.totals.crashes).toBeGreaterThan(count);
    expect(batch.totals.snapshotsInstalled).toBeGreaterThan(0);
    expect(batch.totals.confChanges).toBeGreaterThan(0);
  }, TIMEOUT_MS);
});

describe('simulation, 3 nodes, other fault mixes', () => {
  it('crashy profile (frequent crashes and restarts)', () => {
    expectSeedsPass({ from: 100_001, count: 100, nodes: 3, steps: STEPS, profile: CRASHY_PROFILE });
  }, TIMEOUT_MS);
  it('churn profile (many partitions and leader changes)', () => {
    expectSeedsPass({ from: 200_001, count: 100, nodes: 3, steps: STEPS, profile: CHURN_PROFILE });
  }, TIMEOUT_MS);
});
