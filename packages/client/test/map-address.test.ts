// Nodes behind NAT or in containers advertise addresses the client cannot reach (n1:7001);
// mapAddress turns them into reachable ones.
import { afterEach, describe, expect, it } from 'vitest';
import { connect } from '../src/index.js';
import { FakeCluster } from './fake-cluster.js';

describe('advertised addresses the client cannot reach', () => {
  let cluster: FakeCluster | undefined;
  afterEach(async () => {
    await cluster?.stop();
    cluster = undefined;
  });

  it('routes a write to the leader through mapAddress when seeded with a follower only', async () => {
    cluster = await FakeCluster.start(3);
    const c = cluster;
    c.advertised = (n) => `${n.id}.internal:7001`;
    const reachable = new Map(c.nodes.map((n) => [`${n.id}.internal:7001`, n.address]));
    const kv = await connect({
      endpoints: [c.node('n2').address],
      timeoutMs: 3000,
      mapAddress: (advertised) => reachable.get(advertised),
    });
    try {
      const { revision } = await kv.put('k', 'v');
      expect(revision).toBeGreaterThan(0);
      expect(kv.leaderAddress).toBe(c.node('n1').address);
    } finally {
      await kv.close();
    }
  });

  it('ignores a hint mapAddress rejects and stays on known nodes', async () => {
    cluster = await FakeCluster.start(3);
    const c = cluster;
    c.advertised = (n) => `${n.id}.internal:7001`;
    const kv = await connect({ endpoints: c.endpoints, timeoutMs: 3000, mapAddress: () => undefined });
    try {
      await kv.put('k', 'v');
      // Hints are matched by node id first, so the seeded leader is found without mapping.
      expect(kv.leaderAddress).toBe(c.node('n1').address);
    } finally {
      await kv.close();
    }
  });
});
