// Transactions and range deletes against a real three-node cluster: the client's txn (branch,
// per-op results, one revision), atomicity under concurrent conflicting transfers (every read of
// all accounts at one revision sums to the constant, also at each transfer's own revision), range
// delete through the client, HTTP and the CLI, and POST /v1/txn with its 400s, from a follower too.
import { spawn } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { KvClient } from '@quorumkv/client';
import { CLI_PATH, type ProcessCluster, httpRequest, jsonOf } from '../harness/cluster.js';
import { connectTo, outcome, startCluster } from './helpers.js';
import { mulberry32 } from '@quorumkv/testkit';

/** Accounts of the transfer test and the money each starts with. */
const ACCOUNTS = 5;
const START_BALANCE = 100;
/** Concurrent transfer workers, and transfers each attempts (bounded: conflicts are retried as new attempts). */
const WORKERS = 4;
const ATTEMPTS_PER_WORKER = 25;
const SEED = 1717;

/** Runs `quorumkv ARGS` with `stdin`; resolves with its exit code and output (bounded by a timeout). */
function cli(args: string[], stdin = ''): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, [CLI_PATH, ...args], { timeout: 30_000 });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    p.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    p.on('error', reject);
    p.on('close', (code) => resolve({ code, stdout, stderr }));
    p.stdin.end(stdin);
  });
}

const acct = (i: number) => `bank/${i}`;

