// Reads, range and compare-and-swap through the client against a real three-node cluster: where
// linearizable and stale reads go (counted per node on the wire), read-your-writes across
// clients, range by prefix and by [start, end) over several pages (by count and by bytes), and
// cas success and failure with the actual modRevision.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import { CasFailedError, type KvClient, type WebSocketFactory, type WebSocketLike } from '@quorumkv/client';
import { type ProcessCluster, httpRequest, jsonOf, waitFor } from '../harness/cluster.js';
import { connectTo, outcome, runBounded, startCluster } from './helpers.js';

/** A `ws` factory that counts the frames the client sends to each `host:port`. */
function countingFactory(): { factory: WebSocketFactory; sent: Map<string, number> } {
  const sent = new Map<string, number>();
  const factory: WebSocketFactory = (url, maxFrameBytes) => {
    const address = new URL(url).host;
    const ws = new WebSocket(url, { maxPayload: maxFrameBytes, perMessageDeflate: false });
    ws.binaryType = 'nodebuffer';
    const send = ws.send.bind(ws);
    (ws as unknown as { send: (d: Uint8Array) => void }).send = (d) => {
      sent.set(address, (sent.get(address) ?? 0) + 1);
      send(d);
    };
    return ws as unknown as WebSocketLike;
  };
  return { factory, sent };
}

/** Frames sent per address since `before` (a copy of an earlier `sent`). */
function delta(sent: Map<string, number>, before: Map<string, number>): Map<string, number> {
  const d = new Map<string, number>();
  for (const [a, n] of sent) if (n - (before.get(a) ?? 0) > 0) d.set(a, n - (before.get(a) ?? 0));
  return d;
}

const RANGE_KEYS = 260;
/** Reads per path in the routing test (a multiple of the 3 nodes). */
const READS = 15;
/** Write-then-read rounds across two clients. */
const RYW_ROUNDS = 12;
/** Bound on one racer's cas attempts in the counter race. */
const CAS_ATTEMPTS_MAX = 200;
const key4 = (i: number) => `rg/k${String(i).padStart(4, '0')}`;

