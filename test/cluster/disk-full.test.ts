// A node whose disk fills up (forgetfs `fail enospc` on its data directory, tools/forgetfs) must
// not die and must not lose anything: it stops taking part (no vote, no leadership, the other two
// carry on), answers 507 QKV_DISK_FULL and `qkv_storage_writable 0` from the same process, and
// once space returns (`fail none`) starts again from disk on its own, catches up, and holds every
// acknowledged write (packages/server/src/storage-fault.ts, docs/durability.md).
import { mkdirSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { forgetfsUnavailable, mountForgetfs, type ForgetfsMount } from '../../jepsen-lite/src/forgetfs.js';
import { ProcessCluster, jsonOf, waitFor } from '../harness/cluster.js';

const TICK_MS = 20;
const ELECTION_TICKS = 10;
/** Bound on each wait of the test (a stop, an election, a recovery). */
const WAIT_MS = 15_000;
/** Writes acknowledged before the disk fills, and during the fault by the other two nodes. */
const WRITES = 10;

const why = forgetfsUnavailable();
if (why && process.env.CI === 'true') throw new Error(`forgetfs is required under CI=true: ${why}`);

/** Puts `key` through whichever node leads now; resolves once one put is acknowledged. */
async function putSomewhere(c: ProcessCluster, ids: string[], key: string): Promise<void> {
  await waitFor(`put ${key}`, async () => {
    const leader = await c.waitForLeader({ among: ids, timeoutMs: WAIT_MS });
    return (await c.put(leader.id, key, key, 2_000).catch(() => undefined))?.status === 200 ? true : undefined;
  }, WAIT_MS);
}

/** The value of a Prometheus sample line on `id`'s /metrics, or undefined. */
async function metric(c: ProcessCluster, id: string, sample: string): Promise<number | undefined> {
  const r = await c.request(c.node(id).port, 'GET', '/metrics').catch(() => undefined);
  const line = r?.body.toString('utf8').split('\n').find((l) => l.startsWith(sample + ' '));
  return line === undefined ? undefined : Number(line.slice(sample.length + 1));
}

describe.skipIf(why !== null)('a node whose disk is full', () => {
  it('stops voting and writing with QKV_DISK_FULL, stays up, loses nothing, and recovers when space returns', async () => {
    const base = path.join(tmpdir(), `qkv-disk-full-${process.pid}-${Date.now()}`);
    let fs: ForgetfsMount | undefined;
    let c: ProcessCluster | undefined;
    try {
      c = await ProcessCluster.start({
        name: 'qkv-disk-full',
        tickMs: TICK_MS,
        electionTicks: ELECTION_TICKS,
        prepare: async (nodes) => {
          // The mount sits outside the cluster's directory (its teardown removes only the link).
          fs = await mountForgetfs({ store: path.join(base, 'store'), mountpoint: path.join(base, 'mnt') });
          mkdirSync(path.join(fs.mountpoint, 'n1'));
          rmSync(nodes[0]!.dataDir, { recursive: true, force: true });
          symlinkSync(path.join(fs.mountpoint, 'n1'), nodes[0]!.dataDir);
        },
      });
      await c.guard(async () => {
        const all = c!.nodes.map((n) => n.id);
        const others = all.filter((id) => id !== 'n1');
        for (let i = 0; i < WRITES; i++) await putSomewhere(c!, all, `before/${i}`);

        fs!.inject({ kind: 'fail', errno: 'enospc' });
        // n1 fails on its next append (as leader or follower); the others then elect among themselves.
        for (let i = 0; i < WRITES; i++) await putSomewhere(c!, others, `during/${i}`);
        const refused = await waitFor('n1 to answer QKV_DISK_FULL', async () => {
          const r = await c!.put('n1', 'refused', 'x', 2_000).catch(() => undefined);
          return r?.status === 507 ? r : undefined;
        }, WAIT_MS);
        expect(jsonOf(refused).code).toBe('QKV_DISK_FULL');
        expect(c!.node('n1').proc?.exitCode).toBeNull(); // the process lives on
        expect(await metric(c!, 'n1', 'qkv_storage_writable')).toBe(0);
        expect(await metric(c!, 'n1', 'qkv_storage_faults_total{kind="disk-full"}')).toBe(1);
        const leader = await c!.waitForLeader({ among: others, timeoutMs: WAIT_MS });
        expect(others).toContain(leader.id);

        fs!.inject({ kind: 'fail', errno: 'none' });
        await waitFor('n1 writable again', async () => ((await metric(c!, 'n1', 'qkv_storage_writable')) === 1 ? true : undefined), WAIT_MS);
        await c!.waitConverged(WAIT_MS);
        expect(await metric(c!, 'n1', 'qkv_storage_faults_total{kind="disk-full"}')).toBe(1);
        const held = await c!.list('n1', '', 'stale');
        for (let i = 0; i < WRITES; i++) {
          expect(held.has(`before/${i}`), `before/${i}`).toBe(true);
          expect(held.has(`during/${i}`), `during/${i}`).toBe(true);
        }
        expect(held.has('refused')).toBe(false); // answered 507 = not applied
      })();
    } finally {
      await c?.teardown();
      await fs?.unmount();
      rmSync(base, { recursive: true, force: true });
    }
  }, 90_000);
});
