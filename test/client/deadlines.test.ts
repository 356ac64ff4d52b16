// Deadlines, AbortSignal, close() and reconnection against a real three-node cluster. The tests
// of this file run in order on one cluster and build on each other: the first kills both
// followers (no quorum), the next three use that state, the last restarts everything.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { KvClient } from '@quorumkv/client';
import { type ProcessCluster, sleep, waitFor } from '../harness/cluster.js';
import { connectTo, outcome, startCluster } from './helpers.js';

/** The short deadline under test. */
const SHORT_DEADLINE_MS = 500;
/**
 * How late past its deadline a call may settle: timers on a loaded 2-core CI box fire late, and
 * one attempt may be mid-connect. Loose on purpose; what matters is "about the deadline", not
 * "after the 5 s default" or "never".
 */
const LATE_MS_MAX = 1500;
/** How long after close() / abort the calls may take to settle. */
const SETTLE_MS_MAX = 1000;
/** The answers a write or linearizable read may give when there is no quorum. */
const NO_QUORUM_CODES = ['QKV_TIMEOUT', 'QKV_NO_LEADER', 'QKV_UNAVAILABLE'];
/**
 * A write proposed to a leader that has just lost its quorum sits in its log and may commit
 * later: its answer is QKV_INDETERMINATE, never one of the "not applied" codes above.
 */
const NO_QUORUM_WRITE_CODES = [...NO_QUORUM_CODES, 'QKV_INDETERMINATE'];

/** A write's error answer is QKV_CLOSED / QKV_ABORTED, or QKV_INDETERMINATE caused by that (it was sent). */
function cutOffAs(r: { ok: boolean; code?: string; error?: Error }, code: string): boolean {
  if (r.ok) return false;
  if (r.code === code) return true;
  return r.code === 'QKV_INDETERMINATE' && (r.error?.cause as { code?: string } | undefined)?.code === code;
}

