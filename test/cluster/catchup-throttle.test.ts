// The adaptive catch-up throttle (packages/server/src/catchup-throttle.ts) on real processes: a
// follower that missed compacted entries catches up by snapshot at a low configured rate; while the
// transfer runs, the leader's disk is slowed (the test-only fsync delay of --enable-fault-injection)
// under a trickle of writes. The leader's commit latency and fsync p99 rise far above the steady
// values it learnt while idle, so the throttle must cut the rate the snapshot is sent at down to
// its minimum (it starts at a quarter of the ceiling), as /v1/status and /metrics show; once the
// disk is fast again the follower catches up. With a controller that never cuts, the test times out
// waiting for the minimum.
import { afterAll, describe, expect, it } from 'vitest';
import { CATCHUP_START_FRACTION } from '../../packages/server/src/catchup-throttle.js';
import { ProcessCluster, httpRequest, jsonOf, sleep, waitFor, type NodeStatus } from '../harness/cluster.js';

/** The configured ceiling: low, so the transfer lasts long enough to slow the leader during it. */
const CEILING_BYTES_PER_SEC = 4 * 1024 * 1024;
/** State the follower must receive: VALUES × VALUE_BYTES (8 MiB: seconds at the ceiling). */
const VALUES = 16;
const VALUE_BYTES = 512 * 1024;
/** The leader's injected synced-write delay: far above any steady latency on a loaded machine. */
const SLOW_FSYNC_MS = 300;
/** The trickle of writes that gives the leader a commit latency to measure, at most this many. */
const MAX_TRICKLE_WRITES = 2000;

interface ThrottleView {
  mode: string;
  state: string;
  effectiveBytesPerSec: number;
  minBytesPerSec: number;
  decreases: number;
}
type Status = NodeStatus & { firstIndex: number; catchupThrottle: ThrottleView; snapshots?: { direction: string; peer: string }[] };

const clusters: ProcessCluster[] = [];
afterAll(async () => {
  for (const c of clusters) await c.teardown();
});

describe('adaptive catch-up throttle', () => {
  it('cuts the snapshot send rate while the leader is slowed, and shows it in /v1/status and /metrics', async () => {
    const c = await ProcessCluster.start({
      name: 'qkv-catchup-throttle',
      extraArgs: ['--enable-fault-injection', '--snapshot-entries', '10', '--snapshot-keep-entries', '0', '--snapshot-keep-bytes', '0', '--snapshot-rate', String(CEILING_BYTES_PER_SEC)],
    });
    clusters.push(c);
    await c.guard(async () => {
      const leader = (await c.waitForLeader()).id;
      const follower = c.nodes.find((n) => n.id !== leader)!.id;
      const status = async () => (await c.status(leader, 3000)) as Status;
      expect((await status()).catchupThrottle).toMatchObject({ mode: 'adaptive', state: 'idle' });

      // The follower misses the state; the leader compacts past it.
      await c.stop(follower);
      const missedFrom = (await status()).lastIndex;
      for (let i = 0; i < VALUES; i++) expect((await c.put(leader, `big/${i}`, Buffer.alloc(VALUE_BYTES, i), 20_000)).status).toBe(200);
      await waitFor('the leader to compact past the follower', async () => ((await status()).firstIndex > missedFrom + 1 ? true : undefined));

      // A trickle of small writes on the leader for the rest of the test (bounded).
      let stopTrickle = false;
      const trickle = (async () => {
        for (let i = 0; i < MAX_TRICKLE_WRITES && !stopTrickle; i++) await c.put(leader, `trickle/${i % 50}`, 'x', 10_000).catch(() => sleep(20));
      })();
      try {
        await sleep(2000); // idle steps with the trickle: the steady values
        await c.restart(follower);
        await waitFor('the snapshot transfer to run under the throttle', async () => {
          const s = await status();
          return s.snapshots?.some((t) => t.direction === 'send' && t.peer === follower) && s.catchupThrottle.state !== 'idle' ? true : undefined;
        }, 20_000);
        expect((await httpRequest(c.node(leader).port, 'PUT', '/v1/admin/faults', { body: JSON.stringify({ fsyncDelayMs: SLOW_FSYNC_MS }) })).status).toBe(200);
        // The slow disk keeps the pressure up: cut after cut (one per cooldown) down to the minimum.
        // (On a loaded machine the catch-up alone may already have cut it once; the minimum needs more.)
        const cut = await waitFor('the throttle to cut the rate to its minimum', async () => {
          const t = (await status()).catchupThrottle;
          return t.state === 'backing-off' && t.effectiveBytesPerSec === t.minBytesPerSec ? t : undefined;
        }, 10_000);
        expect(cut.effectiveBytesPerSec).toBeLessThan(CEILING_BYTES_PER_SEC * CATCHUP_START_FRACTION);
        expect(cut.decreases).toBeGreaterThanOrEqual(1);
        const metrics = (await httpRequest(c.node(leader).port, 'GET', '/metrics')).body.toString();
        expect(Number(/^qkv_catchup_rate_bytes_per_second (\S+)$/m.exec(metrics)?.[1])).toBe(cut.minBytesPerSec);
        expect(metrics).toMatch(/^qkv_catchup_throttle_state\{state="backing-off"\} 1$/m);
      } finally {
        stopTrickle = true;
        await httpRequest(c.node(leader).port, 'PUT', '/v1/admin/faults', { body: JSON.stringify({ fsyncDelayMs: 0 }) }).catch(() => undefined);
        await trickle;
      }
      // Healthy again: the follower catches up.
      await c.waitConverged(60_000);
      expect(jsonOf<Status>(await httpRequest(c.node(leader).port, 'GET', '/v1/status')).catchupThrottle.mode).toBe('adaptive');
    })();
  }, 120_000);
});
