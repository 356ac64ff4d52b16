// The quorumkv node image in Docker: a three-node cluster made with testcontainers from the image
// deploy/build-images.sh builds, the client library connecting through the published ports, and
// the failures containers have — a crash (docker kill), a silent partition (docker network
// disconnect), a frozen node (docker pause) — then the cluster of deploy/docker-compose.yml
// keeping its data across `down` / `up`. Every scenario starts its own cluster and removes it,
// even when it fails (and the process exit hook removes leftovers if the run dies).
//
// Needs a Docker engine and the image: `bash .ci/docker.sh` (or deploy/build-images.sh). Without
// them the file is skipped with one line saying why, unless QKV_REQUIRE_DOCKER=1 (CI), where a
// missing engine or image fails the run instead.
import { connect, type KvClient } from '@quorumkv/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ComposeCluster, type ContainerInspect } from './compose-cluster.js';
import { DockerCluster } from './docker-cluster.js';
import { NODE_IMAGE, dockerPreflight, sweepOrphans, waitFor } from './docker-env.js';
import { WriteLoad, lostWrites } from './write-load.js';

const preflight = dockerPreflight();
const required = process.env.QKV_REQUIRE_DOCKER === '1';
if (!preflight.ok && !required) console.log(`[docker tests] SKIPPED: ${preflight.reason}`);
if (preflight.ok) {
  const swept = sweepOrphans();
  console.log(`[docker tests] running against the Docker engine with image ${NODE_IMAGE}${swept ? ` (removed leftovers of ${swept} dead test runs)` : ''}`);
}

/** Acknowledged writes each fault scenario waits for while the fault is on. */
const WRITES_DURING_FAULT = 30;
/** Bound of each wait for progress under a fault. */
const FAULT_WAIT_MS = 30_000;
/** Bound of each convergence wait after healing. */
const CONVERGE_WAIT_MS = 60_000;

/** Client settings for fault scenarios: give up on a silent node after 1 s and try another. */
async function faultClient(endpoints: string[]): Promise<KvClient> {
  return connect({ endpoints, timeoutMs: 8_000, attemptTimeoutMs: 1_000, connectTimeoutMs: 2_000 });
}

/** Runs `fn`; on failure rethrows with the nodes' log tails attached. */
async function withLogs(source: { describeLogs(): Promise<string> } | undefined, fn: () => Promise<void>): Promise<void> {
  try {
    await fn();
  } catch (e) {
    const logs = source ? await source.describeLogs().catch(() => '(logs unavailable)') : '';
    throw new Error(`${(e as Error).message}\n${logs}`, { cause: e });
  }
}

if (!preflight.ok && required) {
  describe('Docker is required here (QKV_REQUIRE_DOCKER=1)', () => {
    it('has a Docker engine and the node image', () => {
      expect.fail(`[docker tests] cannot run: ${preflight.ok ? '' : preflight.reason}`);
    });
  });
}

