// The one conformance suite every storage implementation must pass (LevelDB and memory twin).
import { afterEach, describe, expect, test } from 'vitest';
import {
  type ApplyItem,
  type ApplyResult,
  type Command,
  type LogEntry,
  type Membership,
  type NodeStore,
  type NodeStoreOptions,
  STORAGE_FORMAT_VERSION,
  encodeCommand,
} from '@quorumkv/storage';
import { pack } from '../src/codec.js';
import type { Harness, HarnessFactory } from './harness.js';

const te = new TextEncoder();
const b = (s: string) => te.encode(s);
const td = new TextDecoder();
const s = (u: Uint8Array | undefined) => (u === undefined ? undefined : td.decode(u));

function entry(index: number, term: number, data = `e${index}`): LogEntry {
  return { index, term, type: 0, data: b(data) };
}

/** Items for consecutive indexes starting at `first`. */
function items(first: number, term: number, cmds: Array<Command | Uint8Array | null>): ApplyItem[] {
  return cmds.map((c, i) => ({
    kind: 'entry',
    index: first + i,
    term,
    data: c === null ? new Uint8Array(0) : c instanceof Uint8Array ? c : encodeCommand(c),
  }));
}

const put = (key: string, value: string, extra: Partial<Command> = {}): Command => ({ op: 'put', key: b(key), value: b(value), ...extra }) as Command;
const del = (key: string, extra: Partial<Command> = {}): Command => ({ op: 'del', key: b(key), ...extra }) as Command;
const sess = (id: string, seq: number, ackedBelow = 0) => ({ session: { id, seq, ackedBelow } });

const MEMBERSHIP: Membership = { voters: [{ id: 'n1', address: '127.0.0.1:7001', zone: 'a' }], learners: [{ id: 'n2', address: '127.0.0.1:7002' }] };