describe('reads, range and cas with a real cluster', () => {
  let c: ProcessCluster;
  let kv: KvClient;
  let counted: { factory: WebSocketFactory; sent: Map<string, number> };
  let leaderAddress: string;
  const others: KvClient[] = [];
  const guarded = (fn: () => Promise<void>) => () => c.guard(fn)();

  beforeAll(async () => {
    c = await startCluster('qkv-client-reads');
    counted = countingFactory();
    kv = await connectTo(c, { webSocketFactory: counted.factory, timeoutMs: 15_000 });
    leaderAddress = c.node((await c.waitForLeader()).id).address;
  });
  afterAll(async () => {
    for (const o of others) await o.close();
    await kv?.close();
    await c?.teardown();
  });

  it('linearizable reads go to the leader; stale reads spread over every node and answer from local state', guarded(async () => {
    await kv.put('rd/a', 'alpha');
    // Let every node apply it, so the stale reads below all see it.
    for (const n of c.nodes) await waitFor(`rd/a on ${n.id}`, async () => ((await c.get(n.id, 'rd/a', 'stale')).status === 200 ? true : undefined));

    let before = new Map(counted.sent);
    for (let i = 0; i < READS; i++) expect((await kv.get('rd/a'))?.text()).toBe('alpha');
    expect([...delta(counted.sent, before).keys()]).toEqual([leaderAddress]);

    before = new Map(counted.sent);
    for (let i = 0; i < READS; i++) expect((await kv.get('rd/a', { consistency: 'stale' }))?.text()).toBe('alpha');
    const spread = delta(counted.sent, before);
    expect([...spread.keys()].sort()).toEqual(c.nodes.map((n) => n.address).sort());
    // Round-robin over three open connections: about READS / 3 frames each.
    for (const n of spread.values()) expect(n).toBeGreaterThanOrEqual(READS / 3 - 2);
  }));

  it('a linearizable read through a client that knows only a follower sees every acknowledged write of another client', guarded(async () => {
    const leader = await c.waitForLeader();
    const follower = c.nodes.find((n) => n.id !== leader.id)!;
    const reader = await connectTo(c, { endpoints: [follower.address] });
    others.push(reader);
    for (let i = 0; i < RYW_ROUNDS; i++) {
      await kv.put('rd/ryw', `v${i}`);
      const got = await reader.get('rd/ryw', { as: 'string' });
      expect(got?.value).toBe(`v${i}`);
    }
    // Revision bookkeeping: RYW_ROUNDS puts make version RYW_ROUNDS; createRevision is the first put's.
    const item = await reader.get('rd/ryw', { as: 'string' });
    expect(item?.version).toBe(RYW_ROUNDS);
    expect(item!.createRevision).toBeLessThan(item!.modRevision);
    // After a delete the key is gone, and a new put starts again at version 1.
    expect(await kv.delete('rd/ryw')).toMatchObject({ deleted: true });
    expect(await reader.get('rd/ryw')).toBeUndefined();
    expect(await kv.delete('rd/ryw')).toMatchObject({ deleted: false });
    const again = await kv.put('rd/ryw', 'reborn');
    expect(await reader.get('rd/ryw', { as: 'string' })).toMatchObject({ value: 'reborn', version: 1, createRevision: again.revision, modRevision: again.revision });
  }));

  it('range by prefix reads every key in byte order over several pages, and only those', guarded(async () => {
    await runBounded(RANGE_KEYS, 32, async (i) => void (await kv.put(key4(i), `value ${i}`)));
    // Neighbours that a sloppy prefix bound would include or drop.
    for (const k of ['rg', 'rg0', 'rf/z', 'rg.', 'rg/']) await kv.put(k, 'neighbour');

    const before = new Map(counted.sent);
    const all = [];
    for await (const it of kv.range({ prefix: 'rg/', pageSize: 100, as: 'string' })) all.push(it);
    expect(all.map((it) => it.key)).toEqual(['rg/', ...Array.from({ length: RANGE_KEYS }, (_, i) => key4(i))]);
    expect(all.slice(1).every((it, i) => it.value === `value ${i}` && it.version === 1)).toBe(true);
    // 261 items at 100 per page: three round trips, all to the leader.
    expect(delta(counted.sent, before)).toEqual(new Map([[leaderAddress, 3]]));

    // limit across pages, and stopping early fetches no further page.
    const limited = [];
    for await (const it of kv.range({ prefix: 'rg/k', pageSize: 100, limit: 150, as: 'string' })) limited.push(it.key);
    expect(limited).toEqual(Array.from({ length: 150 }, (_, i) => key4(i)));
    const early = new Map(counted.sent);
    let seen = 0;
    for await (const _ of kv.range({ prefix: 'rg/k', pageSize: 100 })) if (++seen === 5) break;
    expect(delta(counted.sent, early)).toEqual(new Map([[leaderAddress, 1]]));

    // [start, end): end exclusive; start alone runs to the end of the key space.
    const window = [];
    for await (const it of kv.range({ start: key4(100), end: key4(200), pageSize: 30, as: 'string' })) window.push(it.key);
    expect(window).toEqual(Array.from({ length: 100 }, (_, i) => key4(100 + i)));
    const tail = [];
    for await (const it of kv.range({ start: key4(RANGE_KEYS - 3), pageSize: 2, as: 'string' })) tail.push(it.key);
    expect(tail).toEqual([key4(RANGE_KEYS - 3), key4(RANGE_KEYS - 2), key4(RANGE_KEYS - 1), 'rg0']);

    // A stale range (any node, pages possibly from different nodes) sees the same keys once applied.
    await c.waitConverged();
    const stale = [];
    for await (const it of kv.range({ prefix: 'rg/', pageSize: 64, consistency: 'stale', as: 'string' })) stale.push(it.key);
    expect(stale).toEqual(all.map((it) => it.key));
  }), 60_000);

  it('range with binary keys: a prefix ending in 0xff', guarded(async () => {
    const k = (...b: number[]) => Uint8Array.from(b);
    for (const key of [k(0x62, 0xfe), k(0x62, 0xff), k(0x62, 0xff, 0x00), k(0x62, 0xff, 0xff, 0xff), k(0x63)]) await kv.put(key, key);
    const got = [];
    for await (const it of kv.range({ prefix: k(0x62, 0xff), pageSize: 1 })) got.push([...it.key]);
    expect(got).toEqual([[0x62, 0xff], [0x62, 0xff, 0x00], [0x62, 0xff, 0xff, 0xff]]);
  }));

  it('range pages cut by size: large values come back over many short pages, none lost', guarded(async () => {
    const big = (i: number) => new Uint8Array(700 * 1024).fill(0x41 + i);
    for (let i = 0; i < 6; i++) await kv.put(`big/${i}`, big(i));
    const before = new Map(counted.sent);
    const got = [];
    for await (const it of kv.range({ prefix: 'big/', pageSize: 100 })) got.push({ key: it.keyText(), first: it.value[0], length: it.value.length });
    expect(got).toEqual(Array.from({ length: 6 }, (_, i) => ({ key: `big/${i}`, first: 0x41 + i, length: 700 * 1024 })));
    // A 2 MiB frame holds two 700 KiB values: more than one page even though pageSize is 100.
    expect(delta(counted.sent, before).get(leaderAddress)).toBeGreaterThan(1);
  }), 60_000);

  it('cas: each condition succeeds when it holds and fails with QKV_CAS_FAILED and the actual modRevision when not', guarded(async () => {
    const r1 = await kv.put('cas/a', 'v1');
    const r2 = await kv.cas('cas/a', { ifModRevision: r1.revision, value: 'v2' });
    expect(r2.revision).toBeGreaterThan(r1.revision);

    const stale = await outcome(kv.cas('cas/a', { ifModRevision: r1.revision, value: 'lost update' }));
    expect(stale.ok ? stale.value : stale.error).toBeInstanceOf(CasFailedError);
    expect(stale.ok ? undefined : stale.error).toMatchObject({ code: 'QKV_CAS_FAILED', actualModRevision: r2.revision });

    const absent = await outcome(kv.cas('cas/a', { ifAbsent: true, value: 'x' }));
    expect(absent.ok ? undefined : absent.error).toMatchObject({ code: 'QKV_CAS_FAILED', actualModRevision: r2.revision });
    const wrongValue = await outcome(kv.cas('cas/a', { ifValue: 'v1', value: 'x' }));
    expect(wrongValue.ok ? undefined : wrongValue.error).toMatchObject({ code: 'QKV_CAS_FAILED', actualModRevision: r2.revision });
    // A failed cas changed nothing.
    expect(await kv.get('cas/a', { as: 'string' })).toMatchObject({ value: 'v2', version: 2, modRevision: r2.revision });

    // ifValue + delete, then ifAbsent on the now missing key; a revision condition on a missing key fails with 0.
    const del = await kv.cas('cas/a', { ifValue: 'v2', delete: true });
    expect(del.revision).toBeGreaterThan(r2.revision);
    expect(await kv.get('cas/a')).toBeUndefined();
    const missing = await outcome(kv.cas('cas/a', { ifModRevision: r2.revision, value: 'x' }));
    expect(missing.ok ? undefined : missing.error).toMatchObject({ code: 'QKV_CAS_FAILED', actualModRevision: 0 });
    const created = await kv.cas('cas/a', { ifAbsent: true, value: Uint8Array.of(0, 1, 2) });
    const createdItem = await kv.get('cas/a');
    expect(createdItem && [...createdItem.value]).toEqual([0, 1, 2]);
    expect(createdItem).toMatchObject({ version: 1, createRevision: created.revision });
    // ifModRevision + delete with the current revision.
    await kv.cas('cas/a', { ifModRevision: created.revision, delete: true });
    expect(await kv.get('cas/a')).toBeUndefined();

    // Many clients racing on one counter with cas: every increment lands exactly once.
    await kv.put('cas/counter', '0');
    const racers = await Promise.all(Array.from({ length: 4 }, () => connectTo(c)));
    others.push(...racers);
    const incrementsPerRacer = 5;
    await Promise.all(racers.map(async (r) => {
      // Bounded: a racer loses at most (racers - 1) rounds per increment it makes.
      for (let done = 0, attempts = 0; done < incrementsPerRacer && attempts < CAS_ATTEMPTS_MAX; attempts++) {
        const cur = (await r.get('cas/counter', { as: 'string' }))!;
        const res = await outcome(r.cas('cas/counter', { ifModRevision: cur.modRevision, value: String(Number(cur.value) + 1) }));
        if (res.ok) done++;
        else expect(res.code).toBe('QKV_CAS_FAILED');
      }
    }));
    expect(await kv.get('cas/counter', { as: 'string' })).toMatchObject({ value: String(racers.length * incrementsPerRacer), version: 1 + racers.length * incrementsPerRacer });
  }), 60_000);

  it('reads at a revision: client and HTTP see the store as it was; a range keeps its first page\'s revision', guarded(async () => {
    const r1 = (await kv.put('hist/a', '1')).revision;
    const r2 = (await kv.put('hist/a', '2')).revision;
    const r3 = (await kv.put('hist/b', 'x')).revision;
    const r4 = (await kv.delete('hist/a')).revision;
    expect([r2 - r1, r3 - r2, r4 - r3]).toEqual([1, 1, 1]); // one revision per write, whatever else the log holds
    expect((await kv.get('hist/a', { revision: r1, as: 'string' }))?.value).toBe('1');
    expect(await kv.get('hist/a', { revision: r2, as: 'string' })).toMatchObject({ value: '2', modRevision: r2, createRevision: r1, version: 2 });
    expect(await kv.get('hist/a', { revision: r4 })).toBeUndefined(); // the tombstone
    const at = async (revision: number) => {
      const out: string[] = [];
      for await (const it of kv.range({ prefix: 'hist/', revision, as: 'string', consistency: 'stale' })) out.push(`${it.key}=${it.value}`);
      return out;
    };
    expect(await at(r3)).toEqual(['hist/a=2', 'hist/b=x']);
    expect(await at(r4)).toEqual(['hist/b=x']);
    const future = await outcome(kv.get('hist/a', { revision: r4 + 1_000_000 }));
    expect(future.ok ? undefined : future.code).toBe('QKV_INVALID_ARGUMENT');

    // Pages of one range share its first page's revision: writes between pages do not show.
    for (const k of ['p1', 'p2', 'p3']) await kv.put(`hist/pg/${k}`, k);
    const pages = kv.range({ prefix: 'hist/pg/', pageSize: 1, as: 'string' });
    const first = await pages.next();
    await kv.delete('hist/pg/p3');
    await kv.put('hist/pg/p2a', 'new');
    const rest: string[] = [];
    for await (const it of pages) rest.push(it.key);
    expect([first.value?.key, ...rest]).toEqual(['hist/pg/p1', 'hist/pg/p2', 'hist/pg/p3']);

    // HTTP: ?revision= on a key and on a range; the range answer names its revision.
    const port = c.node((await c.waitForLeader()).id).port;
    const got = await httpRequest(port, 'GET', `/v1/kv/hist%2Fa?revision=${r1}`);
    expect([got.status, got.body.toString(), got.headers['x-qkv-mod-revision']]).toEqual([200, '1', String(r1)]);
    expect((await httpRequest(port, 'GET', `/v1/kv/hist%2Fa?revision=${r4}`)).status).toBe(404);
    const listed = jsonOf<{ items: Array<{ key: string; value: string }>; revision: number }>(await httpRequest(port, 'GET', `/v1/kv?prefix=hist%2F&revision=${r3}`));
    expect(listed).toMatchObject({ revision: r3, items: [{ key: 'hist/a', value: '2' }, { key: 'hist/b', value: 'x' }] });
    expect((await httpRequest(port, 'GET', '/v1/kv/hist%2Fa?revision=-1')).status).toBe(400);
  }));

  it('compact through the log: every node refuses reads below it (QKV_COMPACTED, HTTP 410), reads above are unchanged, state hashes agree', guarded(async () => {
    const v1 = (await kv.put('cmp/k', 'one')).revision;
    const v2 = (await kv.put('cmp/k', 'two')).revision;
    const v3 = (await kv.put('cmp/k', 'three')).revision;
    expect(await kv.compact(v2)).toMatchObject({ compactedRevision: v2 });
    expect(await kv.compact(v1)).toMatchObject({ compactedRevision: v2 }); // idempotent: never goes back
    const tooFar = await outcome(kv.compact(v3 + 1_000_000));
    expect(tooFar.ok ? undefined : tooFar.code).toBe('QKV_INVALID_ARGUMENT');
    for (const n of c.nodes) {
      const reader = await connectTo(c, { endpoints: [n.address] });
      others.push(reader);
      // Stale reads answer from each node's own applied state: wait for the compact to reach it.
      const below = await waitFor(`compact applied on ${n.id}`, async () => {
        const r = await outcome(reader.get('cmp/k', { revision: v1, consistency: 'stale' }));
        return r.ok ? undefined : r;
      });
      expect(below.ok ? undefined : below.error).toMatchObject({ code: 'QKV_COMPACTED', compactedRevision: v2 });
      expect((await reader.get('cmp/k', { revision: v2, consistency: 'stale', as: 'string' }))?.value).toBe('two');
      const http410 = await httpRequest(n.port, 'GET', `/v1/kv/cmp%2Fk?revision=${v1}&consistency=stale`);
      expect([http410.status, jsonOf(http410)['compactedRevision']]).toEqual([410, v2]);
    }
    // HTTP compact through a follower (forwarded to the leader), then equal state on every node.
    const leader = await c.waitForLeader();
    const follower = c.nodes.find((n) => n.id !== leader.id)!;
    const viaHttp = await httpRequest(follower.port, 'POST', `/v1/compact?revision=${v3}`);
    expect([viaHttp.status, jsonOf(viaHttp)['compactedRevision']]).toEqual([200, v3]);
    await waitFor('equal state hashes', async () => {
      const hashes = await Promise.all(c.nodes.map(async (n) => jsonOf<{ appliedIndex: number; stateHash: string }>(await httpRequest(n.port, 'GET', '/v1/state-hash'))));
      return new Set(hashes.map((h) => `${h.appliedIndex}/${h.stateHash}`)).size === 1 ? true : undefined;
    });
  }));
});
