// kill -9 of the leader while 32 concurrent writers write unique keys through one client with
// retries on. Exactly-once through sessions: every key the client reported written exists with
// version 1 and the revision the client was given (a retried write was applied once and its retry
// got the original answer); no acknowledged write is missing; the killed node, restarted on its
// data directory, converges to the same applied hash. And no circuit breaker: a leader the client
// saw die, restarted and given leadership back, gets the client's writes again at once. And a
// frozen leader (SIGSTOP: sockets open, no answers): attempts time out and move on.
import { afterEach, describe, expect, it } from 'vitest';
import type { KvClient } from '@quorumkv/client';
import { type ProcessCluster, httpRequest, waitFor } from '../harness/cluster.js';
import { connectTo, outcome, startCluster } from './helpers.js';

const WRITERS = 32;
/** Upper bound on each writer's keys, so the load stops by itself whatever happens. */
const MAX_KEYS_PER_WRITER = 400;
/** Acknowledged writes before the kill, and again after it (the cluster carries on with two). */
const ACKS_BEFORE_KILL = 300;
const ACKS_AFTER_KILL = 300;
/** Each write's deadline, retries included: long enough to ride out an election on a slow box. */
const WRITE_TIMEOUT_MS = 20_000;

/** Writers of the SIGSTOP test. */
const PAUSE_WRITERS = 16;
/** attemptTimeoutMs of the SIGSTOP test: how long a call waits on the frozen leader before moving on. */
const PAUSE_ATTEMPT_TIMEOUT_MS = 1000;
/** Writers of the circuit-breaker test (fewer: it is about routing, not load). */
const BREAKER_WRITERS = 8;
/**
 * Longest pause in acknowledged writes allowed around a leadership transfer back to a node the
 * client saw die. Well under etcd's 5–10 s lock-out, well above a transfer (~election timeout).
 */
const LOCKOUT_PAUSE_MS_MAX = 4000;

interface Acked {
  key: string;
  revision: number;
}

