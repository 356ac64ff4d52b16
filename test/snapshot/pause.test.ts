// `quorumkv snapshot-rate pause|resume` stops every catch-up snapshot send and restarts it: a
// follower that needs a snapshot while sends are paused gets nothing (the leader holds the
// request and shows it as "paused"); a transfer already running stops sending chunks (its acked
// bytes stay put) and, resumed, finishes where it stood; the follower then converges.
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLI_PATH, ProcessCluster, TEST_SECRET, sleep, waitFor } from '../harness/cluster.js';
import { SMALL_SNAPSHOT_FLAGS, adminCall, diffKeySpaces, eventsStartingWith, fill, leaderId, metricValue, statusOf } from './support.js';

const run = promisify(execFile);
const KEYS = 300;
const VALUE_BYTES = 4096;
/** Bytes/s: the ~1.3 MB snapshot takes about 4 s, long enough to pause it half-way. */
const RATE = 300_000;
/** How long a paused state is watched for any progress. */
const WATCH_MS = 1_500;

describe('pausing snapshot sends', () => {
  let cluster: ProcessCluster;
  let leader = '';
  let follower = '';
  let liveEndpoints = '';

  beforeAll(async () => {
    cluster = await ProcessCluster.start({ name: 'qkv-snap-pause', tickMs: 20, extraArgs: [...SMALL_SNAPSHOT_FLAGS, '--snapshot-rate', String(RATE)] });
    leader = await leaderId(cluster);
    follower = cluster.nodes.find((n) => n.id !== leader)!.id;
    liveEndpoints = cluster.nodes.filter((n) => n.id !== follower).map((n) => n.address).join(',');
  }, 60_000);
  afterAll(async () => {
    await cluster?.teardown();
  });

  const snapshotRate = async (arg: string) => {
    const env = { ...process.env, QKV_CLUSTER_SECRET: TEST_SECRET, QKV_CLUSTER_SECRET_FILE: '' }; // admin commands prove the secret
    const out = await run(process.execPath, [CLI_PATH, 'snapshot-rate', arg, `--endpoints=${liveEndpoints}`], { timeout: 20_000, env });
    for (const ep of liveEndpoints.split(',')) expect(out.stdout).toContain(`${ep}: 200`);
  };
  const sendTo = async (peer: string) => (await statusOf(cluster.node(leader).port)).snapshots?.find((t) => t.peer === peer && t.direction === 'send') as
    | { state: string; bytesDone: number }
    | undefined;

  it('held while paused, stopped mid-way when paused again, finished after resume', async () => {
    await cluster.guard(async () => {
      await cluster.stop(follower);
      await fill(cluster, () => leader, 'k', KEYS, VALUE_BYTES);
      await waitFor('the leader to compact', async () => ((await statusOf(cluster.node(leader).port)) as unknown as { firstIndex: number }).firstIndex > 10 ? true : undefined);

      // Paused before the follower comes back: no transfer starts, the request is held.
      await snapshotRate('pause');
      expect(await metricValue(cluster.node(leader).port, 'qkv_snapshot_sends_paused')).toBe(1);
      await cluster.restart(follower);
      await waitFor('the held send in /v1/status', async () => ((await sendTo(follower))?.state === 'paused' ? true : undefined), 20_000);
      await sleep(WATCH_MS);
      expect((await sendTo(follower))?.state).toBe('paused');
      expect(eventsStartingWith(cluster.node(leader).logPath, 'snapshot transfer started').filter((e) => e.peer === follower)).toEqual([]);
      expect((await statusOf(cluster.node(follower).port)).appliedIndex).toBeLessThan((await statusOf(cluster.node(leader).port)).appliedIndex);

      // Resumed, the transfer starts; paused again half-way, its acknowledged bytes stop growing.
      await snapshotRate('resume');
      const running = await waitFor('the transfer to send bytes', async () => {
        const t = await sendTo(follower);
        return t && t.bytesDone > 0 ? t : undefined;
      }, 20_000);
      // Straight to the leader (the sender), not through the CLI: no process start between seeing
      // the transfer run and pausing it, so it cannot finish first on a slow machine.
      expect((await adminCall(cluster.node(leader).port, 'PUT', '/v1/admin/snapshot-rate', { paused: true })).status).toBe(200);
      await sleep(1_000); // acks of chunks already in flight (at most the send window) arrive
      const held = (await sendTo(follower))!.bytesDone;
      await sleep(WATCH_MS);
      const after = await sendTo(follower);
      console.log(`paused a running transfer at ${held} bytes (first seen at ${running.bytesDone}); ${WATCH_MS} ms later: ${after?.bytesDone} bytes, state ${after?.state}`);
      expect(after?.bytesDone).toBe(held);
      expect(eventsStartingWith(cluster.node(leader).logPath, 'snapshot transfer finished').filter((e) => e.peer === follower)).toEqual([]);

      await snapshotRate('resume');
      const finished = await waitFor('the transfer to finish', () => eventsStartingWith(cluster.node(leader).logPath, 'snapshot transfer finished').find((e) => e.peer === follower), 30_000);
      expect(Number(finished.attempts)).toBe(1);
      await cluster.waitConverged(30_000);
      expect(await diffKeySpaces(cluster, leader, follower)).toEqual([]);
      expect(await metricValue(cluster.node(leader).port, 'qkv_snapshot_sends_paused')).toBe(0);
    })();
  }, 120_000);
});
