// Transactions and range deletes, run on every storage implementation (LevelDB and memory twin).
import { afterEach, describe, expect, test } from 'vitest';
import { type ApplyItem, type ApplyResult, type Command, type NodeStore, type NodeStoreOptions, STORAGE_FORMAT_VERSION, decodeCommand, encodeCommand } from '@quorumkv/storage';
import { pack } from '../src/codec.js';
import { TXN_LIMITS } from '../src/txn.js';
import type { Harness, HarnessFactory } from './harness.js';

const te = new TextEncoder();
const b = (s: string) => te.encode(s);
const td = new TextDecoder();
const s = (u: Uint8Array | undefined) => (u === undefined ? undefined : td.decode(u));

function items(first: number, term: number, cmds: Command[]): ApplyItem[] {
  return cmds.map((c, i) => ({ kind: 'entry', index: first + i, term, data: encodeCommand(c) }));
}
const put = (key: string, value: string): Command => ({ op: 'put', key: b(key), value: b(value) });
type Txn = Extract<Command, { op: 'txn' }>;
const txn = (t: Partial<Omit<Txn, 'op'>>): Command => ({ op: 'txn', compare: [], success: [], failure: [], ...t });
const delRange = (start: string, end?: string): Command => txn({ success: [{ op: 'deleteRange', start: b(start), ...(end ? { end: b(end) } : {}) }] });
const names = (kvs: Array<{ key: Uint8Array }>) => kvs.map((kv) => s(kv.key));

/** The txn result of an apply result, or a failure naming what came instead. */
function asTxn(r: ApplyResult | undefined): Extract<ApplyResult, { op: 'txn' }> {
  if (r?.op !== 'txn') throw new Error(`expected a txn result, got ${JSON.stringify(r)}`);
  return r;
}