describe('client failover with a real three-node cluster', () => {
  let cluster: ProcessCluster | undefined;
  let kv: KvClient | undefined;
  afterEach(async () => {
    await kv?.close();
    await cluster?.teardown();
    kv = cluster = undefined;
  });

  it('kill -9 of the leader under 32 writers: every acknowledged key exists once, with its revision; the killed node converges', async () => {
    const c = (cluster = await startCluster('qkv-client-failover'));
    await c.guard(async () => {
      const first = await c.waitForLeader();
      let retries = 0;
      const client = (kv = await connectTo(c, { timeoutMs: WRITE_TIMEOUT_MS, onRetry: () => void retries++ }));

      const acked: Acked[] = [];
      const failed: string[] = [];
      let stop = false;
      const writers = Array.from({ length: WRITERS }, async (_, w) => {
        for (let i = 0; i < MAX_KEYS_PER_WRITER && !stop; i++) {
          const key = `fo/w${String(w).padStart(2, '0')}/k${String(i).padStart(4, '0')}`;
          const r = await outcome(client.put(key, `value of ${key}`));
          if (r.ok) acked.push({ key, revision: r.value.revision });
          else failed.push(`${key}: ${r.code} ${r.error.message}`);
        }
      });

      try {
        await waitFor(`${ACKS_BEFORE_KILL} acks before the kill`, () => (acked.length >= ACKS_BEFORE_KILL ? true : undefined), 30_000);
        const ackedAtKill = acked.length;
        await c.kill9(first.id);
        await waitFor(`${ACKS_AFTER_KILL} acks after the kill (have ${acked.length - ackedAtKill})`, () => (acked.length >= ackedAtKill + ACKS_AFTER_KILL ? true : undefined), 40_000);
      } finally {
        stop = true;
        await Promise.all(writers);
      }
      console.info(`failover: ${acked.length} writes acknowledged, ${failed.length} failed, ${retries} retried attempts`);

      // The kill cut requests in flight on the leader's connection: the client must have retried.
      expect(retries).toBeGreaterThan(0);
      // With a 20 s deadline per call, one election must not make any write fail.
      expect(failed).toEqual([]);
      // Unique revisions: no two acknowledged writes claim the same Raft index.
      expect(new Set(acked.map((a) => a.revision)).size).toBe(acked.length);

      // Every acknowledged key exists with version 1 and the revision its put returned; no other key exists.
      const seen = new Map<string, { version: number; modRevision: number; createRevision: number }>();
      for await (const it of client.range({ prefix: 'fo/', as: 'string' })) {
        seen.set(it.key, { version: it.version, modRevision: it.modRevision, createRevision: it.createRevision });
      }
      const problems: string[] = [];
      for (const a of acked) {
        const s = seen.get(a.key);
        if (!s) problems.push(`${a.key}: acknowledged at revision ${a.revision} but missing`);
        else if (s.version !== 1) problems.push(`${a.key}: version ${s.version} (applied more than once)`);
        else if (s.modRevision !== a.revision) problems.push(`${a.key}: modRevision ${s.modRevision}, but the put returned ${a.revision}`);
      }
      const ackedKeys = new Set(acked.map((a) => a.key));
      for (const k of seen.keys()) if (!ackedKeys.has(k)) problems.push(`${k}: exists but was never acknowledged`);
      expect(problems).toEqual([]);
      expect(seen.size).toBe(acked.length);

      // The killed node restarts on its data directory and applies the same log (same hash).
      await c.restart(first.id);
      await client.put('fo/after-restart', 'x');
      const sts = await c.waitConverged(30_000);
      expect(sts.map((s) => s.id).sort()).toEqual(['n1', 'n2', 'n3']);
      expect(new Set(sts.map((s) => s.appliedHash)).size).toBe(1);
      // And serves every acknowledged key locally (stale read on that node alone).
      const local = await c.list(first.id, 'fo/w', 'stale');
      expect(local.size).toBe(acked.length);
    })();
  }, 120_000);

  it('SIGSTOP of the leader: attempts on the frozen node time out, writes move on, none is applied twice after it resumes', async () => {
    const c = (cluster = await startCluster('qkv-client-pause'));
    await c.guard(async () => {
      const first = await c.waitForLeader();
      const frozenAddress = c.node(first.id).address;
      const timeoutsOnFrozen: string[] = [];
      const client = (kv = await connectTo(c, {
        timeoutMs: WRITE_TIMEOUT_MS,
        attemptTimeoutMs: PAUSE_ATTEMPT_TIMEOUT_MS,
        onRetry: (e) => {
          // A write attempt that timed out after it was sent is indeterminate (cause: the timeout).
          const timedOut = e.error.code === 'QKV_TIMEOUT' || (e.error.code === 'QKV_INDETERMINATE' && (e.error.cause as { code?: string } | undefined)?.code === 'QKV_TIMEOUT');
          if (e.address === frozenAddress && timedOut) timeoutsOnFrozen.push(e.op);
        },
      }));
      const acked: Acked[] = [];
      const failed: string[] = [];
      let stop = false;
      const writers = Array.from({ length: PAUSE_WRITERS }, async (_, w) => {
        for (let i = 0; i < MAX_KEYS_PER_WRITER && !stop; i++) {
          const key = `pz/w${w}/k${String(i).padStart(4, '0')}`;
          const r = await outcome(client.put(key, 'v'));
          if (r.ok) acked.push({ key, revision: r.value.revision });
          else failed.push(`${key}: ${r.code} ${r.error.message}`);
        }
      });
      const acksAtLeast = (n: number, what: string) => waitFor(`${what} (have ${acked.length})`, () => (acked.length >= n ? true : undefined), 30_000);
      try {
        await acksAtLeast(100, '100 acks');
        // Frozen with its sockets open: requests reach it and are never answered.
        c.pause(first.id);
        await c.waitForLeader({ minTerm: first.term, timeoutMs: 30_000 });
        await acksAtLeast(acked.length + 100, '100 acks at the new leader');
        // It wakes up with proposals in its log that the new leader will overwrite.
        c.resume(first.id);
        await acksAtLeast(acked.length + 100, '100 acks after the old leader resumed');
      } finally {
        stop = true;
        await Promise.all(writers);
      }
      console.info(`pause: ${acked.length} acked, ${failed.length} failed, ${timeoutsOnFrozen.length} attempts timed out on the frozen leader`);
      expect(failed).toEqual([]);
      // Writes in flight on the frozen leader were retried elsewhere after attemptTimeoutMs.
      expect(timeoutsOnFrozen.length).toBeGreaterThan(0);
      const seen = new Map<string, { version: number; modRevision: number }>();
      for await (const it of client.range({ prefix: 'pz/', as: 'string' })) seen.set(it.key, { version: it.version, modRevision: it.modRevision });
      const problems = acked.filter((a) => seen.get(a.key)?.version !== 1 || seen.get(a.key)?.modRevision !== a.revision).map((a) => `${a.key}: ${JSON.stringify(seen.get(a.key))} but acked at ${a.revision}`);
      expect(problems).toEqual([]);
      expect(seen.size).toBe(acked.length);
      const sts = await c.waitConverged(30_000);
      expect(new Set(sts.map((s) => s.appliedHash)).size).toBe(1);
    })();
  }, 120_000);

  it('no circuit breaker: the killed leader, restarted and made leader again, gets the writes within a bounded pause', async () => {
    const c = (cluster = await startCluster('qkv-client-no-breaker'));
    await c.guard(async () => {
      const first = await c.waitForLeader();
      const client = (kv = await connectTo(c, { timeoutMs: WRITE_TIMEOUT_MS }));
      const ackTimes: number[] = [];
      const failed: string[] = [];
      let stop = false;
      const writers = Array.from({ length: BREAKER_WRITERS }, async (_, w) => {
        for (let i = 0; i < MAX_KEYS_PER_WRITER * 4 && !stop; i++) {
          const r = await outcome(client.put(`nb/w${w}/k${i}`, 'v'));
          if (r.ok) ackTimes.push(Date.now());
          else failed.push(`${r.code} ${r.error.message}`);
        }
      });
      const acksAtLeast = (n: number, what: string) => waitFor(`${what} (have ${ackTimes.length})`, () => (ackTimes.length >= n ? true : undefined), 30_000);
      let transferredAt = 0;
      try {
        await acksAtLeast(50, '50 acks');
        await c.kill9(first.id);
        const second = await c.waitForLeader({ exclude: first.id, minTerm: first.term, timeoutMs: 30_000 });
        await acksAtLeast(ackTimes.length + 50, '50 acks at the second leader');
        // The client has been failing to reach the dead node for a while: its back-off is at the maximum.
        await c.restart(first.id);
        await c.waitConverged(30_000);
        transferredAt = Date.now();
        const t = await httpRequest(c.node(second.id).port, 'POST', '/v1/admin/leader/transfer', { body: JSON.stringify({ id: first.id }), headers: { 'content-type': 'application/json' }, timeoutMs: 15_000 });
        expect(t.status, t.body.toString()).toBe(200);
        await waitFor('the client to write through the restarted leader', () => (client.leaderAddress === c.node(first.id).address ? true : undefined), 15_000);
        await acksAtLeast(ackTimes.length + 50, '50 acks at the restarted leader');
      } finally {
        stop = true;
        await Promise.all(writers);
      }
      expect(failed).toEqual([]);
      const after = ackTimes.filter((t) => t >= transferredAt).sort((a, b) => a - b);
      const before = ackTimes.filter((t) => t < transferredAt);
      let pauseMs = after[0]! - Math.max(...before);
      for (let i = 1; i < after.length; i++) pauseMs = Math.max(pauseMs, after[i]! - after[i - 1]!);
      console.info(`no circuit breaker: longest pause in acks around the transfer back to ${first.id}: ${pauseMs} ms`);
      // etcd's Node client locked clients out of a returning node for 5–10 s. Here the pause is the
      // transfer itself plus at most the shortened back-off (50 ms); the bound is loose for slow CI.
      expect(pauseMs).toBeLessThan(LOCKOUT_PAUSE_MS_MAX);
    })();
  }, 120_000);
});
