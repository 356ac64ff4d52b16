// Errors that must not lie: writes in flight on a leader that is shut down (SIGTERM) while its
// disk is slow. Each answer must say truthfully whether the write may have applied:
//  - a write cut off after it was proposed answers 504 QKV_INDETERMINATE ("may have been
//    applied"), and at least one of them IS applied afterwards (so "failed" would have been a lie);
//  - no write answered with a "not applied" code (503: QKV_UNAVAILABLE, QKV_NOT_LEADER, …) is
//    found applied.
import { afterEach, describe, expect, it } from 'vitest';
import { WRITE_NOT_APPLIED_CODES } from '@quorumkv/protocol';
import { ProcessCluster, httpRequest, jsonOf, sleep, type HttpResult } from '../harness/cluster.js';

const TICK_MS = 20;
const ELECTION_TICKS = 10;
/** Slow enough that a batch of writes is still on its way to disk when SIGTERM arrives. */
const FSYNC_DELAY_MS = 250;
/** Writes fired at the leader at once, just before it is stopped. */
const WRITES = 40;
/**
 * How long after the writes are sent the leader gets SIGTERM: a little over one fsync, so the
 * first batch is on disk and the next one (most of the writes) was sent to the followers and is
 * on its way to the leader's disk.
 */
const SIGTERM_AFTER_MS = FSYNC_DELAY_MS + 50;

interface Answer {
  key: string;
  status: number | 'no answer';
  code: string | undefined;
}

async function putOnce(port: number, key: string): Promise<Answer> {
  let r: HttpResult;
  try {
    r = await httpRequest(port, 'PUT', `/v1/kv/${encodeURIComponent(key)}`, { body: `v-${key}`, timeoutMs: 10_000 });
  } catch {
    return { key, status: 'no answer', code: undefined }; // the connection closed first: unknown, not checked
  }
  return { key, status: r.status, code: r.status === 200 ? undefined : jsonOf<{ code: string }>(r).code };
}

async function setFsyncDelay(c: ProcessCluster, ids: string[], fsyncDelayMs: number): Promise<void> {
  for (const id of ids) {
    const r = await httpRequest(c.node(id).port, 'PUT', '/v1/admin/faults', { body: JSON.stringify({ fsyncDelayMs }) });
    if (r.status !== 200) throw new Error(`PUT /v1/admin/faults on ${id}: ${r.status} ${r.body.toString()}`);
  }
}

describe('writes cut off by a shutdown answer indeterminate, never "failed"', () => {
  let cluster: ProcessCluster | undefined;
  afterEach(async () => {
    await cluster?.teardown();
    cluster = undefined;
  });

  it('SIGTERM of a leader with a slow disk: 504 QKV_INDETERMINATE for writes in flight, some of them applied; no "not applied" answer is applied', async () => {
    const c = (cluster = await ProcessCluster.start({
      name: 'qkv-indeterminate',
      tickMs: TICK_MS,
      electionTicks: ELECTION_TICKS,
      extraArgs: ['--enable-fault-injection'],
    }));
    await c.guard(async () => {
      const leader = await c.waitForLeader();
      expect((await c.put(leader.id, 'warm-up', 'x')).status).toBe(200);
      await setFsyncDelay(c, c.nodes.map((n) => n.id), FSYNC_DELAY_MS);
      const port = c.node(leader.id).port;
      const answers = Array.from({ length: WRITES }, (_, i) => putOnce(port, `ind/${i}`));
      await sleep(SIGTERM_AFTER_MS);
      const exit = await c.stop(leader.id);
      const all = await Promise.all(answers);
      const others = c.nodes.map((n) => n.id).filter((id) => id !== leader.id);
      // The slow disk was the leader's trouble: with fsyncs slower than an election timeout the
      // survivors would keep timing out their own candidacies (a liveness matter, not this test's).
      await setFsyncDelay(c, others, 0);
      const next = await c.waitForLeader({ among: others, minTerm: leader.term });

      const present = async (key: string): Promise<boolean> => {
        const r = await c.get(next.id, key, 'linearizable', 10_000);
        if (r.status !== 200 && r.status !== 404) throw new Error(`GET ${key} on ${next.id}: ${r.status} ${r.body.toString()}`);
        return r.status === 200;
      };
      const byCode = new Map<string, number>();
      for (const a of all) byCode.set(a.code ?? String(a.status), (byCode.get(a.code ?? String(a.status)) ?? 0) + 1);
      const indeterminate = all.filter((a) => a.code === 'QKV_INDETERMINATE');
      const notApplied = all.filter((a) => a.code !== undefined && WRITE_NOT_APPLIED_CODES.has(a.code));
      const indeterminateApplied = (await Promise.all(indeterminate.map((a) => present(a.key)))).filter(Boolean).length;
      const acked = all.filter((a) => a.status === 200);
      const ackedMissing = (await Promise.all(acked.map(async (a) => ((await present(a.key)) ? undefined : a)))).filter((a) => a !== undefined);
      const lies = (await Promise.all(notApplied.map(async (a) => ((await present(a.key)) ? a : undefined)))).filter((a) => a !== undefined);
      console.info(
        `SIGTERM ${leader.id} (exit ${String(exit)}) with ${WRITES} writes in flight: answers ${JSON.stringify(Object.fromEntries(byCode))}; ` +
          `${indeterminateApplied} of ${indeterminate.length} indeterminate writes found applied on ${next.id}`,
      );

      for (const a of indeterminate) expect(a.status).toBe(504);
      expect(lies, 'writes answered "not applied" that were applied').toEqual([]);
      expect(ackedMissing, 'acknowledged writes that are missing').toEqual([]);
      // The point of the code: writes the leader could only call "unknown", that did commit.
      expect(indeterminate.length).toBeGreaterThan(0);
      expect(indeterminateApplied).toBeGreaterThan(0);
    })();
  });
});