describe('transactions and range deletes with a real cluster', () => {
  let c: ProcessCluster;
  let kv: KvClient;
  let followerPort: number;
  let endpoints: string;
  const guarded = (fn: () => Promise<void>) => () => c.guard(fn)();

  beforeAll(async () => {
    c = await startCluster('qkv-txn');
    kv = await connectTo(c, { timeoutMs: 15_000 });
    const leader = (await c.waitForLeader()).id;
    followerPort = c.nodes.find((n) => n.id !== leader)!.port;
    endpoints = c.nodes.map((n) => n.address).join(',');
  });
  afterAll(async () => {
    await kv?.close();
    await c?.teardown();
  });

  it('a txn runs one branch at one revision and answers each op; reads see its own writes', guarded(async () => {
    const a = await kv.put('t/a', '1');
    const r = await kv.txn(
      {
        compare: [{ key: 't/a', target: 'modRevision', op: '==', value: a.revision }, { key: 't/none', target: 'version', op: '==', value: 0 }],
        success: [{ op: 'put', key: 't/a', value: '2' }, { op: 'put', key: 't/b', value: 'x' }, { op: 'range', prefix: 't/', limit: 10 }, { op: 'delete', key: 't/none' }],
        failure: [{ op: 'get', key: 't/a' }],
      },
      { as: 'string' },
    );
    expect(r.succeeded).toBe(true);
    expect(r.revision).toBe(a.revision + 1);
    expect(r.results[2]).toMatchObject({ op: 'range', more: false, items: [{ key: 't/a', value: '2', modRevision: r.revision }, { key: 't/b', value: 'x', modRevision: r.revision }] });
    expect(r.results[3]).toEqual({ op: 'delete', deleted: false });
    // The same compare now fails: the failure branch runs and nothing is written.
    const again = await kv.txn({ compare: [{ key: 't/a', target: 'modRevision', op: '==', value: a.revision }], success: [{ op: 'put', key: 't/a', value: 'no' }], failure: [{ op: 'get', key: 't/a' }] }, { as: 'string' });
    expect(again).toMatchObject({ succeeded: false, revision: r.revision, results: [{ op: 'get', item: { value: '2', version: 2 } }] });
    // A branch that changes one key twice is refused before it reaches the log.
    expect((await outcome(kv.txn({ success: [{ op: 'put', key: 'k', value: '1' }, { op: 'delete', key: 'k' }] }))).ok).toBe(false);
    expect(await outcome(kv.txn({ success: [{ op: 'put', key: 'k', value: '1' }, { op: 'put', key: 'k', value: '2' }] }))).toMatchObject({ ok: false, code: 'QKV_INVALID_ARGUMENT' });
  }));

  it('concurrent conflicting transfers keep the total: every read at one revision sums to the constant', guarded(async () => {
    let funded = 0;
    for (let i = 0; i < ACCOUNTS; i++) funded = (await kv.put(acct(i), String(START_BALANCE))).revision;
    const total = ACCOUNTS * START_BALANCE;
    const committed: number[] = [];
    let conflicts = 0;
    const sums: number[] = [];
    const readAll = async () => {
      const r = await kv.txn({ success: [{ op: 'range', prefix: 'bank/', limit: ACCOUNTS }] }, { as: 'string' });
      const range = r.results[0];
      if (range?.op !== 'range') throw new Error('no range result');
      return range.items;
    };
    const worker = async (w: number) => {
      const rnd = mulberry32(SEED + w);
      for (let n = 0; n < ATTEMPTS_PER_WORKER; n++) {
        const items = await readAll();
        sums.push(items.reduce((s, i) => s + Number(i.value), 0));
        const from = items[Math.floor(rnd() * ACCOUNTS)]!;
        const to = items[(items.indexOf(from) + 1 + Math.floor(rnd() * (ACCOUNTS - 1))) % ACCOUNTS]!;
        const amount = Math.min(Number(from.value), 1 + Math.floor(rnd() * 10));
        const r = await kv.txn({
          compare: [
            { key: from.key, target: 'modRevision', op: '==', value: from.modRevision },
            { key: to.key, target: 'modRevision', op: '==', value: to.modRevision },
          ],
          success: [
            { op: 'put', key: from.key, value: String(Number(from.value) - amount) },
            { op: 'put', key: to.key, value: String(Number(to.value) + amount) },
          ],
        });
        if (r.succeeded) committed.push(r.revision);
        else conflicts++;
      }
    };
    await Promise.all(Array.from({ length: WORKERS }, (_, w) => worker(w)));
    expect(sums.every((s) => s === total)).toBe(true);
    expect(committed.length).toBeGreaterThan(0);
    // Every transfer wrote both accounts at its own revision: the store balances at every revision
    // from the funding on (a transfer split over two revisions would show a half-done state).
    expect(new Set(committed).size).toBe(committed.length);
    for (let rev = funded; rev <= Math.max(...committed); rev++) {
      let sum = 0;
      for await (const item of kv.range({ prefix: 'bank/', revision: rev, as: 'string' })) sum += Number(item.value);
      expect(sum).toBe(total);
    }
    console.log(`bank: ${committed.length} transfers committed, ${conflicts} lost a compare, ${sums.length} reads all summed to ${total} (seed ${SEED})`);
  }));

  it('range delete through the client, HTTP and the CLI: one revision per delete, counts reported', guarded(async () => {
    for (const k of ['rd/1', 'rd/2', 'rd/3', 'rd0', 'h/1', 'h/2', 'cli/1', 'cli/2', 'cli/3']) await kv.put(k, 'v');
    const r = await kv.delete({ prefix: 'rd/' });
    expect(r.deleted).toBe(3);
    for (const k of ['rd/1', 'rd/2', 'rd/3']) expect(await kv.get(k, { revision: r.revision })).toBeUndefined();
    expect(await kv.get('rd/1', { revision: r.revision - 1 })).toBeDefined();
    expect((await kv.get('rd0'))?.text()).toBe('v');
    expect(await kv.deleteRange('rd/', 'rd0')).toMatchObject({ deleted: 0, revision: r.revision });

    // HTTP, from a follower (forwarded to the leader like any write).
    const h = jsonOf<{ deleted: number; revision: number }>(await httpRequest(followerPort, 'DELETE', '/v1/kv?prefix=h%2F'));
    expect(h.deleted).toBe(2);
    expect((await httpRequest(followerPort, 'DELETE', '/v1/kv')).status).toBe(400);

    const out = await cli(['del', 'cli/1', 'cli/3', '--endpoints', endpoints]);
    expect(out.code).toBe(0);
    expect(JSON.parse(out.stdout)).toMatchObject({ deleted: 2 });
    expect((await kv.get('cli/3'))?.text()).toBe('v');
  }));

  it('POST /v1/txn takes JSON (from a follower too) and answers 400 for bad bodies; the CLI reads it from stdin', guarded(async () => {
    const post = (body: string, q = '') => httpRequest(followerPort, 'POST', `/v1/txn${q}`, { body, headers: { 'content-type': 'application/json' } });
    const ok = await post(
      JSON.stringify({
        compare: [{ key: 'j/x', target: 'version', op: '==', value: 0 }],
        success: [{ op: 'put', key: 'j/x', value: 'hello' }, { op: 'get', key: 'j/x' }],
        failure: [{ op: 'get', key: 'j/x' }],
      }),
    );
    expect(ok.status).toBe(200);
    const body = jsonOf<{ succeeded: boolean; revision: number; results: unknown[] }>(ok);
    expect(body).toMatchObject({ succeeded: true, results: [{ op: 'put' }, { op: 'get', item: { key: 'j/x', value: 'hello', version: 1 } }] });
    // base64 keys and values.
    const b64 = await post(JSON.stringify({ success: [{ op: 'get', key: Buffer.from('j/x').toString('base64') }] }), '?encoding=base64');
    expect(jsonOf(b64)).toMatchObject({ results: [{ op: 'get', item: { value: Buffer.from('hello').toString('base64') } }] });
    const bad: Array<[string, RegExp]> = [
      ['{not json', /not valid JSON/],
      ['[]', /JSON object/],
      [JSON.stringify({ succes: [] }), /unknown field "succes"/],
      [JSON.stringify({ success: [{ op: 'put', key: 'a' }] }), /success\[0\]\.value/],
      [JSON.stringify({ compare: [{ key: 'a', target: 'version', op: '~', value: 1 }] }), /compare\[0\]\.op/],
      [JSON.stringify({ compare: [{ key: 'a', target: 'version', op: '==', value: 'x' }] }), /compare\[0\]\.value/],
      [JSON.stringify({ success: [{ op: 'put', key: 'a', value: '1' }, { op: 'deleteRange', prefix: '' }] }), /a transaction may change a key once/],
      [JSON.stringify({ success: Array.from({ length: 129 }, () => ({ op: 'get', key: 'a' })) }), /success/],
    ];
    for (const [text, message] of bad) {
      const r = await post(text);
      expect([r.status, jsonOf<{ code: string }>(r).code], text).toEqual([400, 'QKV_INVALID_ARGUMENT']);
      expect(jsonOf<{ message: string }>(r).message).toMatch(message);
    }
    const out = await cli(['txn', '--endpoints', endpoints], JSON.stringify({ success: [{ op: 'get', key: 'j/x' }] }));
    expect(out.code).toBe(0);
    expect(JSON.parse(out.stdout)).toMatchObject({ succeeded: true, results: [{ op: 'get', item: { value: 'hello' } }] });
  }));

  it('Idempotency-Key: a retried HTTP write returns the first answer and applies once; a reused key with another request is 422', guarded(async () => {
    const leaderPort = c.node((await c.waitForLeader()).id).port;
    const put = (port: number, key: string, value: string, idem: string) => httpRequest(port, 'PUT', `/v1/kv/${key}`, { body: value, headers: { 'idempotency-key': idem } });
    const first = await put(leaderPort, 'idem-k', 'v1', 'order-17');
    expect(first.status).toBe(200);
    // The retry arrives through a follower (as a load balancer might send it): same answer, not applied again.
    const retry = await put(followerPort, 'idem-k', 'v1', 'order-17');
    expect([retry.status, jsonOf(retry)]).toEqual([200, jsonOf(first)]);
    expect((await kv.get('idem-k'))?.version).toBe(1);
    const reused = await put(followerPort, 'idem-k', 'v2', 'order-17');
    expect([reused.status, jsonOf<{ code: string }>(reused).code]).toEqual([422, 'QKV_IDEMPOTENCY_KEY_REUSED']);
    expect((await kv.get('idem-k'))?.text()).toBe('v1');
    // A transaction: its whole answer is replayed.
    const body = JSON.stringify({ success: [{ op: 'put', key: 'idem-n', value: '1' }, { op: 'get', key: 'idem-k' }] });
    const t1 = await httpRequest(leaderPort, 'POST', '/v1/txn', { body, headers: { 'idempotency-key': 'txn-1' } });
    const t2 = await httpRequest(leaderPort, 'POST', '/v1/txn', { body, headers: { 'idempotency-key': 'txn-1' } });
    expect([t2.status, jsonOf(t2)]).toEqual([200, jsonOf(t1)]);
    expect((await kv.get('idem-n'))?.version).toBe(1);
    const bad = await put(leaderPort, 'idem-k', 'v3', 'has space');
    expect([bad.status, jsonOf<{ code: string }>(bad).code]).toEqual([400, 'QKV_INVALID_ARGUMENT']);
  }));
});
