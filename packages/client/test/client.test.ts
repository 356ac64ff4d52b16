// The client against a fake three-node cluster (real WebSockets on 127.0.0.1, real client
// endpoint, fake KvService). Each test says which failure it injects and what the caller must see.

import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  AbortedError,
  CasFailedError,
  ClosedError,
  IndeterminateError,
  InvalidArgumentError,
  SessionExpiredError,
  TimeoutError,
  TooLargeError,
  UnavailableError,
  DiskFullError,
  StorageUnavailableError,
  connect,
  writeOutcomeOf,
  type ConnectOptions,
  type KvClient,
} from '@quorumkv/client';
import { WebSocketServer } from 'ws';
import { decodeRequestFrame, DEFAULT_LIMITS, encodeFrame, PROTOCOL_VERSION } from '@quorumkv/protocol';
import { FakeCluster } from './fake-cluster.js';
import { mulberry32 } from '@quorumkv/testkit';

let cluster: FakeCluster;
const clients: KvClient[] = [];

async function client(extra: Partial<ConnectOptions> = {}): Promise<KvClient> {
  const kv = await connect({ endpoints: cluster.endpoints, random: mulberry32(1), ...extra });
  clients.push(kv);
  return kv;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

beforeEach(async () => {
  cluster = await FakeCluster.start(3);
});

afterEach(async () => {
  for (const kv of clients.splice(0)) await kv.close();
  await cluster.stop();
});

describe('operations', () => {
  it('puts, gets, deletes, with revision metadata and text helpers', async () => {
    const kv = await client();
    const w1 = await kv.put('user/1', 'ada');
    const w2 = await kv.put('user/1', 'grace');
    expect(w2.revision).toBeGreaterThan(w1.revision);
    const item = await kv.get('user/1');
    expect(item?.text()).toBe('grace');
    expect(item?.keyText()).toBe('user/1');
    expect(item?.value).toBeInstanceOf(Uint8Array);
    expect(item).toMatchObject({ createRevision: w1.revision, modRevision: w2.revision, version: 2 });
    const asText = await kv.get('user/1', { as: 'string' });
    expect(asText?.value).toBe('grace');
    expect(await kv.delete('user/1')).toMatchObject({ deleted: true });
    expect(await kv.get('user/1')).toBeUndefined();
    expect(await kv.delete('user/1')).toMatchObject({ deleted: false });
  });

  it('accepts binary keys and values', async () => {
    const kv = await client();
    const key = new Uint8Array([0, 255, 1]);
    const value = new Uint8Array([9, 0, 9]);
    await kv.put(key, value);
    expect(Array.from((await kv.get(key))?.value ?? [])).toEqual([9, 0, 9]);
  });

  it('does compare-and-swap with each condition and both actions', async () => {
    const kv = await client();
    const { revision } = await kv.cas('lock', { ifAbsent: true, value: 'me' });
    await expect(kv.cas('lock', { ifAbsent: true, value: 'you' })).rejects.toBeInstanceOf(CasFailedError);
    const failed = await kv.cas('lock', { ifModRevision: revision + 100, value: 'x' }).catch((e: unknown) => e);
    expect(failed).toMatchObject({ code: 'QKV_CAS_FAILED', actualModRevision: revision });
    await kv.cas('lock', { ifModRevision: revision, value: 'me2' });
    await expect(kv.cas('lock', { ifValue: 'me', delete: true })).rejects.toMatchObject({ code: 'QKV_CAS_FAILED' });
    await kv.cas('lock', { ifValue: 'me2', delete: true });
    expect(await kv.get('lock')).toBeUndefined();
  });

  it('pages through a range lazily, in key order, honouring limit, prefix and [start, end)', async () => {
    const kv = await client();
    for (let i = 0; i < 25; i++) await kv.put(`r/${String(i).padStart(2, '0')}`, `v${i}`);
    await kv.put('s/other', 'x');
    const before = cluster.node('n1').stats.requests;
    const keys: string[] = [];
    for await (const e of kv.range({ prefix: 'r/', limit: 22, pageSize: 10 })) keys.push(e.keyText());
    expect(keys).toEqual(Array.from({ length: 22 }, (_, i) => `r/${String(i).padStart(2, '0')}`));
    expect(cluster.node('n1').stats.requests - before).toBe(3);
    const between: string[] = [];
    for await (const e of kv.range({ start: 'r/05', end: 'r/08', as: 'string' })) between.push(e.key);
    expect(between).toEqual(['r/05', 'r/06', 'r/07']);
    let all = 0;
    for await (const _ of kv.range({ prefix: '' })) all++;
    expect(all).toBe(26);
  });

  it('reports the cluster status', async () => {
    const kv = await client();
    const s = await kv.status();
    expect(s.leader?.id).toBe('n1');
    expect(s.members.map((m) => m.id)).toEqual(['n1', 'n2', 'n3']);
  });

  it('refuses bad arguments before sending anything', async () => {
    const kv = await client();
    const before = cluster.nodes.reduce((n, x) => n + x.stats.requests, 0);
    await expect(kv.put('', 'v')).rejects.toBeInstanceOf(InvalidArgumentError);
    await expect(kv.put('k'.repeat(5000), 'v')).rejects.toBeInstanceOf(TooLargeError);
    await expect(kv.put('k', new Uint8Array(1024 * 1024 + 1))).rejects.toBeInstanceOf(TooLargeError);
    await expect(kv.cas('k', { ifAbsent: true } as never)).rejects.toBeInstanceOf(InvalidArgumentError);
    await expect(kv.get('k', { consistency: 'eventual' as never })).rejects.toBeInstanceOf(InvalidArgumentError);
    expect(() => kv.range({} as never)).toThrow(InvalidArgumentError);
    await expect(kv.put('k', 'v', { timeoutMs: -1 })).rejects.toBeInstanceOf(InvalidArgumentError);
    expect(cluster.nodes.reduce((n, x) => n + x.stats.requests, 0)).toBe(before);
  });
});

describe('routing', () => {
  it('finds the leader from any seed and sends writes and linearizable reads only to it', async () => {
    cluster.elect('n3');
    const kv = await client({ endpoints: [cluster.node('n1').address] });
    for (let i = 0; i < 10; i++) await kv.put(`k${i}`, 'v');
    for (let i = 0; i < 10; i++) await kv.get(`k${i}`);
    expect(kv.leaderAddress).toBe(cluster.node('n3').address);
    expect(cluster.node('n3').stats.writes).toBe(10);
    expect(cluster.node('n1').stats.writes + cluster.node('n2').stats.writes).toBe(0);
  });

  it('spreads stale reads over the nodes', async () => {
    const kv = await client();
    await kv.put('k', 'v');
    for (let i = 0; i < 30; i++) expect((await kv.get('k', { consistency: 'stale' }))?.text()).toBe('v');
    for (const n of cluster.nodes) expect(n.stats.staleReads).toBeGreaterThanOrEqual(5);
  });

  it('follows a leader change through NOT_LEADER hints', async () => {
    const retries: string[] = [];
    const kv = await client({ onRetry: (e) => retries.push(`${e.op} ${e.error.code} ${e.delayMs}`) });
    await kv.put('a', '1');
    cluster.elect('n2');
    await kv.put('b', '2');
    expect(retries).toEqual(['put QKV_NOT_LEADER 0']);
    expect(kv.leaderAddress).toBe(cluster.node('n2').address);
    expect(cluster.node('n2').stats.writes).toBe(1);
  });

  it('waits out an election (NO_LEADER) within the deadline', async () => {
    const kv = await client();
    cluster.elect(null);
    setTimeout(() => cluster.elect('n3'), 150);
    const { revision } = await kv.put('k', 'v', { timeoutMs: 3000 });
    expect(cluster.store.get(new TextEncoder().encode('k'))?.modRevision).toBe(revision);
  });

  it.each([
    ['QKV_DISK_FULL', () => new DiskFullError()],
    ['QKV_STORAGE_UNAVAILABLE', () => new StorageUnavailableError()],
  ] as const)('a node that cannot persist (%s) is passed over; the write lands once', async (_code, error) => {
    const kv = await client();
    cluster.faults.refuse = 2;
    cluster.faults.refuseError = error;
    const { revision } = await kv.put('k', 'v', { timeoutMs: 3000 });
    expect(cluster.store.get(new TextEncoder().encode('k'))?.modRevision).toBe(revision);
    expect(cluster.faults.refuse).toBe(0);
  });

  it('retries busy answers after their hint', async () => {
    const kv = await client();
    cluster.faults.busy = 3;
    cluster.faults.busyRetryAfterMs = 30;
    const t0 = Date.now();
    await kv.put('k', 'v');
    expect(Date.now() - t0).toBeGreaterThanOrEqual(80); // 3 hints of >= 30 ms each (a lower bound, not speed)
    expect(cluster.node('n1').stats.requests).toBe(4);
  });
});

describe('exactly-once writes', () => {
  it('a write whose answer was lost is retried and returns the original revision', async () => {
    const kv = await client();
    await kv.put('other', 'x');
    cluster.faults.dropAfterApply = 1;
    const { revision } = await kv.put('k', 'v');
    const item = cluster.store.get(new TextEncoder().encode('k'));
    expect(item).toMatchObject({ modRevision: revision, version: 1 });
    expect(cluster.store.applied).toBe(2);
    expect(cluster.node('n1').stats.writes).toBe(3); // other, k, k again (deduplicated)
  });

  it('a cas whose answer was lost gets its original outcome, not a failure against itself', async () => {
    const kv = await client();
    cluster.faults.dropAfterApply = 1;
    const { revision } = await kv.cas('lock', { ifAbsent: true, value: 'me' });
    expect(cluster.store.get(new TextEncoder().encode('lock'))?.modRevision).toBe(revision);
  });

  it('a lost answer plus a failover still applies the write once', async () => {
    const kv = await client();
    cluster.faults.dropAfterApply = 1;
    cluster.node('n1').cutConnections();
    setTimeout(() => cluster.elect('n2'), 0);
    const { revision } = await kv.put('k', 'v');
    expect(cluster.store.get(new TextEncoder().encode('k'))).toMatchObject({ modRevision: revision, version: 1 });
    expect(cluster.store.applied).toBe(1);
  });

  it('32 concurrent writers under lost answers and leader changes: every key once, none missing', async () => {
    const seed = Number(process.env.QKV_SEED ?? 20261122);
    const rnd = mulberry32(seed);
    const kv = await client({ random: mulberry32(seed + 1) });
    // Every 10 ms: lose the answer of a write (30 %), elect a random leader (5 %, so roughly every
    // 200 ms), or answer one request busy (5 %).
    const chaos = setInterval(() => {
      const r = rnd();
      if (r < 0.3) cluster.faults.dropAfterApply++;
      else if (r < 0.35) cluster.elect(`n${1 + Math.floor(rnd() * 3)}`);
      else if (r < 0.4) cluster.faults.busy++;
    }, 10);
    const acked: string[] = [];
    try {
      await Promise.all(
        Array.from({ length: 32 }, async (_, w) => {
          for (let i = 0; i < 8; i++) {
            const key = `w${w}/k${i}`;
            await kv.put(key, 'v', { timeoutMs: 10_000 });
            acked.push(key);
          }
        }),
      );
    } catch (e) {
      throw new Error(`failed with seed ${seed}; replay: QKV_SEED=${seed} pnpm vitest run packages/client/test/client.test.ts`, { cause: e });
    } finally {
      clearInterval(chaos);
    }
    expect(acked).toHaveLength(256);
    for (const key of acked) expect(cluster.store.get(new TextEncoder().encode(key))?.version, key).toBe(1);
    expect(cluster.store.applied).toBe(256);
  });

  it('an expired session surfaces SESSION_EXPIRED and the next write uses a new session', async () => {
    const kv = await client();
    await kv.put('a', '1');
    const old = kv.sessionId;
    cluster.store.expired.add(old);
    await expect(kv.put('b', '2')).rejects.toBeInstanceOf(SessionExpiredError);
    expect(kv.sessionId).not.toBe(old);
    await kv.put('c', '3');
  });
});

describe('indeterminate writes: never reported as failed, retried only exactly-once', () => {
  const key = (s: string): Uint8Array => new TextEncoder().encode(s);

  it('a write the node answered QKV_INDETERMINATE is retried with its session seq and applied once', async () => {
    const kv = await client();
    cluster.faults.failAfterApply = 1;
    const { revision } = await kv.put('k', 'v');
    expect(cluster.store.get(key('k'))).toMatchObject({ modRevision: revision, version: 1 });
    expect(cluster.store.applied).toBe(1);
    expect(cluster.node('n1').stats.writes).toBe(2); // the retry was deduplicated by the session
  });

  it('a write answered QKV_INDETERMINATE, then no leader until the deadline: QKV_INDETERMINATE, and it was applied', async () => {
    const kv = await client();
    cluster.faults.failAfterApply = 1;
    cluster.faults.afterFailedApply = () => cluster.elect(null);
    const err = await kv.put('k', 'v', { timeoutMs: 300 }).catch((e: unknown) => e);
    // The old answer was QKV_TIMEOUT "deadline exceeded" with cause NO_LEADER: a lie for a write that
    // the cluster applied.
    expect(err).toBeInstanceOf(IndeterminateError);
    expect(writeOutcomeOf(err)).toBe('unknown');
    expect(cluster.store.get(key('k'))).toMatchObject({ version: 1 });
  });

  it('a write whose connection was cut after it was sent, then no leader: QKV_INDETERMINATE, not a timeout', async () => {
    const kv = await client();
    cluster.faults.dropAfterApply = 1;
    cluster.faults.afterFailedApply = () => cluster.elect(null);
    const err = await kv.put('k', 'v', { timeoutMs: 300 }).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'QKV_INDETERMINATE' });
    expect(cluster.store.applied).toBe(1);
  });

  it('a write that never reached a node undecided times out as QKV_TIMEOUT, which means not applied', async () => {
    const kv = await client();
    cluster.elect(null);
    const err = await kv.put('k', 'v', { timeoutMs: 200 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TimeoutError);
    expect(writeOutcomeOf(err)).toBe('not-applied');
    expect(cluster.store.applied).toBe(0);
  });

  it('a retry that meets SESSION_EXPIRED after an indeterminate attempt is QKV_INDETERMINATE (the first attempt may have applied)', async () => {
    const kv = await client();
    await kv.put('a', '1');
    const old = kv.sessionId;
    cluster.faults.failAfterApply = 1;
    cluster.faults.afterFailedApply = () => cluster.store.expired.add(old);
    const err = await kv.put('b', '2').catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'QKV_INDETERMINATE', cause: { code: 'QKV_SESSION_EXPIRED' } });
    expect(cluster.store.get(key('b'))).toMatchObject({ version: 1 }); // it had been applied
    expect(kv.sessionId).not.toBe(old);
  });

  it('a failed CAS returned for an indeterminate first attempt stays QKV_CAS_FAILED (an outcome, decided once)', async () => {
    const kv = await client();
    await kv.put('lock', 'them');
    cluster.faults.failAfterApply = 1;
    await expect(kv.cas('lock', { ifAbsent: true, value: 'me' })).rejects.toBeInstanceOf(CasFailedError);
    expect(cluster.store.get(key('lock'))?.version).toBe(1);
  });

  it('treats an older node answering a write QKV_TIMEOUT as indeterminate', async () => {
    const kv = await client();
    cluster.faults.failAfterApply = 1;
    cluster.faults.failAfterApplyError = () => new TimeoutError('the write was not committed before its deadline');
    cluster.faults.afterFailedApply = () => cluster.elect(null);
    await expect(kv.put('k', 'v', { timeoutMs: 300 })).rejects.toMatchObject({ code: 'QKV_INDETERMINATE' });
  });
});