describe.skipIf(!preflight.ok)('quorumkv in Docker', () => {
  describe('three containers on a testcontainers network', () => {
    let cluster: DockerCluster | undefined;
    let kv: KvClient | undefined;
    beforeAll(async () => {
      cluster = await DockerCluster.start({ name: 'create' });
      kv = await connect({ endpoints: cluster.endpoints() });
    });
    afterAll(async () => {
      await kv?.close();
      await cluster?.teardown();
    });

    it('elect one leader; writes and linearizable reads work through the published ports', () =>
      withLogs(cluster, async () => {
        const c = cluster!;
        const leader = await c.waitForLeader();
        const all = await c.statuses();
        expect(all.map((s) => s.id).sort()).toEqual(['n1', 'n2', 'n3']);
        expect(all.filter((s) => s.role === 'leader').map((s) => s.id)).toEqual([leader.id]);

        const written = new Map<string, number>();
        for (let i = 0; i < 50; i++) {
          const { revision } = await kv!.put(`create/${i}`, `value-${i}`);
          written.set(`create/${i}`, revision);
          const item = await kv!.get(`create/${i}`, { as: 'string' });
          expect(item?.value, 'a linearizable read sees the write before it').toBe(`value-${i}`);
          expect(item?.modRevision).toBe(revision);
        }
        // A second client, seeded in the other order, reads the same values and revisions.
        const other = await connect({ endpoints: [...c.endpoints()].reverse() });
        try {
          for (const [key, revision] of written) {
            const item = await other.get(key, { as: 'string' });
            expect(item?.modRevision, key).toBe(revision);
          }
          expect(await other.get('create/missing')).toBeUndefined();
        } finally {
          await other.close();
        }
        const converged = await c.waitConverged();
        expect(new Set(converged.map((s) => s.appliedHash)).size).toBe(1);
      }));
  });

  describe('docker kill of the leader', () => {
    let cluster: DockerCluster | undefined;
    let kv: KvClient | undefined;
    let load: WriteLoad | undefined;
    beforeAll(async () => {
      cluster = await DockerCluster.start({ name: 'kill' });
      kv = await faultClient(cluster.endpoints());
    });
    afterAll(async () => {
      await load?.stop();
      await kv?.close();
      await cluster?.teardown();
    });

    it('a new leader takes over, writes continue, the old leader rejoins from its volume, nothing acknowledged is lost', () =>
      withLogs(cluster, async () => {
        const c = cluster!;
        const old = await c.waitForLeader();
        load = new WriteLoad(kv!, { prefix: 'kill' });
        await load.waitForMoreAcks(WRITES_DURING_FAULT, FAULT_WAIT_MS);

        await c.kill(old.id);
        const others = c.nodes.map((n) => n.id).filter((id) => id !== old.id);
        const next = await c.waitForLeader({ among: others, not: old.id, timeoutMs: FAULT_WAIT_MS });
        expect(next.term).toBeGreaterThan(old.term);
        await load.waitForMoreAcks(WRITES_DURING_FAULT, FAULT_WAIT_MS);

        await c.start(old.id);
        expect(await c.logs(old.id, 200), 'the restarted node reopens its data directory').toMatch(/node restored from disk/);
        await load.waitForMoreAcks(WRITES_DURING_FAULT, FAULT_WAIT_MS);
        await load.stop();

        const sts = await c.waitConverged(CONVERGE_WAIT_MS);
        const rejoined = sts.find((s) => s.id === old.id)!;
        expect(rejoined.role).toBe('follower');
        expect(await lostWrites(kv!, 'kill', load.acked)).toEqual([]);
      }));
  });

  describe('docker network disconnect of the leader', () => {
    let cluster: DockerCluster | undefined;
    let kv: KvClient | undefined;
    let load: WriteLoad | undefined;
    beforeAll(async () => {
      cluster = await DockerCluster.start({ name: 'partition' });
      kv = await faultClient(cluster.endpoints());
    });
    afterAll(async () => {
      await load?.stop();
      await kv?.close();
      await cluster?.teardown();
    });

    it('the majority keeps committing, the isolated node commits nothing; after reconnecting all state hashes match', () =>
      withLogs(cluster, async () => {
        const c = cluster!;
        const old = await c.waitForLeader();
        load = new WriteLoad(kv!, { prefix: 'part' });
        await load.waitForMoreAcks(WRITES_DURING_FAULT, FAULT_WAIT_MS);

        await c.disconnect(old.id);
        const others = c.nodes.map((n) => n.id).filter((id) => id !== old.id);
        const next = await c.waitForLeader({ among: others, not: old.id, timeoutMs: FAULT_WAIT_MS });
        // CheckQuorum: the isolated leader notices it hears no majority and steps down.
        const isolatedBefore = await waitFor(
          `${old.id} to step down while isolated`,
          async () => {
            const s = await c.statusInside(old.id);
            return s.role !== 'leader' ? s : undefined;
          },
          FAULT_WAIT_MS,
        );
        await load.waitForMoreAcks(WRITES_DURING_FAULT, FAULT_WAIT_MS);
        // A write sent straight to the isolated node is not acknowledged.
        const direct = await c.httpInside(old.id, 'PUT', '/v1/kv/part-isolated-write', 'x', 3_000);
        expect(direct.status, `PUT on the isolated node answered ${direct.status} ${direct.body}`).not.toBe(200);
        const isolatedAfter = await c.statusInside(old.id);
        expect(isolatedAfter.commitIndex, 'the isolated node commits nothing').toBe(isolatedBefore.commitIndex);
        const majority = await c.status(next.id);
        expect(majority!.commitIndex).toBeGreaterThan(isolatedAfter.commitIndex);

        await c.connect(old.id);
        await load.waitForMoreAcks(10, FAULT_WAIT_MS);
        await load.stop();
        const sts = await c.waitConverged(CONVERGE_WAIT_MS);
        expect(new Set(sts.map((s) => s.appliedHash)).size).toBe(1);
        expect(await kv!.get('part-isolated-write')).toBeUndefined();
        expect(await lostWrites(kv!, 'part', load.acked)).toEqual([]);
      }));
  });

  describe('docker pause of the leader', () => {
    let cluster: DockerCluster | undefined;
    let kv: KvClient | undefined;
    let load: WriteLoad | undefined;
    beforeAll(async () => {
      cluster = await DockerCluster.start({ name: 'pause' });
      kv = await faultClient(cluster.endpoints());
    });
    afterAll(async () => {
      await load?.stop();
      await kv?.close();
      await cluster?.teardown();
    });

    it('the others elect a new leader; once unpaused the old leader steps down and catches up', () =>
      withLogs(cluster, async () => {
        const c = cluster!;
        const old = await c.waitForLeader();
        load = new WriteLoad(kv!, { prefix: 'pause' });
        await load.waitForMoreAcks(WRITES_DURING_FAULT, FAULT_WAIT_MS);

        await c.pause(old.id);
        const others = c.nodes.map((n) => n.id).filter((id) => id !== old.id);
        const next = await c.waitForLeader({ among: others, aboveTerm: old.term, timeoutMs: FAULT_WAIT_MS });
        await load.waitForMoreAcks(WRITES_DURING_FAULT, FAULT_WAIT_MS);

        await c.unpause(old.id);
        const back = await waitFor(
          `${old.id} to step down after unpause`,
          async () => {
            const s = await c.status(old.id);
            return s && s.role === 'follower' && s.term >= next.term && s.leader !== null && s.leader !== old.id ? s : undefined;
          },
          FAULT_WAIT_MS,
        );
        expect(back.term).toBeGreaterThan(old.term);
        await load.waitForMoreAcks(10, FAULT_WAIT_MS);
        await load.stop();
        const sts = await c.waitConverged(CONVERGE_WAIT_MS);
        expect(sts.filter((s) => s.role === 'leader').map((s) => s.id)).not.toContain(old.id);
        expect(await lostWrites(kv!, 'pause', load.acked)).toEqual([]);
      }));
  });

  describe('deploy/docker-compose.yml', () => {
    let compose: ComposeCluster | undefined;
    afterAll(async () => {
      await compose?.destroy();
    });

    it('brings up a working cluster whose data survives down and up (named volumes)', () =>
      withLogs(compose, async () => {
        compose = await ComposeCluster.create({ name: 'compose' });
        const c = compose;
        await c.up();
        const first = await c.waitForLeader();

        const acked: { key: string; value: string; revision: number }[] = [];
        const kv1 = await connect({ endpoints: c.endpoints() });
        try {
          for (let i = 0; i < 100; i++) {
            const key = `compose/${String(i).padStart(3, '0')}`;
            const { revision } = await kv1.put(key, `value-${i}`);
            acked.push({ key, value: `value-${i}`, revision });
          }
        } finally {
          await kv1.close();
        }

        // What the compose file promises: non-root, /data on a named volume, 127.0.0.1 ports,
        // a restart policy, and a health check that reports healthy.
        const inspected = await waitFor(
          'the three containers to report healthy',
          async () => {
            const all = await c.inspect();
            return all.length === 3 && all.every((x) => x.State.Health?.Status === 'healthy') ? all : undefined;
          },
          40_000,
        );
        for (const x of inspected) checkComposeContainer(x);

        // A graceful stop: SIGTERM, and every node exits 0.
        await c.stop();
        const stopped = await c.inspect();
        expect(stopped.map((x) => [x.Name, x.State.Status, x.State.ExitCode])).toEqual(stopped.map((x) => [x.Name, 'exited', 0]));

        await c.down();
        expect(await c.containerIds()).toEqual([]);
        expect(await c.volumes()).toHaveLength(3);

        await c.up();
        const second = await c.waitForLeader();
        expect(second.term).toBeGreaterThan(first.term);
        const kv2 = await connect({ endpoints: c.endpoints() });
        try {
          expect(await lostWrites(kv2, 'compose', acked)).toEqual([]);
        } finally {
          await kv2.close();
        }
      }));
  });
});

function checkComposeContainer(x: ContainerInspect): void {
  expect(x.Config.User, `${x.Name} runs as the unprivileged node user`).toBe('node');
  expect(x.HostConfig.RestartPolicy.Name).toBe('unless-stopped');
  const bindings = Object.values(x.HostConfig.PortBindings).flat();
  expect(bindings.length).toBeGreaterThan(0);
  for (const b of bindings) expect(b.HostIp, `${x.Name} publishes on loopback only`).toBe('127.0.0.1');
  const data = x.Mounts.find((m) => m.Destination === '/data');
  expect(data?.Type).toBe('volume');
  expect(data?.Name).toMatch(/_n[123]-data$/);
}
