// A follower whose data directory is wiped while the cluster's log is compacted catches up through
// a snapshot (InstallSnapshot stream) and then serves exactly the leader's state.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ProcessCluster, waitFor } from '../harness/cluster.js';
import { SMALL_SNAPSHOT_FLAGS, eventsStartingWith, fill, leaderId, metricValue, stopAndWipe, waitForEvent } from './support.js';

const KEYS = 1500;
const VALUE_BYTES = 1024;

describe('wiped follower', () => {
  let cluster: ProcessCluster;

  beforeAll(async () => {
    cluster = await ProcessCluster.start({ name: 'qkv-snap-wipe', tickMs: 20, extraArgs: [...SMALL_SNAPSHOT_FLAGS] });
  });
  afterAll(async () => {
    await cluster?.teardown();
  });

  it('catches up through a snapshot and then serves identical state', async () => {
    await cluster.guard(async () => {
      const leader = await leaderId(cluster);
      const follower = cluster.nodes.find((n) => n.id !== leader)!.id;
      let t = Date.now();
      const written = await fill(cluster, () => leader, "k", KEYS, VALUE_BYTES);
      console.log("fill ms", Date.now() - t); t = Date.now();
      // The leader compacted its log: entries before the snapshot point are gone.
      await waitForEvent(cluster.node(leader).logPath, 'log compacted');

      await stopAndWipe(cluster, follower);
      // More writes while the follower is away, so the snapshot is not the only thing it needs.
      for (const [k, v] of await fill(cluster, () => leader, 'late', 300, VALUE_BYTES)) written.set(k, v);
      console.log("wipe+late ms", Date.now() - t); t = Date.now();
      await cluster.restart(follower);

      const leaderNode = cluster.node(leader);
      const followerNode = cluster.node(follower);
      await waitFor('the follower to install a snapshot', async () => ((await metricValue(followerNode.port, 'qkv_snapshots_installed_total')) >= 1 ? true : undefined), 30_000);
      expect(await metricValue(leaderNode.port, 'qkv_snapshots_sent_total', 'outcome="ok"')).toBeGreaterThanOrEqual(1);
      expect(await metricValue(leaderNode.port, 'qkv_snapshot_bytes_sent_total')).toBeGreaterThan(KEYS * VALUE_BYTES * 0.9);
      expect(eventsStartingWith(followerNode.logPath, 'snapshot installed (atomic swap)').length).toBeGreaterThanOrEqual(1);
      const finished = eventsStartingWith(leaderNode.logPath, 'snapshot transfer finished').filter((e) => e.peer === follower);
      expect(finished.length).toBeGreaterThanOrEqual(1);

      console.log("restart+install ms", Date.now() - t); t = Date.now();
      const sts = await cluster.waitConverged(30_000);
      console.log("converge ms", Date.now() - t);
      expect(new Set(sts.map((s) => s.appliedHash)).size).toBe(1);

      const onFollower = await cluster.list(follower, '', 'stale');
      const onLeader = await cluster.list(leader, '', 'stale');
      expect(onFollower.size).toBe(written.size);
      for (const [k, v] of written) expect(onFollower.get(k)?.value, k).toBe(v);
      expect([...onFollower].map(([k, v]) => [k, v.value, v.modRevision])).toEqual([...onLeader].map(([k, v]) => [k, v.value, v.modRevision]));
    })();
  });
});
