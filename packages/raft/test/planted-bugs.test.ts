// The simulation has teeth: with a deliberately planted bug, some seed breaks an invariant
// within a small bound, and that same seed passes without the bug. Three bugs are planted in
// the core (config.plantedBug); 'persist-after-send' is a host bug planted in the simulated host
// (messages leave before the Ready is durable; a crash loses the un-synced write).
//
// Each bug is hunted under the fault mix that exposes it (a scenario profile); the invariants
// are the same as in the normal runs. The number of seeds each needed is printed and recorded
// in docs/simulation.md.
import { describe, expect, it } from 'vitest';
import { CRASHY_PROFILE, DEFAULT_PROFILE, FIGURE8_PROFILE, describeFailure, runSeed } from '@quorumkv/testkit';
import type { InvariantName, SimBug, SimProfile, SimResult } from '@quorumkv/testkit';

/** Named maximum: seeds tried before a planted bug counts as missed. */
const MAX_SEEDS_TO_CATCH = 150;
const STEPS = 400;

interface Hunt {
  bug: SimBug;
  profile: SimProfile;
  nodes: number;
  /** The invariants this bug may break (whichever check trips first). */
  expected: InvariantName[];
}

const HUNTS: Hunt[] = [
  // Figure 8 of the Raft paper: an old-term entry counted as committed is later overwritten.
  { bug: 'commit-previous-term', profile: FIGURE8_PROFILE, nodes: 3, expected: ['committed-durability', 'state-machine-safety', 'read-linearizability'] },
  { bug: 'double-vote', profile: DEFAULT_PROFILE, nodes: 3, expected: ['election-safety'] },
  // A stale node wins an election and overwrites committed entries.
  { bug: 'no-log-check-vote', profile: DEFAULT_PROFILE, nodes: 3, expected: ['committed-durability', 'state-machine-safety', 'log-matching', 'read-linearizability'] },
  // A leader that answers ReadIndex without a heartbeat round may have been deposed: stale reads.
  { bug: 'stale-read', profile: DEFAULT_PROFILE, nodes: 3, expected: ['read-linearizability'] },
  // A forgotten vote gives two leaders a term; a forgotten append loses a committed entry.
  { bug: 'persist-after-send', profile: CRASHY_PROFILE, nodes: 3, expected: ['election-safety', 'committed-durability', 'state-machine-safety', 'log-matching', 'read-linearizability'] },
];

/** Runs seeds 1, 2, … until one breaks a safety invariant; liveness failures do not count. */
function hunt(h: Hunt): { seedsTried: number; caught: SimResult | undefined } {
  for (let seed = 1; seed <= MAX_SEEDS_TO_CATCH; seed++) {
    const r = runSeed({ seed, nodes: h.nodes, steps: STEPS, profile: h.profile, bug: h.bug });
    if (!r.ok && r.invariant !== 'liveness') return { seedsTried: seed, caught: r };
  }
  return { seedsTried: MAX_SEEDS_TO_CATCH, caught: undefined };
}

describe('planted bugs are caught by the simulation', () => {
  it.each(HUNTS.map((h) => [h.bug, h] as const))('%s', (_name, h) => {
    const { seedsTried, caught } = hunt(h);
    expect(caught, `planted bug ${h.bug} not caught in ${MAX_SEEDS_TO_CATCH} seeds (profile ${h.profile.name})`).toBeDefined();
    if (!caught) return;
    console.log(`planted bug ${h.bug}: caught after ${seedsTried} seed(s) (${h.nodes} nodes, profile ${h.profile.name}) as ${caught.invariant}: ${caught.message}`);
    expect(h.expected, describeFailure(caught)).toContain(caught.invariant);
    // The same seed without the bug is clean: the violation is the bug's doing.
    const clean = runSeed({ seed: caught.seed, nodes: h.nodes, steps: STEPS, profile: h.profile });
    expect(clean.ok, clean.ok ? '' : describeFailure(clean)).toBe(true);
  }, 180_000);
});
