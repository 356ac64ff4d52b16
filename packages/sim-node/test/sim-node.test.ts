// The production node under deterministic simulation (docs/simulation.md, "The whole node").
// A thousand seeds of 30 simulated seconds must pass, each doing real work; the same seed must give
// the same run; and each planted host bug must be found (the test fails when a bug goes unnoticed,
// i.e. when the simulation loses its teeth). SIM_NODE_SEEDS / SIM_NODE_FIRST_SEED widen or move
// the seed range, SIM_NODE_WORKERS sets the worker threads (pnpm sim:node is the long run).
import { describe, expect, test } from 'vitest';
import { HOST_PLANTS, type HostPlant } from '@quorumkv/server';
import { builtWorkerScript, huntPlant, runSeedPool, runSimNode, type SimNodeResult } from '../src/index.js';

const SEEDS = Number(process.env['SIM_NODE_SEEDS'] ?? 1000);
const FIRST = Number(process.env['SIM_NODE_FIRST_SEED'] ?? 1);
/** Worker threads for the seed run (CI has 2 cores; vitest runs one unit file at a time there). */
const WORKERS = Number(process.env['SIM_NODE_WORKERS'] ?? 2);
/** Simulated seconds of faults per seed in the determinism test and most hunts. */
const SHORT_CHAOS_SECONDS = 2;
/**
 * The seed run's bound: ~70-95 s on two idle cores, but many times that when the machine is
 * shared (15 minutes did not suffice at a load average of 30 on 2 cores).
 */
const SEED_RUN_TIMEOUT_MS = 45 * 60_000;
/** What every seed of the seed run must do to count (the issue: real work per seed). */
const SEED_RUN = { chaosSeconds: 30, minSimSeconds: 30, minCrashes: 1, minPartitions: 1, minOps: 200 };

function explain(r: SimNodeResult, chaosSeconds = SHORT_CHAOS_SECONDS): string {
  return `seed ${r.seed} failed: ${r.failure?.message}\nreplay: pnpm sim:node --seed ${r.seed} --seconds ${chaosSeconds}\n${r.trace.slice(-25).join('\n')}`;
}

/**
 * The seeds on worker threads when the built worker (dist/) runs the same code as these sources
 * (the first seed must give the same digest here and there), else in this thread.
 */
async function* seedRun(): AsyncGenerator<SimNodeResult> {
  const here = await runSimNode({ seed: FIRST, chaosSeconds: SEED_RUN.chaosSeconds });
  yield here;
  if (SEEDS === 1) return;
  const script = builtWorkerScript();
  let useWorkers = WORKERS > 1 && script !== undefined;
  if (useWorkers) {
    const probe = runSeedPool({ first: FIRST, count: 1, workers: 1, chaosSeconds: SEED_RUN.chaosSeconds, workerScript: script! });
    for await (const r of probe) useWorkers = r.digest === here.digest;
    if (!useWorkers) console.warn('sim-node: dist/ runs other code than src/ (run pnpm build); running the seeds in this thread');
  }
  if (useWorkers) {
    yield* runSeedPool({ first: FIRST + 1, count: SEEDS - 1, workers: WORKERS, chaosSeconds: SEED_RUN.chaosSeconds, workerScript: script! });
  } else {
    for (let seed = FIRST + 1; seed < FIRST + SEEDS; seed++) yield await runSimNode({ seed, chaosSeconds: SEED_RUN.chaosSeconds });
  }
}

