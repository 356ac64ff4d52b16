// Crashes under load: kill -9 of the leader while several writers run, and kill -9 of all three
// nodes at once. Every write the cluster acknowledged must survive with its value and revision
// (a write is acknowledged only after a majority has it on disk), and restarted nodes catch up.
import { afterEach, describe, expect, it } from 'vitest';
import { openNodeStore } from '@quorumkv/storage';
import { ProcessCluster, WriteLoad, verifyAcked, type AckedWrite } from '../harness/cluster.js';

const TICK_MS = 20;
const ELECTION_TICKS = 10;
/** The longest randomized election timeout (the core randomizes in [1x, 2x) election ticks). */
const MAX_ELECTION_TIMEOUT_MS = 2 * ELECTION_TICKS * TICK_MS;
/**
 * Bound for "a new leader within a couple of election timeouts": generous (25 timeouts) because a
 * starved 2-core CI box delays timers; the observed time is printed (typically ~0.5 s).
 */
const NEW_LEADER_BOUND_MS = 25 * MAX_ELECTION_TIMEOUT_MS;
const WRITERS = 8;

function assertUniqueRevisions(acked: AckedWrite[]): void {
  const revs = new Set(acked.map((a) => a.revision));
  expect(revs.size, 'two acknowledged writes share a revision').toBe(acked.length);
}

describe('crash recovery with real processes', () => {
  let cluster: ProcessCluster | undefined;
  afterEach(async () => {
    await cluster?.teardown();
    cluster = undefined;
  });

  it('kill -9 of the leader under load: new leader soon, no acknowledged write lost, old leader catches up', async () => {
    const c = (cluster = await ProcessCluster.start({ name: 'qkv-kill-leader', tickMs: TICK_MS, electionTicks: ELECTION_TICKS }));
    await c.guard(async () => {
      const first = await c.waitForLeader();
      const load = new WriteLoad(c, { writers: WRITERS, targets: () => c.liveIds(), prefix: 'kl/', maxWritesPerWriter: 5000 }).start();
      try {
        await load.waitAcked(150);
        const killedAtMs = Date.now();
        const ackedBeforeKill = load.acked.length;
        await c.kill9(first.id);
        const next = await c.waitForLeader({ exclude: first.id, minTerm: first.term, timeoutMs: NEW_LEADER_BOUND_MS });
        const electedAfterMs = Date.now() - killedAtMs;
        console.info(`kill -9 ${first.id} (term ${first.term}): ${next.id} leads term ${next.term} after ${electedAfterMs} ms (observed)`);
        expect(next.id).not.toBe(first.id);
        expect(next.term).toBeGreaterThan(first.term);
        // The cluster carries on with two nodes...
        await load.waitAcked(ackedBeforeKill + 150);
        // ...and the old leader, restarted on its data directory, rejoins while writes continue.
        await c.restart(first.id);
        const ackedAtRestart = load.acked.length;
        await load.waitAcked(ackedAtRestart + 50);
      } finally {
        await load.stop();
      }
      assertUniqueRevisions(load.acked);
      expect(load.acked.length).toBeGreaterThanOrEqual(350);
      const leader = await c.waitForLeader();
      expect(await verifyAcked(c, leader.id, load.acked, 'linearizable')).toEqual([]);
      // The restarted node applied the same log: same hash, and every acknowledged write locally.
      const sts = await c.waitConverged(20_000);
      expect(sts).toHaveLength(3);
      expect(new Set(sts.map((s) => s.appliedHash)).size).toBe(1);
      expect(await verifyAcked(c, first.id, load.acked, 'stale')).toEqual([]);
    })();
  }, 60_000);

  it('kill -9 of all three nodes at once under load: after restart every acknowledged write is present', async () => {
    const c = (cluster = await ProcessCluster.start({ name: 'qkv-kill-all', tickMs: TICK_MS, electionTicks: ELECTION_TICKS }));
    await c.guard(async () => {
      await c.waitForLeader();
      const load = new WriteLoad(c, { writers: WRITERS, targets: () => c.liveIds(), prefix: 'ka/', maxWritesPerWriter: 5000 }).start();
      let ackedAtKill: number;
      try {
        await load.waitAcked(200);
        await c.kill9All();
        ackedAtKill = load.acked.length;
      } finally {
        await load.stop();
      }
      // No acknowledgement can arrive from a dead cluster.
      expect(load.acked.length).toBe(ackedAtKill);
      assertUniqueRevisions(load.acked);
      for (const n of c.nodes) expect(n.proc).toBeNull();

      await Promise.all(c.nodes.map((n) => c.restart(n.id)));
      const leader = await c.waitForLeader();
      expect(await verifyAcked(c, leader.id, load.acked, 'linearizable')).toEqual([]);
      const sts = await c.waitConverged(20_000);
      expect(new Set(sts.map((s) => s.appliedHash)).size).toBe(1);
      for (const n of c.nodes) expect(await verifyAcked(c, n.id, load.acked, 'stale')).toEqual([]);
      // And the restarted cluster takes new writes.
      for (const n of c.nodes) expect((await c.put(n.id, `after-restart-${n.id}`, 'ok')).status).toBe(200);
    })();
  }, 60_000);

  it('a store whose commit index trails its applied index (commit-only changes are not written) restarts with everything', async () => {
    const c = (cluster = await ProcessCluster.start({ name: 'qkv-commit-lag', tickMs: TICK_MS, electionTicks: ELECTION_TICKS }));
    await c.guard(async () => {
      const leader = await c.waitForLeader();
      for (let i = 0; i < 20; i++) expect((await c.put(leader.id, `lag/${i}`, `v${i}`)).status).toBe(200);
      const before = await c.waitConverged(20_000);
      const leaderAtKill = before.find((st) => st.role === 'leader')!.id;
      await c.kill9All();
      // On the leader, the last entry's commit was a commit-only change (it wrote that entry
      // before any follower acknowledged it, and no entry followed), which is kept in memory: on
      // its disk the commit index is behind what was applied. A follower may have written the
      // same commit index as its last entry (an append that arrived after the commit, or a
      // heartbeat coalesced into the same Ready, carries both), so only the leader is certain.
      for (const n of c.nodes) {
        const store = await openNodeStore(n.dataDir);
        try {
          const { hardState } = await store.log.load();
          expect(store.kv.appliedIndex(), n.id).toBe(before[0]!.appliedIndex);
          if (n.id === leaderAtKill) expect(hardState.commit, n.id).toBeLessThan(store.kv.appliedIndex());
          else expect(hardState.commit, n.id).toBeLessThanOrEqual(store.kv.appliedIndex());
        } finally {
          await store.close();
        }
      }
      await Promise.all(c.nodes.map((n) => c.restart(n.id)));
      const next = await c.waitForLeader();
      const after = await c.waitConverged(20_000);
      expect(after.every((s) => s.appliedIndex >= before[0]!.appliedIndex)).toBe(true);
      const items = await c.list(next.id, 'lag/');
      expect(items.size).toBe(20);
      for (let i = 0; i < 20; i++) expect(items.get(`lag/${i}`)?.value).toBe(`v${i}`);
      expect((await c.put(next.id, 'lag/after', 'ok')).status).toBe(200);
    })();
  }, 60_000);
});
