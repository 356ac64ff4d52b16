// Deterministic simulation of the Raft core, 5-node clusters: the other half of the default
// run (see sim.test.ts).
import { describe, expect, it } from 'vitest';
import { CHURN_PROFILE, expectSeedsPass, seedChunks } from '@quorumkv/testkit';

const SEEDS_5_NODES = 800;
const STEPS = 400;
/** Generous: the machine may be busy with other test files; nothing here asserts speed. */
const TIMEOUT_MS = 180_000;

describe('simulation, 5 nodes, default fault mix', () => {
  it.each(seedChunks(1, SEEDS_5_NODES, 50))('seeds %i.. (%i seeds)', (from, count) => {
    const batch = expectSeedsPass({ from, count, nodes: 5, steps: STEPS });
    expect(batch.totals.writesAcked).toBeGreaterThan(count * 20);
    expect(batch.totals.readsServed).toBeGreaterThan(count * 5);
    expect(batch.totals.leaderTerms).toBeGreaterThan(count);
  }, TIMEOUT_MS);
});

describe('simulation, 5 nodes, other fault mixes', () => {
  it('churn profile (many partitions and leader changes)', () => {
    expectSeedsPass({ from: 300_001, count: 100, nodes: 5, steps: STEPS, profile: CHURN_PROFILE });
  }, TIMEOUT_MS);
});
