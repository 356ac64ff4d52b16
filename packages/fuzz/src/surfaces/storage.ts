// Stored records read back from disk: a node's store (log, hard state, applied state, membership,
// keys, history, sessions) is built once on the in-memory disk — the twin of LevelDB that runs
// the same store code — then for each input one or two stored records are damaged (raw edits to
// the value, a random value, the value of another record, a copy of a record under another key) and the
// store is opened and read back the way a restarting node does: load the log, read the applied
// state, the membership, every key, a full range and the state hash. Invariants: a damaged record
// makes opening or reading fail with QKV_STORAGE_CORRUPT (or QKV_STORAGE_FORMAT for the format
// record), never another error; when nothing fails, everything read equals what was written
// (never misread) — with one documented exception (docs/storage.md, "Checksums"): `kv`,
// `sessions` and `history` records are not sealed, so damage that leaves such a record
// well-formed is read as written on disk (replicas then disagree on the state hash). A damaged
// unsealed record that is NOT well-formed must still be refused.
import { isDeepStrictEqual } from 'node:util';
import fc from 'fast-check';
import { Unpackr } from 'msgpackr';
import { MemoryDisk, StorageError, encodeCommand, openMemoryNodeStore, type ApplyItem, type Command, type NodeStore } from '@quorumkv/storage';
import { FuzzViolation, type FuzzTarget, type Outcome, type Surface } from '../runner.js';
import { applyEdits, byteEdit, type ByteEdit } from '../mutate.js';

const NAMESPACES = ['log', 'meta', 'kv', 'sessions', 'history'] as const;
type Namespace = (typeof NAMESPACES)[number];
/** Codes a damaged store may refuse with. */
const REFUSAL_CODES = new Set(['QKV_STORAGE_CORRUPT', 'QKV_STORAGE_FORMAT']);
const MEMBERSHIP = { voters: [{ id: 'n1', address: '127.0.0.1:7001', zone: 'a' }, { id: 'n2', address: '127.0.0.1:7002' }], learners: [{ id: 'n3', address: '127.0.0.1:7003' }] };

/** One damage to one stored record, chosen by position so it replays on the same store. */
export type Damage =
  | { kind: 'edit'; ns: Namespace; at: number; edits: ByteEdit[] }
  | { kind: 'replace'; ns: Namespace; at: number; value: Uint8Array }
  | { kind: 'swap'; ns: Namespace; at: number; other: number }
  | { kind: 'move'; ns: Namespace; at: number; edits: ByteEdit[] };

const where = { ns: fc.constantFrom(...NAMESPACES), at: fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true }) };
const damage: fc.Arbitrary<Damage> = fc.oneof(
  { weight: 5, arbitrary: fc.record({ kind: fc.constant('edit' as const), ...where, edits: fc.array(byteEdit, { minLength: 1, maxLength: 3 }) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('replace' as const), ...where, value: fc.uint8Array({ maxLength: 40 }) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('swap' as const), ...where, other: fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true }) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('move' as const), ...where, edits: fc.array(byteEdit, { minLength: 1, maxLength: 2 }) }) },
);

type Data = MemoryDisk['data'];

function copyData(d: Data): Data {
  const out = {} as Data;
  for (const ns of NAMESPACES) out[ns] = new Map([...d[ns]].map(([k, [key, value]]) => [k, [Uint8Array.from(key), Uint8Array.from(value)]]));
  return out;
}

const latin1 = (b: Uint8Array) => Buffer.from(b).toString('latin1');

const UNSEALED: ReadonlySet<Namespace> = new Set(['kv', 'sessions', 'history']);
const unpackr = new Unpackr({ useRecords: false, mapsAsObjects: true });
const isIdx = (v: unknown) => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;

/**
 * Whether an unsealed record is still well-formed (the shapes of storage kv-layout.ts): a kv
 * record [value, createRev, modRev, version]; history: that or empty (a tombstone); sessions: a
 * header [lastActiveMs, discardedBelow, seqs, inline?] or any msgpack value (a stored result).
 */
function wellFormedUnsealed(ns: Namespace, key: Uint8Array, value: Uint8Array): boolean {
  if (ns === 'history' && value.length === 0) return true;
  let v: unknown;
  try {
    v = unpackr.unpack(value);
  } catch {
    return false;
  }
  if (ns === 'sessions') return key[4] !== 0x68 || (Array.isArray(v) && (v.length === 3 || v.length === 4) && isIdx(v[0]) && isIdx(v[1]) && Array.isArray(v[2]));
  return Array.isArray(v) && v.length === 4 && v[0] instanceof Uint8Array && isIdx(v[1]) && isIdx(v[2]) && isIdx(v[3]);
}

/** Damages the disk; returns true when the damage may change what is read without an error (see the header). */
function damageDisk(data: Data, d: Damage): boolean {
  const m = data[d.ns];
  const keys = [...m.keys()];
  if (keys.length === 0) return false;
  const k = keys[Math.floor(d.at * keys.length)]!;
  const [key, value] = m.get(k)!;
  // Untouched (an edit that changed nothing, a swap with itself), or unsealed and still well-formed.
  const before = new Map(keys.map((kk) => [kk, m.get(kk)![1]]));
  const unchanged = (key2: Uint8Array, value2: Uint8Array) => {
    const was = before.get(latin1(key2));
    return was !== undefined && Buffer.from(was).equals(Buffer.from(value2));
  };
  const ok = (key2: Uint8Array, value2: Uint8Array) => !unchanged(key2, value2) && UNSEALED.has(d.ns) && wellFormedUnsealed(d.ns, key2, value2);
  switch (d.kind) {
    case 'edit': {
      const edited = applyEdits(value, d.edits);
      m.set(k, [key, edited]);
      return ok(key, edited);
    }
    case 'replace':
      m.set(k, [key, d.value]);
      return ok(key, d.value);
    case 'swap': {
      const k2 = keys[Math.floor(d.other * keys.length)]!;
      const [key2, value2] = m.get(k2)!;
      m.set(k, [key, value2]);
      m.set(k2, [key2, value]);
      return ok(key, value2) && ok(key2, value);
    }
    case 'move': {
      const moved = applyEdits(key, d.edits);
      if (moved.length === 0) return false;
      // A copy under another key (the original stays): a lost record is not a damaged one.
      m.set(latin1(moved), [moved, value]);
      return ok(moved, value);
    }
  }
}