describe('failures, deadlines, abort, close', () => {
  it('times out at the deadline when no leader appears, with the last error as cause', async () => {
    const kv = await client();
    cluster.elect(null);
    const t0 = Date.now();
    const err = await kv.put('k', 'v', { timeoutMs: 300 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TimeoutError);
    expect((err as TimeoutError).cause).toMatchObject({ code: 'QKV_NO_LEADER' });
    expect(Date.now() - t0).toBeLessThan(2000);
  });

  it('applies the client-wide deadline and refuses calls past maxPendingCalls', async () => {
    const kv = await client({ timeoutMs: 200, maxPendingCalls: 2 });
    cluster.faults.hang = true;
    const a = kv.get('a').catch((e: unknown) => e);
    const b = kv.get('b').catch((e: unknown) => e);
    await expect(kv.get('c')).rejects.toMatchObject({ code: 'QKV_BUSY' });
    expect(await a).toBeInstanceOf(TimeoutError);
    expect(await b).toBeInstanceOf(TimeoutError);
  });

  it('times out a request that the node never answers', async () => {
    const kv = await client({ attemptTimeoutMs: 100 });
    cluster.faults.hang = true;
    await expect(kv.get('k', { timeoutMs: 350 })).rejects.toBeInstanceOf(TimeoutError);
  });

  it('aborts a call through its AbortSignal, before or during the call; a write sent before the abort is indeterminate', async () => {
    const kv = await client();
    const pre = new AbortController();
    pre.abort();
    await expect(kv.get('k', { signal: pre.signal })).rejects.toBeInstanceOf(AbortedError);
    await expect(kv.put('k', 'v', { signal: pre.signal })).rejects.toBeInstanceOf(AbortedError); // never sent: not applied
    cluster.faults.hang = true;
    const ctl = new AbortController();
    setTimeout(() => ctl.abort(new Error('user gave up')), 50);
    const read = await kv.get('k', { signal: ctl.signal }).catch((e: unknown) => e);
    expect(read).toMatchObject({ code: 'QKV_ABORTED' });
    expect((read as AbortedError).cause).toMatchObject({ message: 'user gave up' });
    const ctl2 = new AbortController();
    setTimeout(() => ctl2.abort(new Error('user gave up')), 50);
    const err = await kv.put('k', 'v', { signal: ctl2.signal }).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'QKV_INDETERMINATE' });
    expect((err as IndeterminateError).cause).toMatchObject({ code: 'QKV_ABORTED', cause: { message: 'user gave up' } });
  });

  it('close() rejects every in-flight call with QKV_CLOSED (a write that was sent: QKV_INDETERMINATE), and later calls too', async () => {
    const kv = await client();
    cluster.faults.hang = true;
    const write = kv.put('a', '1').catch((e: unknown) => e);
    const reads = [kv.get('b'), kv.get('c', { consistency: 'stale' }), kv.status()].map((p) => p.catch((e: unknown) => e));
    await sleep(50);
    await kv.close();
    for (const e of await Promise.all(reads)) expect(e).toBeInstanceOf(ClosedError);
    expect(await write).toMatchObject({ code: 'QKV_INDETERMINATE', cause: { code: 'QKV_CLOSED' } });
    await expect(kv.put('x', 'y')).rejects.toMatchObject({ code: 'QKV_CLOSED' });
  });

  it('keeps writing through a leader crash and restart', async () => {
    const kv = await client();
    await kv.put('a', '1');
    await cluster.node('n1').stop();
    cluster.elect('n2');
    await kv.put('b', '2');
    await cluster.node('n1').start();
    cluster.elect('n1');
    await kv.put('c', '3');
    expect(kv.leaderAddress).toBe(cluster.node('n1').address);
  });

  it('reconnects after every node restarts', async () => {
    const kv = await client({ reconnectBackoff: { initialMs: 20, maxMs: 200 } });
    await kv.put('a', '1');
    for (const n of cluster.nodes) await n.stop();
    const pending = kv.put('b', '2', { timeoutMs: 5000 });
    await sleep(300);
    for (const n of cluster.nodes) await n.start();
    const { revision } = await pending;
    expect(cluster.store.get(new TextEncoder().encode('b'))?.modRevision).toBe(revision);
    expect((await kv.get('b'))?.text()).toBe('2');
  });

  it('does not lock out the new leader after a failover (no circuit breaker)', async () => {
    const kv = await client({ reconnectBackoff: { initialMs: 1000, maxMs: 1000 } });
    await kv.put('a', '1');
    // n2 was down for a while (the client backed off from it), then came back as leader.
    await cluster.node('n2').stop();
    await kv.get('a', { consistency: 'stale' }).catch(() => undefined);
    await kv.get('a', { consistency: 'stale' }).catch(() => undefined);
    await cluster.node('n2').start();
    await cluster.node('n1').stop();
    cluster.elect('n2');
    const t0 = Date.now();
    await kv.put('b', '2');
    expect(Date.now() - t0).toBeLessThan(900);
  });

  it('survives a node that answers with garbage: drops that connection and retries elsewhere', async () => {
    // A "node" that says hello (claiming to lead) and then answers every request with bytes that
    // are not msgpack, or with a result of the wrong shape.
    const wss = new WebSocketServer({ port: 0, host: '127.0.0.1' });
    await new Promise<void>((r) => wss.once('listening', () => r()));
    let n = 0;
    wss.on('connection', (ws) =>
      ws.on('message', (data: Buffer) => {
        const req = decodeRequestFrame(data, DEFAULT_LIMITS);
        if (!req.ok) return;
        const { id } = req.request;
        if (req.request.op === 'hello') {
          const address = `127.0.0.1:${(wss.address() as { port: number }).port}`;
          const result = { version: PROTOCOL_VERSION, serverId: 'evil', leader: { id: 'evil', address }, limits: DEFAULT_LIMITS };
          return ws.send(encodeFrame({ id, ok: true, result }, 1 << 20));
        }
        ws.send(n++ % 2 === 0 ? new Uint8Array([0xc1, 0xff]) : encodeFrame({ id, ok: true, result: { revision: 'x' } }, 1 << 20));
      }),
    );
    try {
      const evil = `127.0.0.1:${(wss.address() as { port: number }).port}`;
      const kv = await client({ endpoints: [evil, ...cluster.endpoints] });
      for (let i = 0; i < 5; i++) await kv.put(`k${i}`, 'v');
      expect(cluster.store.applied).toBe(5);
    } finally {
      for (const c of wss.clients) c.terminate();
      await new Promise<void>((r) => wss.close(() => r()));
    }
  });

  it('connect() keeps trying until a node comes up within connectTimeoutMs', async () => {
    await cluster.stop();
    setTimeout(() => void cluster.node('n2').start(), 200);
    const kv = await client({ connectTimeoutMs: 3000, reconnectBackoff: { initialMs: 20, maxMs: 100 } });
    expect((await kv.status()).nodeId).toBe('n2');
  });

  it('connect() rejects with UNAVAILABLE when no endpoint answers', async () => {
    const addrs = cluster.endpoints;
    await cluster.stop();
    await expect(connect({ endpoints: addrs, connectTimeoutMs: 300 })).rejects.toBeInstanceOf(UnavailableError);
    await cluster.node('n1').start(); // afterEach stops it again
  });
});

describe('example app', () => {
  it('books every seat exactly once across concurrent offices', async () => {
    // @ts-expect-error -- a plain-JS example without declarations
    const { main } = (await import('../examples/seat-booking.mjs')) as {
      main: (e: string[], o: object) => Promise<Map<string, string>>;
    };
    const lines: string[] = [];
    const booked = await main(cluster.endpoints, { seats: 6, offices: 3, log: (l: string) => lines.push(l) });
    expect(booked.size).toBe(6);
    expect(lines.filter((l) => l.includes(' booked seat '))).toHaveLength(6);
  });
});