/** Registers the suite for one implementation. */
export function storageConformance(name: string, factory: HarnessFactory): void {
  describe(`storage conformance: ${name}`, () => {
    const open: Array<NodeStore> = [];
    const harnesses: Harness[] = [];
    async function machine(): Promise<Harness> {
      const h = await factory();
      harnesses.push(h);
      return h;
    }
    async function openOn(h: Harness, options?: NodeStoreOptions): Promise<NodeStore> {
      const st = await h.open(options);
      open.push(st);
      return st;
    }
    /** Close (ignoring errors: the store may be poisoned by a simulated crash) and reopen. */
    async function restart(h: Harness, st: NodeStore, options?: NodeStoreOptions): Promise<NodeStore> {
      await st.close().catch(() => undefined);
      return openOn(h, options);
    }
    afterEach(async () => {
      for (const st of open.splice(0)) await st.close().catch(() => undefined);
      for (const h of harnesses.splice(0)) await h.cleanup();
    });

    describe('log store', () => {
      test('a fresh store loads an empty log', async () => {
        const st = await openOn(await machine());
        expect(await st.log.load()).toEqual({ hardState: { term: 0, vote: null, commit: 0 }, entries: [] });
        expect([st.log.firstIndex(), st.log.lastIndex()]).toEqual([1, 0]);
      });

      test('appended entries and hard state survive a restart', async () => {
        const h = await machine();
        let st = await openOn(h);
        await st.log.append({ hardState: { term: 2, vote: 'n1', commit: 1 }, entries: [entry(1, 1), entry(2, 2)], sync: true });
        await st.log.append({ entries: [entry(3, 2)], sync: false });
        st = await restart(h, st);
        const loaded = await st.log.load();
        expect(loaded.hardState).toEqual({ term: 2, vote: 'n1', commit: 1 });
        expect(loaded.entries).toEqual([entry(1, 1), entry(2, 2), entry(3, 2)]);
        expect(loaded.snapshotMeta).toBeUndefined();
        expect([st.log.firstIndex(), st.log.lastIndex()]).toEqual([1, 3]);
      });

      test('new entries replace a conflicting suffix, deleting everything after them', async () => {
        const h = await machine();
        let st = await openOn(h);
        await st.log.append({ entries: [1, 2, 3, 4, 5].map((i) => entry(i, 1)), sync: true });
        await st.log.append({ entries: [entry(3, 2, 'x3'), entry(4, 2, 'x4')], sync: true });
        expect(st.log.lastIndex()).toBe(4);
        st = await restart(h, st);
        expect((await st.log.load()).entries).toEqual([entry(1, 1), entry(2, 1), entry(3, 2, 'x3'), entry(4, 2, 'x4')]);
        expect(st.log.lastIndex()).toBe(4);
      });

      test('compaction drops the prefix and remembers the index and term it covers', async () => {
        const h = await machine();
        let st = await openOn(h);
        await st.log.append({ entries: [1, 2, 3, 4, 5, 6].map((i) => entry(i, i < 4 ? 1 : 2)), sync: true });
        await st.log.compact(4);
        await st.log.compact(2); // older than the log start: no-op
        st = await restart(h, st);
        const loaded = await st.log.load();
        expect(loaded.snapshotMeta).toEqual({ index: 4, term: 2 });
        expect(loaded.entries.map((e) => e.index)).toEqual([5, 6]);
        expect([st.log.firstIndex(), st.log.lastIndex()]).toEqual([5, 6]);
        await st.log.compact(6);
        expect([st.log.firstIndex(), st.log.lastIndex()]).toEqual([7, 6]);
        await st.log.append({ entries: [entry(7, 3)], sync: true });
        expect((await st.log.load()).entries).toEqual([entry(7, 3)]);
      });

      test('an append that leaves a gap or reaches into the compacted log is a bug, refused', async () => {
        const st = await openOn(await machine());
        await st.log.append({ entries: [entry(1, 1), entry(2, 1)], sync: true });
        await expect(st.log.append({ entries: [entry(4, 1)], sync: true })).rejects.toThrow(/gap/);
        await st.log.compact(2);
        await expect(st.log.append({ entries: [entry(2, 1)], sync: true })).rejects.toThrow(/compacted/);
      });

      test('a crash before an append lands leaves the previous log, whole', async () => {
        const h = await machine();
        let fail = false;
        let st = await openOn(h, { testHooks: { beforeWrite: (label) => { if (fail && label === 'log.append') throw new Error('crash'); } } });
        await st.log.append({ hardState: { term: 1, vote: null, commit: 0 }, entries: [entry(1, 1), entry(2, 1), entry(3, 1)], sync: true });
        fail = true;
        await expect(st.log.append({ hardState: { term: 2, vote: 'n2', commit: 0 }, entries: [entry(2, 2)], sync: true })).rejects.toMatchObject({ code: 'QKV_STORAGE_IO' });
        await expect(st.log.append({ entries: [entry(4, 1)], sync: true })).rejects.toMatchObject({ code: 'QKV_STORAGE_IO' });
        st = await restart(h, st);
        const loaded = await st.log.load();
        expect(loaded.hardState).toEqual({ term: 1, vote: null, commit: 0 });
        expect(loaded.entries).toEqual([entry(1, 1), entry(2, 1), entry(3, 1)]);
      });

      test('a gap or an undecodable entry on disk is reported as corruption', async () => {
        const h = await machine();
        let st = await openOn(h);
        await st.log.append({ entries: [entry(1, 1), entry(2, 1), entry(3, 1)], sync: true });
        await st.close();
        await h.rawDel('log', u64(2));
        st = await openOn(h);
        await expect(st.log.load()).rejects.toMatchObject({ code: 'QKV_STORAGE_CORRUPT' });
        await st.close();
        await h.rawPut('log', u64(2), new Uint8Array([0xc1]));
        st = await openOn(h);
        await expect(st.log.load()).rejects.toMatchObject({ code: 'QKV_STORAGE_CORRUPT' });
      });
    });

    describe('format and metadata', () => {
      test('a newer format is refused with a message naming the location', async () => {
        const h = await machine();
        await (await openOn(h)).close();
        await h.rawPut('meta', b('format'), pack({ version: STORAGE_FORMAT_VERSION + 1 }));
        const err = await h.open().catch((e: unknown) => e);
        expect(err).toMatchObject({ code: 'QKV_STORAGE_FORMAT' });
        expect((err as Error).message).toContain(h.location);
      });

      test.each(['format', 'applied', 'generation', 'hardState', 'logStart', 'membership'])('undecodable meta record "%s" is refused as corrupt', async (key) => {
        const h = await machine();
        await (await openOn(h)).close();
        await h.rawPut('meta', b(key), new Uint8Array([0x92, 0xc1]));
        await expect(h.open()).rejects.toMatchObject({ code: 'QKV_STORAGE_CORRUPT' });
        await h.rawPut('meta', b(key), pack({ nonsense: true }));
        await expect(h.open()).rejects.toMatchObject({ code: 'QKV_STORAGE_CORRUPT' });
      });

      test('data without a format record is never taken for an empty store', async () => {
        const h = await machine();
        await h.rawPut('kv', b('\0\0\0\0key'), b('value'));
        await expect(h.open()).rejects.toMatchObject({ code: 'QKV_STORAGE_CORRUPT' });
      });
    });

    describe('key-value state machine', () => {
      test('put, delete and revision metadata', async () => {
        const st = await openOn(await machine());
        const r = await st.kv.apply(items(1, 1, [put('a', '1'), put('a', '2'), put('b', '1'), del('a'), del('zz'), put('a', '3')]));
        expect(r).toEqual([
          { op: 'put', revision: 1, term: 1 },
          { op: 'put', revision: 2, term: 1 },
          { op: 'put', revision: 3, term: 1 },
          { op: 'del', deleted: true, revision: 4, term: 1 },
          { op: 'del', deleted: false, revision: 5, term: 1 },
          { op: 'put', revision: 6, term: 1 },
        ]);
        expect(await st.kv.get(b('a'))).toEqual({ key: b('a'), value: b('3'), createRevision: 6, modRevision: 6, version: 1 });
        expect(await st.kv.get(b('b'))).toEqual({ key: b('b'), value: b('1'), createRevision: 3, modRevision: 3, version: 1 });
        expect(await st.kv.get(b('zz'))).toBeUndefined();
        expect(st.kv.appliedIndex()).toBe(6);
      });

      test('the record cache never changes an answer: a tiny cache, rewrites, deletes, restarts', async () => {
        const h = await machine();
        let st = await openOn(h, { kv: { recordCacheBytes: 400 } });
        const ref = await openOn(await machine(), { kv: { recordCacheBytes: 0 } });
        const rounds = [
          Array.from({ length: 30 }, (_, i) => put(`k${i}`, `v${i}`)),
          Array.from({ length: 30 }, (_, i) => (i % 3 === 0 ? del(`k${i}`) : put(`k${i % 7}`, `w${i}`))),
          Array.from({ length: 30 }, (_, i) => put(`k${(i * 11) % 30}`, 'x'.repeat(i * 5))),
        ];
        let index = 1;
        for (const [n, cmds] of rounds.entries()) {
          const got = await st.kv.apply(items(index, 1, cmds));
          expect(got).toEqual(await ref.kv.apply(items(index, 1, cmds)));
          index += cmds.length;
          for (let i = 0; i < 32; i++) expect(await st.kv.get(b(`k${i}`))).toEqual(await ref.kv.get(b(`k${i}`)));
          if (n === 1) st = await restart(h, st, { kv: { recordCacheBytes: 400 } });
        }
        expect(await st.kv.stateHash()).toBe(await ref.kv.stateHash());
      });

      test('batches applied back to back without waiting (pipelined) give the results and state of one-at-a-time applies', async () => {
        const st = await openOn(await machine());
        const ref = await openOn(await machine());
        const big = 'v'.repeat(200);
        const batches: ApplyItem[][] = [];
        let index = 1;
        for (let n = 0; n < 20; n++) {
          const cmds: Command[] = [];
          for (let i = 0; i < 8; i++) cmds.push(put(`k${(n * 3 + i) % 10}`, `${n}:${i}`, sess('p', n * 10 + i, Math.max(0, n * 10 - 15))));
          // A failing cas (its result carries a 200-byte value: stored as its own record) ...
          cmds.push({ op: 'cas', key: b('big'), cond: { absent: true }, then: { op: 'put', value: b(big) }, ...sess('p', n * 10 + 8, Math.max(0, n * 10 - 15)) } as Command);
          // ... retried in the next batch, while this batch's write may not have landed yet.
          if (n > 0) cmds.push({ op: 'cas', key: b('big'), cond: { absent: true }, then: { op: 'put', value: b(big) }, ...sess('p', n * 10 - 2, Math.max(0, n * 10 - 15)) } as Command);
          batches.push(items(index, 1, cmds));
          index += cmds.length;
        }
        const expected: ApplyResult[][] = [];
        for (const batch of batches) expected.push(await ref.kv.apply(batch));
        const computedOrder: number[] = [];
        const all = batches.map((batch, n) => st.kv.apply(batch, { onResults: () => computedOrder.push(n) }));
        expect(await Promise.all(all)).toEqual(expected);
        expect(computedOrder).toEqual(batches.map((_, n) => n));
        expect(st.kv.appliedIndex()).toBe(index - 1);
        expect(await st.kv.stateHash()).toBe(await ref.kv.stateHash());
        for (let i = 0; i < 10; i++) expect(await st.kv.get(b(`k${i}`))).toEqual(await ref.kv.get(b(`k${i}`)));
      });

      test('values returned by get are copies: changing one does not change the store', async () => {
        const st = await openOn(await machine());
        await st.kv.apply(items(1, 1, [put('k', 'abc')]));
        const first = await st.kv.get(b('k'));
        first!.value[0] = 0x7a;
        expect(s((await st.kv.get(b('k')))!.value)).toBe('abc');
      });

      test('compare-and-swap on modRevision, value and absence; reads see earlier writes of the same batch', async () => {
        const st = await openOn(await machine());
        const cas = (key: string, cond: object, then: object): Command => ({ op: 'cas', key: b(key), cond, then }) as Command;
        const r = await st.kv.apply(
          items(1, 1, [
            cas('k', { absent: true }, { op: 'put', value: b('v1') }), // 1: ok
            cas('k', { absent: true }, { op: 'put', value: b('no') }), // 2: fails, sees 1
            cas('k', { modRevision: 1 }, { op: 'put', value: b('v2') }), // 3: ok
            cas('k', { value: b('v1') }, { op: 'del' }), // 4: fails
            cas('k', { value: b('v2') }, { op: 'del' }), // 5: ok
            cas('k', { modRevision: 0 }, { op: 'put', value: b('v3') }), // 6: ok (absent)
          ]),
        );
        expect(r.map((x) => (x.op === 'cas' ? x.succeeded : x.op))).toEqual([true, false, true, false, true, true]);
        expect(r[1]).toEqual({ op: 'cas', succeeded: false, revision: 2, term: 1, current: { key: b('k'), value: b('v1'), createRevision: 1, modRevision: 1, version: 1 } });
        expect(await st.kv.get(b('k'))).toMatchObject({ value: b('v3'), createRevision: 6, version: 1 });
      });

      test('range by prefix and by [start, end) in key order, with a limit', async () => {
        const st = await openOn(await machine());
        const keys = ['b', 'a/2', 'a/1', 'a', 'a/10', 'c', '\xff'];
        await st.kv.apply(items(1, 1, keys.map((k) => put(k, k))));
        const names = (kvs: Array<{ key: Uint8Array }>) => kvs.map((kv) => s(kv.key));
        expect(names(await st.kv.range({ prefix: b('a/') }, 100))).toEqual(['a/1', 'a/10', 'a/2']);
        expect(names(await st.kv.range({ prefix: b('a') }, 2))).toEqual(['a', 'a/1']);
        expect(names(await st.kv.range({ start: b('a/10'), end: b('c') }, 100))).toEqual(['a/10', 'a/2', 'b']);
        expect(names(await st.kv.range({ start: b('b') }, 100))).toEqual(['b', 'c', '\xff']);
        expect(names(await st.kv.range({ prefix: new Uint8Array([0xc3, 0xbf]) }, 10))).toEqual(['\xff']);
        await expect(st.kv.range({ prefix: b('') }, 0)).rejects.toMatchObject({ code: 'QKV_STORAGE_ARGUMENT' });
      });

      test('no-op entries, membership changes and malformed commands advance the applied state', async () => {
        const h = await machine();
        let st = await openOn(h);
        const r = await st.kv.apply([
          ...items(1, 1, [null]),
          { kind: 'membership', index: 2, term: 1, data: b('cc'), membership: MEMBERSHIP },
          ...items(3, 2, [new Uint8Array([0xc1, 0x00]), pack({ v: 1, op: 'put', key: b('k') }), pack({ v: 1, op: 'put', key: b('k'), value: b('v'), extra: 1 })]),
        ]);
        expect(r.slice(0, 2)).toEqual([{ op: 'none' }, { op: 'none' }]);
        expect(r.slice(2).map((x) => x.op === 'error' && x.code)).toEqual(['QKV_BAD_COMMAND', 'QKV_BAD_COMMAND', 'QKV_BAD_COMMAND']);
        st = await restart(h, st);
        expect(st.kv.applied()).toMatchObject({ index: 5, term: 2 });
        expect(st.kv.membership()).toEqual(MEMBERSHIP);
        expect(await st.kv.range({ prefix: b('') }, 10)).toEqual([]);
      });

      test('applying the same log gives the same applied hash and state hash; a different log does not', async () => {
        const [sa, sb, sc] = await Promise.all([machine(), machine(), machine()].map(async (m) => openOn(await m)));
        const log = items(1, 1, [put('x', '1'), null, del('x'), put('y', '2', sess('c', 0))]);
        await sa!.kv.apply(log);
        await sb!.kv.apply(log.slice(0, 2));
        await sb!.kv.apply(log.slice(2));
        await sc!.kv.apply([...log.slice(0, 3), ...items(4, 1, [put('y', '3', sess('c', 0))])]);
        expect(sa!.kv.applied().hash).toEqual(sb!.kv.applied().hash);
        expect(await sa!.kv.stateHash()).toBe(await sb!.kv.stateHash());
        expect(sa!.kv.applied().hash).not.toEqual(sc!.kv.applied().hash);
        expect(await sa!.kv.stateHash()).not.toBe(await sc!.kv.stateHash());
      });

      test('a crash before an apply batch lands loses the whole batch, and re-applying converges', async () => {
        const h = await machine();
        let fail = false;
        const hooks = { beforeWrite: (label: string) => { if (fail && label === 'kv.apply') throw new Error('crash'); } };
        let st = await openOn(h, { testHooks: hooks });
        const log = items(1, 1, [put('a', '1'), put('b', '1', sess('s', 0)), put('a', '2'), del('b', sess('s', 1))]);
        await st.kv.apply(log.slice(0, 2));
        fail = true;
        await expect(st.kv.apply(log.slice(2))).rejects.toMatchObject({ code: 'QKV_STORAGE_IO' });
        fail = false;
        st = await restart(h, st, { testHooks: hooks });
        expect(st.kv.appliedIndex()).toBe(2);
        expect(await st.kv.get(b('a'))).toMatchObject({ value: b('1') });
        await st.kv.apply(log.slice(2));
        const ref = await openOn(await machine());
        await ref.kv.apply(log);
        expect(await st.kv.stateHash()).toBe(await ref.kv.stateHash());
        expect(st.kv.applied()).toEqual(ref.kv.applied());
      });
    });

    describe('exactly-once sessions', () => {
      test('a retry applied in a later term returns the term (and revision) of the first application', async () => {
        const st = await openOn(await machine());
        const first = await st.kv.apply(items(1, 2, [put('k', 'a', sess('t1', 0))]));
        expect(first).toEqual([{ op: 'put', revision: 1, term: 2 }]);
        // The retry reached the log again under a newer leader (term 5): the answer is the original one.
        const retry = await st.kv.apply(items(2, 5, [put('k', 'a', sess('t1', 0))]));
        expect(retry).toEqual([{ op: 'put', revision: 1, term: 2 }]);
        // A write without a session carries its own entry's term.
        expect(await st.kv.apply(items(3, 5, [put('z', 'x')]))).toEqual([{ op: 'put', revision: 3, term: 5 }]);
      });

      test('a retried seq returns the stored result without applying again, within and across batches', async () => {
        const h = await machine();
        let st = await openOn(h);
        const r1 = await st.kv.apply(items(1, 1, [put('k', 'a', sess('c1', 0)), put('k', 'a', sess('c1', 0))]));
        expect(r1).toEqual([{ op: 'put', revision: 1, term: 1 }, { op: 'put', revision: 1, term: 1 }]);
        st = await restart(h, st);
        const r2 = await st.kv.apply(items(3, 1, [put('k', 'a', sess('c1', 0)), put('k', 'b', sess('c1', 1))]));
        expect(r2).toEqual([{ op: 'put', revision: 1, term: 1 }, { op: 'put', revision: 4, term: 1 }]);
        expect(await st.kv.get(b('k'))).toMatchObject({ version: 2, modRevision: 4 });
        // The same seq in another session is a different request.
        expect(await st.kv.apply(items(5, 1, [put('k', 'c', sess('c2', 0))]))).toEqual([{ op: 'put', revision: 5, term: 1 }]);
      });

      test('acknowledged results are forgotten; their seqs then get QKV_SESSION_EXPIRED', async () => {
        const st = await openOn(await machine());
        await st.kv.apply(items(1, 1, [put('k', '0', sess('c', 0)), put('k', '1', sess('c', 1)), put('k', '2', sess('c', 2, 2))]));
        const r = await st.kv.apply(items(4, 1, [put('k', 'x', sess('c', 1, 1)), put('k', 'x', sess('c', 2, 2))]));
        expect(r[0]).toMatchObject({ op: 'error', code: 'QKV_SESSION_EXPIRED' });
        expect(r[1]).toEqual({ op: 'put', revision: 3, term: 1 });
        expect(await st.kv.get(b('k'))).toMatchObject({ value: b('2'), version: 3 });
      });

      test('results per session are bounded: the oldest are discarded first', async () => {
        const st = await openOn(await machine(), { kv: { maxResultsPerSession: 3 } });
        await st.kv.apply(items(1, 1, [0, 1, 2, 3, 4].map((seq) => put('k', `${seq}`, sess('c', seq)))));
        const r = await st.kv.apply(items(6, 1, [0, 1, 2, 4].map((seq) => put('k', 'again', sess('c', seq)))));
        expect(r.map((x) => x.op === 'error' ? x.code : x)).toEqual(['QKV_SESSION_EXPIRED', 'QKV_SESSION_EXPIRED', { op: 'put', revision: 3, term: 1 }, { op: 'put', revision: 5, term: 1 }]);
      });

      test('idle sessions expire deterministically by command time, also after a restart', async () => {
        const h = await machine();
        const options = { kv: { sessionTtlMs: 1000 } };
        let st = await openOn(h, options);
        const ref = await openOn(await machine(), options);
        const first = items(1, 1, [put('k', '1', { ...sess('old', 0), timeMs: 1000 }), put('k', '2', { ...sess('live', 0), timeMs: 1500 })]);
        const second = items(3, 1, [
          put('k', '3', { ...sess('live', 1), timeMs: 2400 }), // old idle 1400 ms > ttl: expired now
          put('k', '1', { ...sess('old', 0, 0), timeMs: 2400 }), // unknown again, nothing acked: a new session
          put('k', '1', { ...sess('old2', 5, 5), timeMs: 2400 }), // unknown, acked before: must have expired
          put('k', '5', { ...sess('fresh', 1, 1), timeMs: 2400 }), // unknown, ackedBelow 1 (protocol numbering): new
          put('k', '4', sess('live', 2)), // no timeMs: the replicated clock stays 2400
        ]);
        for (const store of [st, ref]) await store.kv.apply(first);
        st = await restart(h, st, options);
        const r = await st.kv.apply(second);
        expect(r.map((x) => x.op === 'error' ? x.code : x.op)).toEqual(['put', 'put', 'QKV_SESSION_EXPIRED', 'put', 'put']);
        expect(await ref.kv.apply(second)).toEqual(r);
        expect(st.kv.applied().clockMs).toBe(2400);
        expect(await st.kv.stateHash()).toBe(await ref.kv.stateHash());
      });

      test('results too big or too many to keep in the session header use records; both kinds survive restarts and are deleted once acknowledged', async () => {
        const h = await machine();
        let st = await openOn(h);
        const big = 'v'.repeat(300);
        // 100 unacknowledged writes: more than the header keeps inline.
        const first = await st.kv.apply(items(1, 1, Array.from({ length: 100 }, (_, seq) => put(`k${seq}`, big, sess('s', seq)))));
        // A failed cas answers with the current 300-byte value: too big to keep inline.
        const casCmd = { op: 'cas', key: b('k0'), cond: { absent: true }, then: { op: 'put', value: b('x') }, ...sess('s', 100) } as Command;
        const [casResult] = await st.kv.apply(items(101, 1, [casCmd]));
        expect(casResult).toMatchObject({ op: 'cas', succeeded: false, current: { value: b(big) } });
        st = await restart(h, st);
        const retried = await st.kv.apply(items(102, 2, [put('k0', 'again', sess('s', 0)), put('k70', 'again', sess('s', 70)), put('k99', 'again', sess('s', 99)), casCmd]));
        expect(retried).toEqual([first[0], first[70], first[99], casResult]);
        expect(await st.kv.get(b('k70'))).toMatchObject({ value: b(big), version: 1 });
        await st.close();
        expect(await h.rawCount('sessions')).toBeGreaterThan(1); // header + the results kept as records
        st = await openOn(h);
        // Acknowledging everything forgets every stored result, inline or not.
        await st.kv.apply(items(106, 2, [put('z', '1', sess('s', 101, 101))]));
        const again = await st.kv.apply(items(107, 2, [put('k0', 'x', sess('s', 0)), put('k80', 'x', sess('s', 80, 80))]));
        expect(again.map((r) => (r.op === 'error' ? r.code : r.op))).toEqual(['QKV_SESSION_EXPIRED', 'QKV_SESSION_EXPIRED']);
        await st.close();
        expect(await h.rawCount('sessions')).toBe(1); // only the header; its one inline result is seq 101's
      });

      test('a session header written before inline results existed (three fields) still reads', async () => {
        const h = await machine();
        let st = await openOn(h);
        await st.kv.apply(items(1, 1, [put('k', 'a', sess('old', 0))]));
        await st.close();
        // The pre-inline layout: [lastActiveMs, discardedBelow, seqs], results in their own records.
        const gen = new Uint8Array(4);
        const id = b('old');
        await h.rawPut('sessions', new Uint8Array([...gen, ...b('h'), ...id]), pack([0, 0, [0]]));
        await h.rawPut('sessions', new Uint8Array([...gen, ...b('r'), id.length, ...id, ...u64(0)]), pack({ op: 'put', revision: 1, term: 1 }));
        st = await openOn(h);
        expect(await st.kv.apply(items(2, 3, [put('k', 'a', sess('old', 0))]))).toEqual([{ op: 'put', revision: 1, term: 1 }]);
        expect(await st.kv.apply(items(3, 3, [put('k', 'b', sess('old', 1, 1))]))).toEqual([{ op: 'put', revision: 3, term: 3 }]);
        await st.close();
        expect(await h.rawCount('sessions')).toBe(1); // the acknowledged seq 0's record was deleted
      });

      test('the session table is bounded: a new session past the limit is refused, not applied', async () => {
        const st = await openOn(await machine(), { kv: { maxSessions: 2 } });
        const r = await st.kv.apply(items(1, 1, [put('a', '1', sess('s1', 0)), put('b', '1', sess('s2', 0)), put('c', '1', sess('s3', 0)), put('d', '1', sess('s1', 1))]));
        expect(r.map((x) => x.op === 'error' ? x.code : x.op)).toEqual(['put', 'put', 'QKV_SESSIONS_FULL', 'put']);
        expect(await st.kv.get(b('c'))).toBeUndefined();
      });
    });

    describe('snapshots', () => {
      async function populated(h: Harness, options?: NodeStoreOptions): Promise<NodeStore> {
        const st = await openOn(h, options);
        const cmds: Command[] = [];
        for (let i = 0; i < 40; i++) cmds.push(put(`key/${i % 25}`, 'v'.repeat(i * 7), { ...sess(`c${i % 3}`, Math.floor(i / 3)), timeMs: 1000 + i }));
        await st.kv.apply(items(1, 1, cmds));
        await st.kv.apply([{ kind: 'membership', index: 41, term: 2, data: b('cc'), membership: MEMBERSHIP }]);
        await st.kv.apply(items(42, 2, [del('key/3')]));
        await st.log.append({ entries: [entry(1, 1)], sync: true });
        return st;
      }
      async function stream(st: NodeStore, chunkBytes: number): Promise<{ chunks: Uint8Array[]; info: { index: number; term: number } }> {
        const reader = await st.openSnapshotReader({ chunkBytes });
        const chunks: Uint8Array[] = [];
        try {
          for await (const c of reader) chunks.push(c);
        } finally {
          await reader.close();
        }
        return { chunks, info: reader.info };
      }

      test('round trip: read from one store, write into another; state, applied position and membership match', async () => {
        const a = await populated(await machine());
        const hb = await machine();
        let bStore = await openOn(hb);
        await bStore.kv.apply(items(1, 1, [put('stale', 'x')]));
        await bStore.log.append({ entries: [entry(1, 1), entry(2, 1)], sync: true });
        const { chunks, info } = await stream(a, 97);
        expect(chunks.slice(0, -1).every((c) => c.length === 97)).toBe(true);
        expect(info).toMatchObject({ index: 42, term: 2, membership: MEMBERSHIP });
        const w = await bStore.openSnapshotWriter({ index: 42, term: 2 });
        for (const c of chunks) await w.write(c);
        await w.install({ hardState: { term: 2, vote: null, commit: 42 } });
        bStore = await restart(hb, bStore);
        expect(await bStore.kv.stateHash()).toBe(await a.kv.stateHash());
        expect(bStore.kv.applied()).toEqual(a.kv.applied());
        expect(bStore.kv.membership()).toEqual(MEMBERSHIP);
        expect(await bStore.kv.get(b('stale'))).toBeUndefined();
        expect(await bStore.log.load()).toEqual({ hardState: { term: 2, vote: null, commit: 42 }, entries: [], snapshotMeta: { index: 42, term: 2 } });
        // Both continue identically, sessions included (c0 seq 0 is a duplicate on both).
        const next = items(43, 2, [put('key/1', 'new', sess('c0', 0)), put('key/1', 'new', sess('c0', 14))]);
        expect(await bStore.kv.apply(next)).toEqual(await a.kv.apply(next));
        expect(await bStore.kv.stateHash()).toBe(await a.kv.stateHash());
        // No leftovers of the old generation.
        await bStore.close();
        expect(await hb.rawCount('kv')).toBe(25 - 1);
      });

      test('a reader sees the state at the moment it was opened, not later writes', async () => {
        const a = await populated(await machine());
        const before = await a.kv.stateHash();
        const reader = await a.openSnapshotReader({ chunkBytes: 64 });
        await a.kv.apply(items(43, 2, [put('later', '1'), del('key/4')]));
        const chunks: Uint8Array[] = [];
        for await (const c of reader) chunks.push(c);
        await reader.close();
        const c = await openOn(await machine());
        const w = await c.openSnapshotWriter({ index: 42, term: 2 });
        for (const chunk of chunks) await w.write(chunk);
        await w.install();
        expect(await c.kv.stateHash()).toBe(before);
      });

      test('after an install, reads see the installed state, not records cached before it', async () => {
        const a = await populated(await machine());
        const { chunks } = await stream(a, 1 << 20);
        const c = await openOn(await machine());
        await c.kv.apply(items(1, 1, [put('key/1', 'mine'), put('only-here', '1')]));
        expect(s((await c.kv.get(b('key/1')))!.value)).toBe('mine'); // now cached
        expect(await c.kv.get(b('key/2'))).toBeUndefined(); // cached as absent
        const w = await c.openSnapshotWriter({ index: 42, term: 2 });
        for (const chunk of chunks) await w.write(chunk);
        await w.install();
        for (const k of ['key/1', 'key/2', 'only-here']) expect(await c.kv.get(b(k))).toEqual(await a.kv.get(b(k)));
      });

      test('a snapshot not newer than the applied state is refused (it would roll the state back)', async () => {
        const a = await populated(await machine());
        const bStore = await populated(await machine());
        await bStore.kv.apply(items(43, 2, [put('ahead', '1')]));
        const before = await bStore.kv.stateHash();
        const { chunks } = await stream(a, 1 << 20);
        const w = await bStore.openSnapshotWriter({ index: 42, term: 2 });
        for (const c of chunks) await w.write(c);
        await expect(w.install()).rejects.toMatchObject({ code: 'QKV_STORAGE_ARGUMENT' });
        await w.abort();
        expect(await bStore.kv.stateHash()).toBe(before);
      });

      test('install keeps the log after the snapshot when the entry at its index matches', async () => {
        const a = await populated(await machine());
        const bStore = await openOn(await machine());
        const log = Array.from({ length: 44 }, (_, i) => entry(i + 1, i + 1 <= 40 ? 1 : 2));
        await bStore.log.append({ entries: log, sync: true });
        const { chunks } = await stream(a, 1 << 20);
        const w = await bStore.openSnapshotWriter({ index: 42, term: 2 });
        for (const c of chunks) await w.write(c);
        await w.install();
        expect((await bStore.log.load()).entries.map((e) => e.index)).toEqual([43, 44]);
        expect([bStore.log.firstIndex(), bStore.log.lastIndex()]).toEqual([43, 44]);
      });

      test('a damaged, truncated or mismatched stream is refused and leaves the state untouched', async () => {
        const a = await populated(await machine());
        const hb = await machine();
        const bStore = await openOn(hb);
        await bStore.kv.apply(items(1, 1, [put('mine', '1')]));
        const before = await bStore.kv.stateHash();
        const { chunks } = await stream(a, 128);
        const flipped = chunks.map((c) => c.slice());
        const damaged = flipped[2]!;
        damaged[50] = (damaged[50] ?? 0) ^ 0xff;
        const cases: Array<[string, Uint8Array[]]> = [['flipped', flipped], ['truncated', chunks.slice(0, -1)]];
        for (const [, body] of cases) {
          const w = await bStore.openSnapshotWriter({ index: 42, term: 2 });
          const err = await (async () => {
            for (const c of body) await w.write(c);
            await w.install();
          })().catch((e: unknown) => e);
          expect(err).toMatchObject({ code: 'QKV_SNAPSHOT_CORRUPT' });
          await w.abort();
        }
        const w = await bStore.openSnapshotWriter({ index: 41, term: 2 });
        const mismatch = (async () => {
          for (const c of chunks) await w.write(c);
        })();
        await expect(mismatch).rejects.toMatchObject({ code: 'QKV_SNAPSHOT_CORRUPT' });
        await w.abort();
        expect(await bStore.kv.stateHash()).toBe(before);
        expect(bStore.kv.appliedIndex()).toBe(1);
        await bStore.close();
        expect(await hb.rawCount('kv')).toBe(1); // abort dropped every staged record
      });

      test.each(['snapshot.stage', 'snapshot.flip', 'snapshot.cleanup'])('a crash at "%s" leaves the old state or the new, never a mix', async (crashAt) => {
        const a = await populated(await machine());
        const newHash = await a.kv.stateHash();
        const hb = await machine();
        let armed = false;
        let stages = 0;
        const hooks = {
          beforeWrite: (label: string) => {
            if (!armed || label !== crashAt) return;
            if (label === 'snapshot.stage' && ++stages < 3) return; // crash in the middle of staging
            throw new Error(`crash at ${label}`);
          },
        };
        let bStore = await openOn(hb, { testHooks: hooks });
        await bStore.kv.apply(items(1, 1, [put('mine', '1', sess('z', 0))]));
        const oldHash = await bStore.kv.stateHash();
        const { chunks } = await stream(a, 100);
        armed = true;
        const w = await bStore.openSnapshotWriter({ index: 42, term: 2 });
        const err = await (async () => {
          for (const c of chunks) await w.write(c);
          await w.install();
        })().catch((e: unknown) => e);
        expect(err).toBeInstanceOf(Error);
        armed = false;
        bStore = await restart(hb, bStore);
        const expectNew = crashAt === 'snapshot.cleanup';
        expect(await bStore.kv.stateHash()).toBe(expectNew ? newHash : oldHash);
        expect(bStore.kv.appliedIndex()).toBe(expectNew ? 42 : 1);
        await bStore.close();
        // The restart dropped the unreachable generation.
        expect(await hb.rawCount('kv')).toBe(expectNew ? 24 : 1);
      });
    });
  });
}

function u64(n: number): Uint8Array {
  const out = new Uint8Array(8);
  new DataView(out.buffer).setBigUint64(0, BigInt(n));
  return out;
}

export type { ApplyResult };
