import { it } from 'vitest';
import { ProcessCluster } from '../harness/cluster.js';
it('x', async () => {
  for (let i = 0; i < 8; i++) {
    const c = await ProcessCluster.start({ name: 'qkv-x', tickMs: 20, electionTicks: 10 });
    try {
      await c.waitForLeader({ timeoutMs: 8000 });
      await c.teardown();
    } catch (e) {
      console.log('FAILED', i, c.describeLogs(60));
      await c.teardown({ keepOnFailure: true });
      throw e;
    }
  }
}, 120000);
