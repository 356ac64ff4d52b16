// The amnesia case (issue 14): a node loses its whole disk and restarts empty. With the
// incarnation rule — peers drop every message from a disk incarnation of a member other than the
// one the membership records; an empty node does not bootstrap, vote or campaign until it is
// removed, added back as a learner and promoted — seeded runs keep every committed entry. With
// the rule off (the planted host bug 'no-incarnation-rule': restart with the usual command line)
// the simulator finds committed entries that change, so the first test cannot pass vacuously.
import { describe, expect, it } from 'vitest';
import { AMNESIA_PROFILE, describeFailure, expectSeedsPass, replayCommand, runSeed } from '@quorumkv/testkit';
import type { SimResult } from '@quorumkv/testkit';

/** Seeds per cluster size with the rule on (modest: the unit project stays fast). */
const SEEDS_WITH_RULE = 40;
/** Named maximum: seeds tried with the rule off before the loss counts as not found. */
const MAX_SEEDS_TO_FIND_LOSS = 60;

describe('amnesia: a node loses its whole disk and restarts', () => {
  it.each([3, 5])('with the incarnation rule, %i nodes keep every committed entry', (nodes) => {
    const batch = expectSeedsPass({ from: 1, count: SEEDS_WITH_RULE, nodes, profile: AMNESIA_PROFILE });
    const t = batch.totals;
    console.log(
      `amnesia, ${nodes} nodes, seeds 1..${SEEDS_WITH_RULE}: ${t.wipes} wipes, ${t.replacements} replacements, ` +
        `${t.incarnationDrops} messages dropped by the rule, ${t.writesAcked} writes acked, ${t.crashes} crashes`,
    );
    // Not vacuous: disks were lost, the rule dropped messages, and the replacement procedure ran.
    expect(t.wipes).toBeGreaterThan(SEEDS_WITH_RULE / 2);
    expect(t.incarnationDrops).toBeGreaterThan(0);
    expect(t.replacements).toBeGreaterThan(0);
    expect(t.badMessagesRefused).toBe(0);
    expect(t.writesAcked).toBeGreaterThan(SEEDS_WITH_RULE * 20);
  }, 120_000);

  it('without the rule, the simulator finds a committed entry that changes (and the rule fixes that seed)', () => {
    let found: SimResult | undefined;
    for (let seed = 1; seed <= MAX_SEEDS_TO_FIND_LOSS && !found; seed++) {
      const r = runSeed({ seed, nodes: 3, profile: AMNESIA_PROFILE, bug: 'no-incarnation-rule' });
      if (!r.ok && r.invariant === 'committed-durability') found = r;
    }
    expect(found, `no committed entry lost in ${MAX_SEEDS_TO_FIND_LOSS} seeds without the incarnation rule`).toBeDefined();
    if (!found) return;
    console.log(`amnesia without the incarnation rule: seed ${found.seed}: ${found.message}\nreplay: ${replayCommand(found.run)}`);
    const withRule = runSeed({ seed: found.seed, nodes: 3, profile: AMNESIA_PROFILE });
    expect(withRule.ok, withRule.ok ? '' : describeFailure(withRule)).toBe(true);
  }, 120_000);
});
