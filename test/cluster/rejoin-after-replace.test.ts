// A member that was down while another member was replaced rejoins (docs/server.md, "Who a node
// is"): when it comes back, its applied membership still records the replaced member's old
// incarnation, and the replacement is the leader — the only node that can send it the entries
// that record the new one. It takes that leader's appends and heartbeats (never its votes or
// acknowledgements: founding.test.ts shows that an amnesiac voter still elects no one) and
// catches up. Before, it refused the connection and stayed out for good (found by the whole-node
// simulation, seed 200118).
import { afterAll, describe, expect, it } from 'vitest';
import { ProcessCluster, httpRequest, jsonOf, waitFor } from '../harness/cluster.js';

const TICK_MS = 20;
const ELECTION_TICKS = 10;

const clusters: ProcessCluster[] = [];
afterAll(async () => {
  for (const c of clusters) await c.teardown();
});

describe('a member that missed a replacement', () => {
  it('takes the replaced leader\'s appends when it comes back and catches up', async () => {
    // Four voters, so that n1's replacement has a quorum while n4 is down.
    const c = await ProcessCluster.start({ name: 'qkv-rejoin', nodes: 4, tickMs: TICK_MS, electionTicks: ELECTION_TICKS });
    clusters.push(c);
    await c.guard(async () => {
      const first = (await c.waitForLeader()).id;
      expect((await c.put(first, 'before', 'x')).status).toBe(200);
      await waitFor('every incarnation recorded on n4', async () => {
        const m = jsonOf<{ voters: { incarnation?: string }[] }>(await httpRequest(c.node('n4').port, 'GET', '/v1/admin/members'));
        return m.voters.length === 4 && m.voters.every((v) => v.incarnation) ? true : undefined;
      }, 10_000);
      await c.stop('n4');
      // n1 is removed while it runs (n2 + n3 alone are no quorum of the four), then replaced.
      await waitFor('n1 removed', async () => {
        const l = (await c.waitForLeader({ among: ['n1', 'n2', 'n3'] })).id;
        return (await httpRequest(c.node(l).port, 'DELETE', '/v1/admin/members/n1', { timeoutMs: 5000 })).status === 200 ? true : undefined;
      }, 10_000);
      await c.stop('n1');
      await c.replaceNode('n1');
      // The replacement leads: n4 can learn the new membership only from it.
      await waitFor('n1 to lead', async () => {
        const l = (await c.waitForLeader({ among: ['n1', 'n2', 'n3'] })).id;
        if (l === 'n1') return true;
        await httpRequest(c.node(l).port, 'POST', '/v1/admin/leader/transfer', { body: JSON.stringify({ id: 'n1' }), timeoutMs: 5000 });
        return undefined;
      }, 20_000);
      expect((await c.put('n1', 'after', 'y')).status).toBe(200);

      await c.restart('n4');
      const all = await c.waitConverged(15_000);
      expect(all.find((s) => s.role === 'leader')?.id).toBe('n1');
      expect((await c.get('n4', 'after', 'stale')).body.toString()).toBe('y');
      const n1 = jsonOf<{ voters: { id: string; incarnation?: string }[] }>(await httpRequest(c.node('n4').port, 'GET', '/v1/admin/members'));
      expect(n1.voters.find((v) => v.id === 'n1')?.incarnation).toBe(c.incarnationOf('n1'));
    })();
  }, 60_000);
});