describe('deadlines, abort, close and reconnect with a real cluster', () => {
  let c: ProcessCluster;
  /** The client that lives through the whole file (kills, restarts). */
  let kv: KvClient;
  let survivor: string;
  /** Writes made without quorum, with their answers (checked once quorum is back). */
  const noQuorumWrites: { key: string; code: string }[] = [];
  const guarded = (fn: () => Promise<void>) => () => c.guard(fn)();

  beforeAll(async () => {
    c = await startCluster('qkv-client-deadlines');
    kv = await connectTo(c);
    await kv.put('dl/before', 'written with quorum');
  });
  afterAll(async () => {
    await kv?.close();
    await c?.teardown();
  });

  it('without quorum, calls with a short deadline reject within about the deadline; stale reads still answer', guarded(async () => {
    const leader = await c.waitForLeader();
    survivor = leader.id;
    await c.kill9All(c.nodes.filter((n) => n.id !== survivor).map((n) => n.id));

    // Right after the kill the survivor still believes it leads (until CheckQuorum): writes wait for a commit.
    const first = await Promise.all([
      outcome(kv.put('dl/no-quorum-1', 'x', { timeoutMs: SHORT_DEADLINE_MS })),
      outcome(kv.get('dl/before', { timeoutMs: SHORT_DEADLINE_MS })),
      outcome(kv.cas('dl/before', { ifAbsent: true, value: 'y' }, { timeoutMs: SHORT_DEADLINE_MS })),
    ]);
    // Later it has stepped down: nobody leads, followers answer no-leader or refuse connections.
    await waitFor('the survivor to step down', async () => ((await c.status(survivor))?.role !== 'leader' ? true : undefined));
    const later = await Promise.all([
      outcome(kv.put('dl/no-quorum-2', 'x', { timeoutMs: SHORT_DEADLINE_MS })),
      outcome(kv.get('dl/before', { timeoutMs: SHORT_DEADLINE_MS })),
      outcome(kv.delete('dl/before', { timeoutMs: SHORT_DEADLINE_MS })),
    ]);
    const isWrite = [true, false, true, true, false, true];
    [...first, ...later].forEach((r, i) => {
      expect(r.ok, 'no call may succeed without quorum').toBe(false);
      if (r.ok) return;
      expect(isWrite[i] ? NO_QUORUM_WRITE_CODES : NO_QUORUM_CODES).toContain(r.code);
      expect(r.elapsedMs).toBeLessThanOrEqual(SHORT_DEADLINE_MS + LATE_MS_MAX);
    });
    for (const [key, r] of [['dl/no-quorum-1', first[0]], ['dl/no-quorum-2', later[0]]] as const) if (!r.ok) noQuorumWrites.push({ key, code: r.code });
    console.info(`no quorum: settled after ${[...first, ...later].map((r) => `${r.elapsedMs} ms (${r.ok ? 'ok' : r.code})`).join(', ')}`);

    // A stale read is local: the lone node answers it from its own state.
    const stale = await kv.get('dl/before', { consistency: 'stale', as: 'string', timeoutMs: 5000 });
    expect(stale).toMatchObject({ value: 'written with quorum', version: 1 });
  }));

  // When the next retry back-off is longer than the time left, the call must still retry until its
  // deadline rather than give up at once; a fixed 1.2 s back-off makes the case show every time.
  // The write's code depends on where the lone node was when the attempt reached it: refused
  // before proposing (QKV_TIMEOUT at the deadline: not applied) or proposed by a leader that had not
  // yet stepped down (QKV_INDETERMINATE: it may still apply). Both are true answers.
  it('without quorum, a call keeps trying until its deadline, even when the next back-off is longer than the time left', async () => {
    const early = await connectTo(c, {
      retryBackoff: { initialMs: 1200, maxMs: 1200, multiplier: 1 },
      reconnectBackoff: { initialMs: 60_000, maxMs: 60_000, multiplier: 1 },
    });
    try {
      const r = await outcome(early.put('dl/early', 'x', { timeoutMs: 1000 }));
      console.info(`a 1000 ms call with a 1.2 s retry back-off settled after ${r.elapsedMs} ms (${r.ok ? 'ok' : r.code})`);
      expect(['QKV_TIMEOUT', 'QKV_INDETERMINATE']).toContain(r.ok ? 'ok' : r.code);
      expect(r.elapsedMs, 'rejected with "deadline exceeded" before the deadline').toBeGreaterThanOrEqual(900);
    } finally {
      await early.close();
    }
  });

  it('an AbortSignal ends a call at once: already aborted, aborted mid-call, AbortSignal.timeout', guarded(async () => {
    const pre = new AbortController();
    pre.abort(new Error('caller gave up'));
    const r0 = await outcome(kv.put('dl/abort-0', 'x', { signal: pre.signal, timeoutMs: 20_000 }));
    expect(r0.ok ? 'ok' : r0.code).toBe('QKV_ABORTED');

    const mid = new AbortController();
    const reason = new Error('user pressed cancel');
    const pending = outcome(kv.put('dl/abort-1', 'x', { signal: mid.signal, timeoutMs: 20_000 }));
    await sleep(200);
    const abortedAt = Date.now();
    mid.abort(reason);
    const r1 = await pending;
    // QKV_ABORTED if the abort came between attempts; QKV_INDETERMINATE (cause: the abort) if an
    // attempt had been sent and was still unanswered — the client cannot know it would fail.
    expect(cutOffAs(r1, 'QKV_ABORTED'), `${r1.ok ? 'ok' : r1.code}`).toBe(true);
    const abortError = r1.ok ? undefined : r1.code === 'QKV_ABORTED' ? r1.error : (r1.error.cause as Error);
    expect(abortError?.cause).toBe(reason);
    expect(Date.now() - abortedAt).toBeLessThanOrEqual(SETTLE_MS_MAX);

    const r2 = await outcome(kv.get('dl/before', { signal: AbortSignal.timeout(300), timeoutMs: 20_000 }));
    expect(r2.ok ? 'ok' : r2.code).toBe('QKV_ABORTED');
    expect(r2.elapsedMs).toBeLessThanOrEqual(300 + LATE_MS_MAX);
  }));

  it('close() rejects every call in flight with QKV_CLOSED (a write already sent: QKV_INDETERMINATE), and every later call too', guarded(async () => {
    const doomed = await connectTo(c, { timeoutMs: 20_000 });
    const calls = [
      ...Array.from({ length: 16 }, (_, i) => outcome(doomed.put(`dl/closed-${i}`, 'x'))),
      ...Array.from({ length: 4 }, () => outcome(doomed.get('dl/before'))),
      outcome(doomed.status()),
      outcome((async () => {
        for await (const _ of doomed.range({ prefix: 'dl/' })) void _;
      })()),
    ];
    await sleep(300);
    const closedAt = Date.now();
    await doomed.close();
    const results = await Promise.all(calls);
    const settledMs = Date.now() - closedAt;
    // status may be answered by the lone node before close(); everything that needs quorum may not.
    const needQuorum = results.filter((_, i) => i !== 20);
    // Writes that had an attempt in flight: QKV_INDETERMINATE caused by QKV_CLOSED.
    expect(needQuorum.filter((r) => !cutOffAs(r, 'QKV_CLOSED')).map((r) => (r.ok ? 'ok' : r.code))).toEqual([]);
    expect(results.slice(16, 20).map((r) => (r.ok ? 'ok' : r.code))).toEqual(['QKV_CLOSED', 'QKV_CLOSED', 'QKV_CLOSED', 'QKV_CLOSED']);
    expect(settledMs).toBeLessThanOrEqual(SETTLE_MS_MAX);
    const after = await Promise.all([outcome(doomed.put('dl/after-close', 'x')), outcome(doomed.get('dl/before', { consistency: 'stale' }))]);
    expect(after.map((r) => (r.ok ? 'ok' : r.code))).toEqual(['QKV_CLOSED', 'QKV_CLOSED']);
  }));

  it('the same client works again after every node was killed and restarted, including a write made during the outage', guarded(async () => {
    await Promise.all(c.nodes.filter((n) => n.id !== survivor).map((n) => c.restart(n.id)));
    const healed = await kv.put('dl/healed', 'quorum is back', { timeoutMs: 20_000 });
    expect(healed.revision).toBeGreaterThan(0);

    await c.kill9All();
    // A write issued while every node is down retries (with back-off) until they come back.
    const duringOutage = outcome(kv.put('dl/during-outage', 'once', { timeoutMs: 30_000 }));
    await sleep(1000);
    await Promise.all(c.nodes.map((n) => c.restart(n.id)));
    const restartedAt = Date.now();
    const r = await duringOutage;
    console.info(`all nodes restarted: the write made during the outage was acknowledged ${Date.now() - restartedAt} ms after the last node listened`);
    expect(r.ok ? 'ok' : `${r.code}: ${r.error.message}`).toBe('ok');

    expect(await kv.get('dl/during-outage', { as: 'string', timeoutMs: 20_000 })).toMatchObject({ value: 'once', version: 1 });
    expect(await kv.get('dl/healed', { as: 'string' })).toMatchObject({ value: 'quorum is back' });
    expect(await kv.get('dl/before', { as: 'string' })).toMatchObject({ value: 'written with quorum', version: 1 });
    // Writes that failed without quorum with a "not applied" code were never applied; an
    // indeterminate one may have been (the lone leader had it in its log).
    expect(noQuorumWrites.length).toBe(2);
    for (const w of noQuorumWrites) {
      const found = await kv.get(w.key);
      if (w.code === 'QKV_INDETERMINATE') console.info(`${w.key} answered QKV_INDETERMINATE: ${found ? 'applied' : 'not applied'}`);
      else expect(found, `${w.key} answered ${w.code} but was applied`).toBeUndefined();
    }
    const next = await kv.put('dl/after-restart', 'y');
    expect(next.revision).toBeGreaterThan(r.ok ? r.value.revision : 0);
  }), 60_000);
});