/** Everything a restarting node reads, as plain data. */
async function readBack(store: NodeStore): Promise<unknown> {
  const log = await store.log.load();
  const keys = await store.kv.range({ prefix: new Uint8Array(0) }, 1000);
  const gets = await Promise.all(keys.map((kv) => store.kv.get(kv.key)));
  const old = await store.kv.range({ prefix: new Uint8Array(0) }, 1000, { revision: 3 });
  return JSON.parse(
    JSON.stringify({ log, applied: store.kv.applied(), membership: store.kv.membership(), keys, gets, old, hash: await store.kv.stateHash(), session: store.kv.hasSession('fuzz-a') }, (_k, v: unknown) =>
      v instanceof Uint8Array ? Buffer.from(v).toString('hex') : v,
    ),
  );
}

/** The reference store: a log with hard state, applied writes with sessions, membership. */
async function buildReference(): Promise<{ disk: MemoryDisk; expected: unknown }> {
  const disk = new MemoryDisk();
  const store = await openMemoryNodeStore(disk);
  const enc = (s: string) => new TextEncoder().encode(s);
  const cmds: Command[] = [
    { op: 'put', key: enc('a'), value: enc('1'), session: { id: 'fuzz-a', seq: 1, ackedBelow: 1 } },
    { op: 'put', key: enc('b'), value: enc('two') },
    { op: 'put', key: enc('a'), value: enc('3'), session: { id: 'fuzz-a', seq: 2, ackedBelow: 2 } },
    { op: 'del', key: enc('b') },
    { op: 'cas', key: enc('c'), cond: { absent: true }, then: { op: 'put', value: enc('see') } },
    { op: 'put', key: enc('d/1'), value: new Uint8Array([0, 255, 1]) },
  ];
  const entries = cmds.map((c, i) => ({ index: i + 1, term: 1 + Math.floor(i / 3), type: 0 as const, data: encodeCommand(c) }));
  await store.log.append({ hardState: { term: 2, vote: 'n1', commit: entries.length }, entries, sync: true });
  const items: ApplyItem[] = entries.map((e) => ({ kind: 'entry', index: e.index, term: e.term, data: e.data }));
  items.push({ kind: 'membership', index: entries.length + 1, term: 2, data: new Uint8Array([1]), membership: MEMBERSHIP });
  await store.log.append({ entries: [{ index: entries.length + 1, term: 2, type: 1, data: new Uint8Array([1]) }], sync: true });
  await store.kv.apply(items, { sync: true });
  await store.log.settleMark();
  await store.close();
  const check = await openMemoryNodeStore(disk);
  const expected = await readBack(check);
  await check.close();
  return { disk, expected };
}

export const storageSurface: Surface<Damage[]> = {
  name: 'storage',
  description: 'stored records read back from disk after damage (log, meta, keys, history, sessions)',
  arbitrary: () => fc.array(damage, { minLength: 1, maxLength: 2 }),
  open: async () => openStorageTarget(),
  show: (i) => JSON.stringify(i, (_k, v: unknown) => (v instanceof Uint8Array ? Buffer.from(v).toString('hex') : v)),
};

async function openStorageTarget(): Promise<FuzzTarget<Damage[]>> {
  const ref = await buildReference();
  const pristine = copyData(ref.disk.data);
  const attempt = async (damages: Damage[]): Promise<Outcome> => {
    // A new disk each time: a store that failed to open leaves nothing behind for the next input.
    const disk = new MemoryDisk();
    disk.data = copyData(pristine);
    disk.mark = ref.disk.mark?.slice();
    // Reads may differ only if some damage left an unsealed record well-formed (then it cannot be
    // told apart from the other damage; single-damage inputs check sealed records alone).
    let mayReadDifferently = false;
    for (const d of damages) mayReadDifferently = damageDisk(disk.data, d) || mayReadDifferently;
    let store: NodeStore | undefined;
    try {
      store = await openMemoryNodeStore(disk);
      const got = await readBack(store);
      if (!isDeepStrictEqual(got, ref.expected) && !mayReadDifferently) {
        throw new FuzzViolation(`a damaged store was misread instead of refused:\n  expected ${JSON.stringify(ref.expected)}\n  got      ${JSON.stringify(got)}`);
      }
      return 'accepted';
    } catch (e) {
      if (e instanceof FuzzViolation) throw e;
      if (e instanceof StorageError && REFUSAL_CODES.has(e.code)) return 'refused';
      throw new FuzzViolation(`reading a damaged store threw ${(e as Error)?.name} ${(e as { code?: string })?.code ?? ''}, not QKV_STORAGE_CORRUPT: ${(e as Error)?.stack ?? String(e)}`, { cause: e });
    } finally {
      await store?.close().catch(() => undefined);
    }
  };
  return {
    feed: attempt,
    control: async () => {
      if ((await attempt([])) !== 'accepted') throw new FuzzViolation('the undamaged store no longer reads back');
    },
    close: async () => undefined,
  };
}
