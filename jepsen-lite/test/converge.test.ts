// converge(): the final states after the heal pair each node's state hash with exactly the applied
// index it was taken at. A node that moves on between the status poll and the state hash (a write
// is answered before it lands everywhere) must not be compared under its old index.
import { describe, expect, it } from 'vitest';
import { checkLogAgreement } from '../src/checkers/log-agreement.js';
import type { NodeStatus } from '../src/db.js';
import { converge } from '../src/orchestrator.js';

/** A fake cluster: per node an applied index; `onHash` may move a node on just before its hash is taken. */
function fakeCluster(applied: Record<string, number>, onHash: (id: string, calls: number) => void) {
  const nodes = Object.keys(applied);
  let hashCalls = 0;
  const status = (id: string): Promise<NodeStatus | undefined> =>
    Promise.resolve({ id, role: 'follower', term: 2, leader: 'n1', commitIndex: applied[id]!, appliedIndex: applied[id]!, appliedHash: `a${applied[id]}`, firstIndex: 1 });
  const stateHash = (id: string) => {
    onHash(id, ++hashCalls);
    return Promise.resolve({ appliedIndex: applied[id]!, stateHash: `S${applied[id]}` });
  };
  return { nodes, status, stateHash };
}

describe('converge (final states after the heal)', () => {
  it('looks again when a node moved on between the status poll and its state hash', async () => {
    const applied = { n1: 10, n2: 10, n3: 10 };
    // On the first round of hashes, the last write lands on n2 and n3 (not yet on n1) just before theirs.
    const cluster = fakeCluster(applied, (id, calls) => {
      if (calls <= 3 && id !== 'n1') applied[id as 'n2' | 'n3'] = 11;
      if (calls === 3) setTimeout(() => (applied.n1 = 11), 10);
    });
    const finals = await converge(cluster, 5000);
    expect(finals).toEqual(['n1', 'n2', 'n3'].map((node) => ({ node, appliedIndex: 11, appliedHash: 'a11', stateHash: 'S11' })));
    expect(checkLogAgreement([], finals).valid).toBe(true);
  });

  it('gives up after the wait with stateHash null for a node it never caught at one index: unknown, not invalid', async () => {
    const applied = { n1: 10, n2: 10, n3: 10 };
    // n3 applies one more entry every time its hash is asked for (a stream of writes that never stops).
    const cluster = fakeCluster(applied, (id) => {
      if (id === 'n3') applied.n3++;
    });
    const t0 = Date.now();
    const finals = await converge(cluster, 600);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(600);
    expect(finals.map((f) => f.stateHash)).toEqual(['S10', 'S10', null]);
    const r = checkLogAgreement([], finals);
    expect(r.valid).toBe('unknown');
    expect(r.evidence.stateHashesMatch).toBe(true);
  });
});