describe('whole-node simulation', () => {
  test('the same seed gives the same history, trace and final state', async () => {
    const a = await runSimNode({ seed: 4242, chaosSeconds: SHORT_CHAOS_SECONDS });
    const b = await runSimNode({ seed: 4242, chaosSeconds: SHORT_CHAOS_SECONDS });
    expect(a.ok, explain(a)).toBe(true);
    expect(b.digest).toBe(a.digest);
    expect(b.stats).toEqual(a.stats);
    expect(b.trace).toEqual(a.trace);
    // and another seed gives another run
    const c = await runSimNode({ seed: 4243, chaosSeconds: SHORT_CHAOS_SECONDS });
    expect(c.digest).not.toBe(a.digest);
  });

  test(`${SEEDS} seeds from ${FIRST} pass every check, each with ${SEED_RUN.minSimSeconds}+ simulated s, a crash, a partition and ${SEED_RUN.minOps}+ client operations`, async () => {
    const t0 = performance.now();
    let simSeconds = 0;
    let ops = 0;
    let seen = 0;
    const min = { ops: Infinity, crashes: Infinity, partitions: Infinity };
    for await (const r of seedRun()) {
      expect(r.ok, explain(r, SEED_RUN.chaosSeconds)).toBe(true);
      expect(r.stats.simSeconds, `seed ${r.seed}`).toBeGreaterThanOrEqual(SEED_RUN.minSimSeconds);
      expect(r.stats.crashes, `seed ${r.seed}`).toBeGreaterThanOrEqual(SEED_RUN.minCrashes);
      expect(r.stats.partitions, `seed ${r.seed}`).toBeGreaterThanOrEqual(SEED_RUN.minPartitions);
      expect(r.stats.ops, `seed ${r.seed}`).toBeGreaterThanOrEqual(SEED_RUN.minOps);
      seen++;
      simSeconds += r.stats.simSeconds;
      ops += r.stats.ops;
      min.ops = Math.min(min.ops, r.stats.ops);
      min.crashes = Math.min(min.crashes, r.stats.crashes);
      min.partitions = Math.min(min.partitions, r.stats.partitions);
    }
    expect(seen).toBe(SEEDS);
    const wall = (performance.now() - t0) / 1000;
    console.log(
      `sim-node: ${SEEDS} seeds, ${simSeconds.toFixed(0)} simulated s in ${wall.toFixed(1)} s (${(simSeconds / wall).toFixed(0)}x real time), ${ops} client ops; per seed at least ${min.ops} ops, ${min.crashes} crashes, ${min.partitions} partitions`,
    );
  }, SEED_RUN_TIMEOUT_MS);
});

// Replacements during crashes and partitions. Seed 200118 found the rejoin gap (a member down
// while two others were replaced never rejoined; docs/simulation.md, "Findings of the whole-node
// simulation") under the fault mix of its time; the lighter load, pauses and degraded disks
// changed every seed's schedule since, and seed 200123 is one of today's with two replacements
// during faults (5 nodes). Opt-in: SIM_NODE_LONG=1. test/cluster/rejoin-after-replace.test.ts is
// the default run's regression test for the gap itself.
describe.runIf(process.env['SIM_NODE_LONG'] === '1')('replacements during faults', () => {
  test('seed 200123: two replacements during faults, every member back and in step', async () => {
    const r = await runSimNode({ seed: 200123, chaosSeconds: 30, faultsDuringReplacement: true });
    expect(r.ok, `${r.failure?.message}\nreplay: pnpm sim:node --seed 200123 --seeds 1 --faults-during-replacement\n${r.trace.slice(-25).join('\n')}`).toBe(true);
    expect(r.stats.replacements).toBeGreaterThanOrEqual(2);
  }, 300_000);
});

/** Per planted bug: the check expected to fire, and the faults per seed its hunt uses. */
const HUNTS: Record<HostPlant, { checks: string[]; chaosSeconds: number; maxSeeds: number }> = {
  'answer-before-commit': { checks: ['acked-write-lost', 'linearizability', 'exactly-once'], chaosSeconds: 2, maxSeeds: 10 },
  'send-before-persist-on-term-change': { checks: ['election-safety', 'leader-completeness', 'committed-durability', 'acked-write-lost', 'linearizability', 'event-storm', 'liveness'], chaosSeconds: 30, maxSeeds: 30 },
  'apply-before-persist': { checks: ['apply-before-persist'], chaosSeconds: 2, maxSeeds: 5 },
  'read-before-applied': { checks: ['linearizability'], chaosSeconds: 30, maxSeeds: 10 },
  'session-dedup-off': { checks: ['exactly-once'], chaosSeconds: 30, maxSeeds: 30 },
  // The storage snapshot writer refuses a stream without its trailer, so the node stops (host-fatal)
  // instead of installing part of a state; a state-hash or linearizability failure would do too.
  'partial-snapshot-install': { checks: ['host-fatal', 'state-hash', 'linearizability', 'acked-write-lost'], chaosSeconds: 30, maxSeeds: 10 },
};

describe('planted host bugs are found', () => {
  for (const plant of HOST_PLANTS) {
    const h = HUNTS[plant];
    test(`${plant} (at most ${h.maxSeeds} seeds of ${h.chaosSeconds} s)`, async () => {
      const r = await huntPlant(plant, { firstSeed: FIRST, maxSeeds: h.maxSeeds, chaosSeconds: h.chaosSeconds });
      expect(r.found, `${plant} was not found in ${r.seedsRun} seeds from ${FIRST}`).toBeDefined();
      expect(h.checks).toContain(r.found!.failure!.check);
      console.log(`sim-node: planted ${plant} found by seed ${r.found!.seed} (${r.seedsRun} seed(s)): ${r.found!.failure!.check}`);
    }, 300_000);
  }
});