/** Registers the transaction suite for one implementation. */
export function txnConformance(name: string, factory: HarnessFactory): void {
  describe(`transactions: ${name}`, () => {
    const harnesses: Harness[] = [];
    const stores: NodeStore[] = [];
    async function open(options?: NodeStoreOptions): Promise<{ h: Harness; st: NodeStore }> {
      const h = await factory();
      harnesses.push(h);
      const st = await h.open(options);
      stores.push(st);
      return { h, st };
    }
    afterEach(async () => {
      for (const st of stores.splice(0)) await st.close().catch(() => undefined);
      for (const h of harnesses.splice(0)) await h.cleanup();
    });

    test('compares on value, version, createRevision and modRevision with ==, !=, <, > choose the branch', async () => {
      const { st } = await open();
      await st.kv.apply(items(1, 1, [put('k', 'm'), put('k', 'm')])); // k: create 1, mod 2, version 2
      const cases: Array<[Txn['compare'][number], boolean]> = [
        [{ key: b('k'), target: 'value', op: '==', value: b('m') }, true],
        [{ key: b('k'), target: 'value', op: '<', value: b('n') }, true],
        [{ key: b('k'), target: 'value', op: '>', value: b('m') }, false],
        [{ key: b('k'), target: 'value', op: '!=', value: b('m') }, false],
        [{ key: b('k'), target: 'version', op: '==', value: 2 }, true],
        [{ key: b('k'), target: 'createRevision', op: '<', value: 2 }, true],
        [{ key: b('k'), target: 'modRevision', op: '>', value: 2 }, false],
        [{ key: b('k'), target: 'modRevision', op: '!=', value: 1 }, true],
        // An absent key: its numbers are 0, and a value compare never holds.
        [{ key: b('none'), target: 'version', op: '==', value: 0 }, true],
        [{ key: b('none'), target: 'value', op: '!=', value: b('x') }, false],
      ];
      const r = await st.kv.apply(items(3, 1, cases.map(([c]) => txn({ compare: [c], success: [{ op: 'get', key: b('k') }] }))));
      expect(r.map((x) => asTxn(x).succeeded)).toEqual(cases.map(([, want]) => want));
      // Reads only: the revision did not move.
      expect(r.map((x) => asTxn(x).revision)).toEqual(cases.map(() => 2));
      expect(asTxn(r[0]).results).toEqual([{ op: 'get', item: { key: b('k'), value: b('m'), createRevision: 1, modRevision: 2, version: 2 } }]);
      expect(asTxn(r[2]).results).toEqual([]);
    });

    test('every key a transaction changes shares one revision; its reads see its own earlier writes', async () => {
      const { st } = await open();
      await st.kv.apply(items(1, 1, [put('acct/a', '10'), put('acct/b', '5')]));
      const [r] = await st.kv.apply(
        items(3, 1, [
          txn({
            compare: [{ key: b('acct/a'), target: 'modRevision', op: '==', value: 1 }],
            success: [
              { op: 'put', key: b('acct/a'), value: b('7') },
              { op: 'put', key: b('acct/b'), value: b('8') },
              { op: 'put', key: b('acct/c'), value: b('0') },
              { op: 'get', key: b('acct/a') },
              { op: 'range', start: b('acct/'), end: b('acct0'), limit: 2 },
            ],
          }),
        ]),
      );
      const t = asTxn(r);
      expect([t.succeeded, t.revision]).toEqual([true, 3]);
      expect(t.results[3]).toEqual({ op: 'get', item: { key: b('acct/a'), value: b('7'), createRevision: 1, modRevision: 3, version: 2 } });
      const range = t.results[4];
      expect(range?.op === 'range' && [names(range.items), range.items.map((kv) => s(kv.value)), range.more]).toEqual([['acct/a', 'acct/b'], ['7', '8'], true]);
      // History: nothing of the transaction at 2, all of it at 3.
      const at = async (rev: number) => (await st.kv.range({ prefix: b('acct/') }, 10, { revision: rev })).map((kv) => `${s(kv.key)}=${s(kv.value)}@${kv.modRevision}`);
      expect(await at(2)).toEqual(['acct/a=10@1', 'acct/b=5@2']);
      expect(await at(3)).toEqual(['acct/a=7@3', 'acct/b=8@3', 'acct/c=0@3']);
    });

    test('a range delete removes every key of the range at one revision, also keys written just before it', async () => {
      const { st } = await open();
      await st.kv.apply(items(1, 1, [put('p/1', 'a'), put('p/2', 'b'), put('q', 'c')]));
      // Not awaited: the range delete's batch is computed while this one may still be landing.
      const pending = st.kv.apply(items(4, 1, [put('p/3', 'd')]));
      const r = await st.kv.apply(items(5, 1, [put('p/4', 'e'), delRange('p/', 'p0'), put('p/5', 'f'), delRange('zzz')]));
      await pending;
      expect(r.map((x) => x.op === 'txn' ? [x.results, x.revision] : x.op)).toEqual([
        'put',
        [[{ op: 'deleteRange', deleted: 4 }], 6],
        'put',
        [[{ op: 'deleteRange', deleted: 0 }], 7], // deleted nothing: no new revision
      ]);
      expect(names(await st.kv.range({ start: b('p') }, 10))).toEqual(['p/5', 'q']);
      // Each deleted key has its tombstone at revision 6 and reads as it was at 5.
      for (const k of ['p/1', 'p/2', 'p/3', 'p/4']) {
        expect(await st.kv.get(b(k), { revision: 6 })).toBeUndefined();
        expect(await st.kv.get(b(k), { revision: 5 })).toBeDefined();
      }
    });

    test('range reads inside a transaction read far enough past its own deletes, on big ranges', async () => {
      const { st } = await open();
      await st.kv.apply(items(1, 1, Array.from({ length: 50 }, (_, i) => put(`r/${String(i).padStart(2, '0')}`, 'x'))));
      const [r] = await st.kv.apply(
        items(51, 1, [
          txn({
            success: [
              { op: 'put', key: b('r/00'), value: b('new') },
              { op: 'del', key: b('r/01') },
              { op: 'del', key: b('r/02') },
              { op: 'range', start: b('r/'), end: b('r0'), limit: 3 },
              { op: 'deleteRange', start: b('r/40') },
              { op: 'range', start: b(''), limit: 100 },
            ],
          }),
        ]),
      );
      const t = asTxn(r);
      const first = t.results[3];
      expect(first?.op === 'range' && [names(first.items), first.more]).toEqual([['r/00', 'r/03', 'r/04'], true]);
      expect(t.results[4]).toEqual({ op: 'deleteRange', deleted: 10 });
      const all = t.results[5];
      expect(all?.op === 'range' && [all.items.length, all.more]).toEqual([38, false]);
      // An empty start is the first key: a range delete of everything.
      const [everything] = await st.kv.apply(items(52, 1, [delRange('')]));
      expect(everything).toMatchObject({ op: 'txn', results: [{ op: 'deleteRange', deleted: 38 }] });
    });

    test(`a range op reads at most ${TXN_LIMITS.maxScanBytes} bytes of rows, then answers more: true`, async () => {
      const { st } = await open();
      const big = 'v'.repeat(600 * 1024);
      await st.kv.apply(items(1, 1, Array.from({ length: 10 }, (_, i) => put(`big/${i}`, big))));
      // Seven 600 KiB rows fill the scan; the transaction's own deletes hide all seven.
      const dels = Array.from({ length: 7 }, (_, i) => ({ op: 'del' as const, key: b(`big/${i}`) }));
      const [r] = await st.kv.apply(items(11, 1, [txn({ success: [...dels, { op: 'range', start: b('big/'), end: b('big0'), limit: 10 }] })]));
      expect(asTxn(r).results[7]).toEqual({ op: 'range', items: [], more: true });
      const [d] = await st.kv.apply(items(12, 1, [delRange('big/', 'big0')]));
      expect(d).toMatchObject({ op: 'txn', results: [{ op: 'deleteRange', deleted: 3 }] });
    });

    test('the changes a transaction makes: one per key, all at its revision, each with the record it replaced (watch feed)', async () => {
      const { st } = await open();
      await st.kv.apply(items(1, 1, [put('c/1', 'a'), put('c/2', 'b'), put('c/3', 'c')]));
      await st.kv.apply(items(4, 1, [txn({ success: [{ op: 'put', key: b('c/0'), value: b('new') }, { op: 'put', key: b('c/1'), value: b('A') }, { op: 'deleteRange', start: b('c/2'), end: b('c/9') }] })]));
      const page = await st.kv.changes({ prefix: b('c/') }, 3, 100);
      const text = page.changes.map((c) => `${s(c.key)}@${c.revision}=${c.record ? s(c.record.value) : 'deleted'} prev=${c.prev ? s(c.prev.value) : 'none'}`);
      expect(text.sort()).toEqual(['c/0@4=new prev=none', 'c/1@4=A prev=a', 'c/2@4=deleted prev=b', 'c/3@4=deleted prev=c']);
    });

    test(`a range delete of more than ${TXN_LIMITS.maxDeletedKeys} keys is refused whole with QKV_LIMIT_EXCEEDED`, async () => {
      const { st } = await open();
      const n = TXN_LIMITS.maxDeletedKeys + 1;
      await st.kv.apply(items(1, 1, Array.from({ length: n }, (_, i) => put(`big/${String(i).padStart(6, '0')}`, 'x'))));
      const [r] = await st.kv.apply(items(n + 1, 1, [delRange('big/', 'big0')]));
      expect(r).toMatchObject({ op: 'error', code: 'QKV_LIMIT_EXCEEDED' });
      expect(st.kv.applied().revision).toBe(n);
      expect(await st.kv.range({ prefix: b('big/') }, 10_000)).toHaveLength(10_000);
      // One key fewer fits.
      await st.kv.apply(items(n + 2, 1, [{ op: 'del', key: b('big/000000') }]));
      const [ok] = await st.kv.apply(items(n + 3, 1, [delRange('big/', 'big0')]));
      expect(ok).toMatchObject({ op: 'txn', results: [{ op: 'deleteRange', deleted: TXN_LIMITS.maxDeletedKeys }] });
    }, 60_000);

    test('a retried transaction returns its stored result (reads included) without applying again, across a restart', async () => {
      const { h, st: first } = await open();
      const session = { id: 's', seq: 1, ackedBelow: 0 };
      const t: Command = { ...txn({ success: [{ op: 'put', key: b('n'), value: b('1') }, { op: 'range', start: b('a'), limit: 5 }] }), session };
      await first.kv.apply(items(1, 1, [put('a', 'x')]));
      const [r1] = await first.kv.apply(items(2, 1, [t]));
      await first.close();
      const st = await h.open();
      stores.push(st);
      const [r2] = await st.kv.apply(items(3, 2, [t]));
      expect(r2).toEqual(r1);
      expect(asTxn(r2).results[1]).toMatchObject({ op: 'range', items: [{ key: b('a'), value: b('x') }, { key: b('n'), value: b('1') }] });
      expect(await st.kv.get(b('n'))).toMatchObject({ version: 1, modRevision: 2 });
    });

    test('a branch that would change one key twice is refused when decoded', () => {
      const twice = txn({ success: [{ op: 'put', key: b('k'), value: b('1') }, { op: 'put', key: b('k'), value: b('2') }] });
      expect(() => encodeCommand(twice)).toThrow(/twice/);
      const covered = txn({ failure: [{ op: 'deleteRange', start: b('a'), end: b('c') }, { op: 'put', key: b('b'), value: b('1') }] });
      expect(() => encodeCommand(covered)).toThrow(/puts and deletes/);
      // Deletes may overlap; each key is deleted once.
      expect(decodeCommand(encodeCommand(txn({ success: [{ op: 'del', key: b('b') }, { op: 'deleteRange', start: b('a') }] })))).toMatchObject({ op: 'txn' });
    });

    describe('idempotency keys', () => {
      const T0 = 1_000_000;
      const TTL = 60_000;
      const tagged = (cmd: Command, key: string, hash: string, timeMs: number): Command => ({ ...cmd, idem: { key, hash }, timeMs }) as Command;
      const options: NodeStoreOptions = { kv: { idempotencyTtlMs: TTL, maxIdempotencyKeys: 3 } };

      test('a repeated key with the same request returns the first result and applies once; another request with it is refused', async () => {
        const { h, st: first } = await open(options);
        const [r1] = await first.kv.apply(items(1, 1, [tagged(put('k', 'v1'), 'key-1', 'h1', T0)]));
        expect(r1).toEqual({ op: 'put', revision: 1, term: 1 });
        await first.close();
        const st = await h.open(options); // the table is stored, not only held in memory
        stores.push(st);
        const r = await st.kv.apply(items(2, 2, [tagged(put('k', 'v1'), 'key-1', 'h1', T0 + 10), tagged(put('k', 'other'), 'key-1', 'h2', T0 + 20)]));
        expect(r[0]).toEqual(r1); // the original answer, term included
        expect(r[1]).toMatchObject({ op: 'error', code: 'QKV_IDEMPOTENCY_KEY_REUSED' });
        expect(await st.kv.get(b('k'))).toMatchObject({ value: b('v1'), version: 1, modRevision: 1 });
        // A transaction's result (reads included) is remembered too.
        const t = tagged(txn({ success: [{ op: 'put', key: b('n'), value: b('1') }, { op: 'get', key: b('k') }] }), 'key-2', 'h3', T0 + 30);
        const [t1] = await st.kv.apply(items(4, 2, [t]));
        const [t2] = await st.kv.apply(items(5, 3, [t]));
        expect(t2).toEqual(t1);
        expect(st.kv.applied().revision).toBe(2);
      });

      test('keys expire by the replicated clock, and the table is bounded', async () => {
        const { st } = await open(options);
        await st.kv.apply(items(1, 1, ['a', 'b', 'c'].map((k, i) => tagged(put(k, '1'), `key-${k}`, 'h', T0 + i))));
        // Full: a fourth key is refused and nothing is applied.
        const [full] = await st.kv.apply(items(4, 1, [tagged(put('d', '1'), 'key-d', 'h', T0 + 10)]));
        expect(full).toMatchObject({ op: 'error', code: 'QKV_IDEMPOTENCY_FULL' });
        expect(await st.kv.get(b('d'))).toBeUndefined();
        // A command stamped past the TTL of the first two expires them: key-a applies again.
        const [again] = await st.kv.apply(items(5, 1, [tagged(put('a', '2'), 'key-a', 'h', T0 + 1 + TTL + 1)]));
        expect(again).toMatchObject({ op: 'put', revision: 4 });
        expect(await st.kv.get(b('a'))).toMatchObject({ value: b('2'), version: 2 });
        const [d] = await st.kv.apply(items(6, 1, [tagged(put('d', '1'), 'key-d', 'h', T0 + 2 + TTL + 1)]));
        expect(d).toMatchObject({ op: 'put', revision: 5 });
      });

      test('a format-3 store opens as format 4', async () => {
        const { h, st } = await open();
        await st.kv.apply(items(1, 1, [put('k', 'v')]));
        await st.close();
        await h.rawPut('meta', b('format'), pack({ version: 3 }));
        const again = await h.open();
        stores.push(again);
        expect(await again.kv.get(b('k'))).toMatchObject({ value: b('v') });
        await again.close();
        expect(await h.rawGet('meta', b('format'))).toEqual(pack({ version: STORAGE_FORMAT_VERSION }));
        expect(STORAGE_FORMAT_VERSION).toBe(4);
      });
    });
  });
}
