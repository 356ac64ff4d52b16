// A node whose disk fills up (forgetfs `fail enospc` on its data directory, tools/forgetfs), or
// fails writes with EIO (`fail eio`), must
// not die and must not lose anything: it stops taking part (no vote, no leadership, the other two
// carry on), answers 507 QKV_DISK_FULL (503 QKV_STORAGE_UNAVAILABLE for EIO) and `qkv_storage_writable 0` from the same process, and
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

/** Makes n1 the leader (an explicit transfer, repeated until it holds). */
async function makeN1Leader(c: ProcessCluster): Promise<void> {
  await waitFor('n1 to lead', async () => {
    const leader = await c.waitForLeader({ timeoutMs: WAIT_MS });
    if (leader.id === 'n1') return true;
    await c.request(c.node(leader.id).port, 'POST', '/v1/admin/leader/transfer', { body: JSON.stringify({ id: 'n1' }) }).catch(() => undefined);
    return undefined;
  }, WAIT_MS);
}

const CASES = [
  { errno: 'enospc', role: 'leader', status: 507, code: 'QKV_DISK_FULL', kind: 'disk-full' },
  { errno: 'eio', role: 'follower', status: 503, code: 'QKV_STORAGE_UNAVAILABLE', kind: 'io' },
] as const;

describe.skipIf(why !== null)('a node whose disk fails writes', () => {
  it.each(CASES)('$errno on the $role: no vote, $code from a live process, nothing lost, recovery when writes work again', async ({ errno, role, status, code, kind }) => {
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
        if (role === 'leader') await makeN1Leader(c!);
        else if ((await c!.waitForLeader({ timeoutMs: WAIT_MS })).id === 'n1') await c!.request(c!.node('n1').port, 'POST', '/v1/admin/leader/transfer', { body: JSON.stringify({ id: 'n2' }) });

        fs!.inject({ kind: 'fail', errno });
        // n1 fails on its next append (as leader or follower), so write through it. Each attempt
        // its own key: one cut off in flight (504 QKV_INDETERMINATE) may have landed.
        let attempt = 0;
        const refused = await waitFor(`n1 to answer ${code}`, async () => {
          const key = `refused/${attempt++}`;
          const r = await c!.put('n1', key, 'x', 2_000).catch(() => undefined);
          return r?.status === status ? { key, body: jsonOf(r) } : undefined;
        }, WAIT_MS);
        expect(refused.body.code).toBe(code);
        // The other two elect among themselves and take writes.
        for (let i = 0; i < WRITES; i++) await putSomewhere(c!, others, `during/${i}`);
        expect(c!.node('n1').proc?.exitCode).toBeNull(); // the process lives on
        expect(await metric(c!, 'n1', 'qkv_storage_writable')).toBe(0);
        expect(await metric(c!, 'n1', `qkv_storage_faults_total{kind="${kind}"}`)).toBe(1);
        const leader = await c!.waitForLeader({ among: others, timeoutMs: WAIT_MS });
        expect(others).toContain(leader.id);

        fs!.inject({ kind: 'fail', errno: 'none' });
        await waitFor('n1 writable again', async () => ((await metric(c!, 'n1', 'qkv_storage_writable')) === 1 ? true : undefined), WAIT_MS);
        await c!.waitConverged(WAIT_MS);
        expect(await metric(c!, 'n1', `qkv_storage_faults_total{kind="${kind}"}`)).toBe(1);
        const held = await c!.list('n1', '', 'stale');
        for (let i = 0; i < WRITES; i++) {
          expect(held.has(`before/${i}`), `before/${i}`).toBe(true);
          expect(held.has(`during/${i}`), `during/${i}`).toBe(true);
        }
        expect(held.has(refused.key), `${refused.key} was answered ${code}: not applied`).toBe(false);
      })();
    } finally {
      await c?.teardown();
      await fs?.unmount();
      rmSync(base, { recursive: true, force: true });
    }
  }, 90_000);
});
