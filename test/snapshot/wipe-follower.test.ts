// A follower whose data directory is wiped while the cluster's log is compacted is replaced the
// documented way (member remove; start empty without the founding flag; member add --learner;
// promote): it catches up through a snapshot (InstallSnapshot stream), serves exactly the
// leader's state, and is promoted back to a voter.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ProcessCluster, waitFor } from '../harness/cluster.js';
import { SMALL_SNAPSHOT_FLAGS, diffKeySpaces, eventsStartingWith, fill, leaderId, metricValue, promote, rejoinWiped, stopWipeAndOutrun, trickle, waitForEvent } from './support.js';

const KEYS = 400;
const VALUE_BYTES = 4096;
/** Keys also checked one by one with GET ?consistency=stale on the follower. */
const SPOT_CHECKS = 50;

describe('wiped follower', () => {
  let cluster: ProcessCluster;

  beforeAll(async () => {
    cluster = await ProcessCluster.start({ name: 'qkv-snap-wipe', tickMs: 20, extraArgs: [...SMALL_SNAPSHOT_FLAGS] });
  });
  afterAll(async () => {
    await cluster?.teardown();
  });

  it('is replaced: catches up through a snapshot as a learner, serves identical state, is promoted', async () => {
    await cluster.guard(async () => {
      const leader = await leaderId(cluster);
      const follower = cluster.nodes.find((n) => n.id !== leader)!.id;
      const written = await fill(cluster, () => leader, 'k', KEYS, VALUE_BYTES);
      // The leader compacted its log: entries before the snapshot point are gone.
      await waitForEvent(cluster.node(leader).logPath, 'log compacted');

      // Away long enough that the leader compacted past it, with more writes meanwhile.
      await stopWipeAndOutrun(cluster, leader, follower);
      for (const [k, v] of await fill(cluster, () => leader, 'late', 100, VALUE_BYTES)) written.set(k, v);
      // And writes go on while it catches up (a cluster in service).
      const load = trickle(cluster, () => leader);
      await rejoinWiped(cluster, follower);

      const leaderNode = cluster.node(leader);
      const followerNode = cluster.node(follower);
      await waitFor('the follower to install a snapshot', async () => ((await metricValue(followerNode.port, 'qkv_snapshots_installed_total')) >= 1 ? true : undefined), 30_000);
      expect(await metricValue(leaderNode.port, 'qkv_snapshots_sent_total', 'outcome="ok"')).toBeGreaterThanOrEqual(1);
      expect(await metricValue(leaderNode.port, 'qkv_snapshot_sent_bytes_total')).toBeGreaterThan(KEYS * VALUE_BYTES * 0.9);
      expect(eventsStartingWith(followerNode.logPath, 'snapshot installed (atomic swap)').length).toBeGreaterThanOrEqual(1);
      const finished = eventsStartingWith(leaderNode.logPath, 'snapshot transfer finished').filter((e) => e.peer === follower);
      expect(finished.length).toBeGreaterThanOrEqual(1);

      await load.stop();
      expect(load.acked.length).toBeGreaterThan(0);
      const sts = await cluster.waitConverged(30_000);
      expect(new Set(sts.map((s) => s.appliedHash)).size).toBe(1);

      // The follower serves the same state: every key and revision (stale range reads), every
      // written value, and a sample of single-key stale reads.
      expect(await diffKeySpaces(cluster, leader, follower)).toEqual([]);
      const onFollower = await cluster.list(follower, '', 'stale');
      for (const [k, v] of written) expect(onFollower.get(k)?.value, k).toBe(v);
      for (const a of load.acked) expect(onFollower.get(a.key)?.value, a.key).toBe(a.value);
      for (const [k, v] of [...written].slice(0, SPOT_CHECKS)) {
        const r = await cluster.get(follower, k, 'stale');
        expect(r.status).toBe(200);
        expect(r.body.toString('utf8')).toBe(v);
      }
      await promote(cluster, follower);
      const st = await waitFor('the replacement to be a voter', async () => {
        const s = await cluster.status(leader);
        return s?.members.find((m) => m.id === follower)?.voter ? s : undefined;
      });
      expect(st.members.map((m) => m.id).sort()).toEqual(['n1', 'n2', 'n3']);
    })();
  }, 90_000);
});
