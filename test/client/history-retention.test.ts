// Automatic history retention against a real three-node cluster: with --history-retain-revisions
// 100, once enough writes piled up the leader proposes a compact through the log, and every node
// then refuses reads of the old revisions with QKV_COMPACTED while recent ones still read.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { KvClient } from '@quorumkv/client';
import { ProcessCluster, waitFor } from '../harness/cluster.js';
import { ELECTION_TICKS, TICK_MS, connectTo, outcome, runBounded } from './helpers.js';

const RETAIN = 100;
/** Enough writes for one retention compact (HISTORY_COMPACT_SLACK_REVISIONS is 1000). */
const WRITES = 1_200;

describe('history retention', () => {
  let c: ProcessCluster;
  const clients: KvClient[] = [];
  beforeAll(async () => {
    c = await ProcessCluster.start({ name: 'qkv-retention', tickMs: TICK_MS, electionTicks: ELECTION_TICKS, extraArgs: ['--history-retain-revisions', String(RETAIN)] });
    await c.waitForLeader({ timeoutMs: 20_000 });
  });
  afterAll(async () => {
    for (const k of clients) await k.close();
    await c?.teardown();
  });

  it('the leader compacts through the log; every node refuses old revisions and still reads recent ones', () => c.guard(async () => {
    const kv = await connectTo(c);
    clients.push(kv);
    const first = (await kv.put('ret/k', 'first')).revision;
    let last = first;
    await runBounded(WRITES, 32, async (i) => {
      last = Math.max(last, (await kv.put(`ret/${i % 50}`, String(i))).revision);
    });
    for (const n of c.nodes) {
      const reader = await connectTo(c, { endpoints: [n.address] });
      clients.push(reader);
      const refused = await waitFor(`retention compact applied on ${n.id}`, async () => {
        const r = await outcome(reader.get('ret/k', { revision: first, consistency: 'stale' }));
        return r.ok ? undefined : r;
      });
      expect(refused.ok ? undefined : refused.error).toMatchObject({ code: 'QKV_COMPACTED' });
      const compacted = (refused.ok ? 0 : (refused.error as { compactedRevision?: number }).compactedRevision) ?? 0;
      expect(compacted).toBeGreaterThan(first);
      expect(compacted).toBeLessThanOrEqual(last - RETAIN);
      expect(await reader.get('ret/k', { revision: last, consistency: 'stale', as: 'string' })).toMatchObject({ value: 'first' });
    }
  })());
});
