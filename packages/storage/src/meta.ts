// Records of the `meta` namespace: what they hold, how they are encoded and validated.
import { type Backend, type BatchOp, ITERATE_BATCH_MAX, type ReadView } from './backend.js';
import { seal, unseal } from './checksum.js';
import { isIndex, isRecord, plainBytes, unpack, utf8 } from './codec.js';
import { packPlain } from './msgpack-writer.js';
import { decodeKvRecord, genRange, historyKey } from './kv-layout.js';
import { StorageCorruptError, StorageFormatError } from './errors.js';
import type { HardState, LogStart, Member, Membership } from './types.js';

/**
 * The on-disk format this build writes and reads. Bump on any incompatible layout change.
 * 2: log and meta records are sealed with a CRC-32 (checksum.ts).
 * 3: the applied state carries the state machine's own revision counter (AppliedState.revision)
 *    and the compacted revision. Formats 1 and 2 are migrated at open (migrateToRevisions).
 * 4: the `sessions` namespace may hold idempotency entries (idempotency.ts, prefix 'k'). A
 *    format-3 store has none: it is migrated by writing the format record (a build that knows only
 *    format 3 then refuses the store instead of ignoring its idempotency keys).
 */
export const STORAGE_FORMAT_VERSION = 4;
/** The format before idempotency entries (migrated to 4 by rewriting the format record). */
const PRE_IDEMPOTENCY_FORMAT_VERSION = 3;
/** The format without seals (migrated to 2, then to 3). */
const UNSEALED_FORMAT_VERSION = 1;
/** The format whose mod revisions were Raft indexes (migrated to 3). */
const INDEX_REVISION_FORMAT_VERSION = 2;

/** Keys of the `meta` namespace. */
export const MetaKey = {
  format: utf8('format'),
  hardState: utf8('hardState'),
  logStart: utf8('logStart'),
  applied: utf8('applied'),
  membership: utf8('membership'),
  generation: utf8('generation'),
} as const;

/** The applied position of the state machine; written in the same batch as the writes it covers. */
export interface AppliedState {
  index: number;
  term: number;
  /** sha256 chained over (index, term, data) of every applied entry; 32 zero bytes at the start. */
  hash: Uint8Array;
  /** The largest command `timeMs` applied so far (the replicated clock used for session expiry). */
  clockMs: number;
  /**
   * The state machine's revision (etcd's main revision): +1 per applied mutating command (a put,
   * a delete that deleted, a cas that succeeded), never moved by no-ops or membership entries.
   * Invariant: revision <= index (a store migrated from format 2 starts it at its applied index).
   */
  revision: number;
  /** History below this revision is compacted away: reads at a lower revision fail QKV_COMPACTED. */
  compactedRevision: number;
}

/** The state right after creation. */
export function initialApplied(): AppliedState {
  return { index: 0, term: 0, hash: new Uint8Array(32), clockMs: 0, revision: 0, compactedRevision: 0 };
}

type Decoder<T> = (x: unknown) => T | undefined;

/** Decodes a meta record or throws QKV_STORAGE_CORRUPT naming the record. */
export function decodeMeta<T>(location: string, name: string, bytes: Uint8Array, decode: Decoder<T>): T {
  let raw: unknown;
  try {
    raw = unpack(bytes);
  } catch (err) {
    throw new StorageCorruptError(location, `meta record "${name}" is not decodable`, { cause: err });
  }
  const value = decode(raw);
  if (value === undefined) throw new StorageCorruptError(location, `meta record "${name}" has an invalid shape`);
  return value;
}

/** Validates a hard state. */
export const decodeHardState: Decoder<HardState> = (x) => {
  if (!isRecord(x) || !isIndex(x['term']) || !isIndex(x['commit'])) return undefined;
  const vote = x['vote'];
  if (vote !== null && (typeof vote !== 'string' || vote === '')) return undefined;
  return { term: x['term'], vote, commit: x['commit'] };
};

/** Validates a log start (the index/term covered by the last snapshot). */
export const decodeLogStart: Decoder<LogStart> = (x) =>
  isRecord(x) && isIndex(x['index']) && isIndex(x['term']) ? { index: x['index'], term: x['term'] } : undefined;

/** Validates an applied state. */
export const decodeApplied: Decoder<AppliedState> = (x) => {
  const base = decodeIndexApplied(x);
  if (!base || !isRecord(x)) return undefined;
  const { revision, compactedRevision } = x;
  if (!isIndex(revision) || !isIndex(compactedRevision) || compactedRevision > revision || revision > base.index) return undefined;
  return { ...base, revision, compactedRevision };
};

/**
 * Validates an applied state of format 2 (no revision fields): its revision becomes its index,
 * which keeps every stored modRevision (a Raft index then) at or below the revision.
 */
export const decodeIndexApplied: Decoder<AppliedState> = (x) => {
  if (!isRecord(x) || !isIndex(x['index']) || !isIndex(x['term']) || !isIndex(x['clockMs'])) return undefined;
  const hash = x['hash'];
  if (!(hash instanceof Uint8Array) || hash.length !== 32) return undefined;
  return { index: x['index'], term: x['term'], hash: plainBytes(hash), clockMs: x['clockMs'], revision: x['index'], compactedRevision: 0 };
};

function decodeMember(x: unknown): Member | undefined {
  if (!isRecord(x) || typeof x['id'] !== 'string' || x['id'] === '' || typeof x['address'] !== 'string') return undefined;
  const zone = x['zone'];
  if (zone !== undefined && typeof zone !== 'string') return undefined;
  const incarnation = x['incarnation'];
  if (incarnation !== undefined && typeof incarnation !== 'string') return undefined;
  return {
    id: x['id'],
    address: x['address'],
    ...(zone === undefined ? {} : { zone }),
    ...(incarnation === undefined ? {} : { incarnation }),
  };
}

function decodeMembers(x: unknown): Member[] | undefined {
  if (!Array.isArray(x)) return undefined;
  const out: Member[] = [];
  for (const m of x) {
    const member = decodeMember(m);
    if (!member) return undefined;
    out.push(member);
  }
  return out;
}

/** Validates a membership. Also used on the public API (apply items). */
export const decodeMembership: Decoder<Membership> = (x) => {
  if (!isRecord(x)) return undefined;
  const voters = decodeMembers(x['voters']);
  const learners = decodeMembers(x['learners']);
  return voters && learners ? { voters, learners } : undefined;
};

/** Validates the generation pointer. */
export const decodeGeneration: Decoder<number> = (x) => (isIndex(x) && x <= 0xffff_fffe ? x : undefined);

/** Encodes a meta record (sealed with its checksum) as a batch op. */
export function metaPut(key: Uint8Array, value: unknown): BatchOp {
  // packPlain: the applied state is written with every apply batch; same bytes as pack(value).
  return { type: 'put', ns: 'meta', key, value: seal(key, packPlain(value)) };
}

/** Reads, checks the checksum of and validates one meta record; undefined if absent. */
export async function readMeta<T>(view: ReadView, location: string, name: SealedMetaName, decode: Decoder<T>): Promise<T | undefined> {
  const bytes = await view.get('meta', MetaKey[name]);
  if (bytes === undefined) return undefined;
  return decodeMeta(location, name, unseal(location, `meta record "${name}"`, MetaKey[name], bytes), decode);
}

/** Every meta record but `format` is sealed (`format` stays plain so any version can read it). */
type SealedMetaName = Exclude<keyof typeof MetaKey, 'format'>;

/**
 * Checks the format record, writing it (with the initial generation) on first open of an empty
 * store. Refuses a newer or unknown format, and refuses data without a format record: a store
 * never silently starts empty over existing data.
 */
export async function checkFormat(backend: Backend): Promise<void> {
  const where = backend.location;
  const bytes = await backend.get('meta', MetaKey.format);
  if (bytes === undefined) {
    if (!(await backend.isEmpty())) {
      throw new StorageCorruptError(where, 'the database holds data but no format record (not a quorumkv store, or damaged)');
    }
    await backend.write([formatPut(), metaPut(MetaKey.generation, 0)], {
      sync: true,
      label: 'format.init',
    });
    return;
  }
  const format = decodeMeta(where, 'format', bytes, (x) => (isRecord(x) && isIndex(x['version']) ? x['version'] : undefined));
  if (format === UNSEALED_FORMAT_VERSION) {
    await migrateFromUnsealed(backend);
    return migrateToRevisions(backend);
  }
  if (format === INDEX_REVISION_FORMAT_VERSION) return migrateToRevisions(backend);
  if (format === PRE_IDEMPOTENCY_FORMAT_VERSION) return backend.write([formatPut()], { sync: true, label: 'format.migrate' });
  if (format !== STORAGE_FORMAT_VERSION) throw new StorageFormatError(where, format, STORAGE_FORMAT_VERSION);
}

/** The format record: plain msgpack, unsealed, so that every version can read it and refuse a newer one. */
function formatPut(version = STORAGE_FORMAT_VERSION): BatchOp {
  return { type: 'put', ns: 'meta', key: MetaKey.format, value: packPlain({ version }) };
}

/** History records written per batch when format 2 → 3 gives every existing key its version. */
const MIGRATE_HISTORY_BATCH_RECORDS = 1024;

/**
 * Format 2 → 3: every kv record of the live generation gets its history version (at its
 * modRevision), in batches: idempotent, and format 2 has no history, so a crash part-way leaves a
 * format-2 store that migrates again. Then, in one synced batch with the format record, the applied
 * state gains its revision (= its applied index, so every stored modRevision, a Raft index in
 * format 2, stays at or below it and revisions keep growing) and a compacted revision equal to it:
 * format 2 kept no older versions, so no read below it can be answered.
 */
async function migrateToRevisions(backend: Backend): Promise<void> {
  const gen = (await readMeta(backend, backend.location, 'generation', decodeGeneration)) ?? 0;
  let history: BatchOp[] = [];
  for await (const batch of backend.iterate('kv', genRange(gen), ITERATE_BATCH_MAX)) {
    for (const [k, v] of batch) {
      const record = decodeKvRecord(backend.location, v);
      history.push({ type: 'put', ns: 'history', key: historyKey(gen, k.subarray(4), record.modRevision), value: v });
    }
    if (history.length >= MIGRATE_HISTORY_BATCH_RECORDS) {
      await backend.write(history, { sync: false, label: 'format.migrate' });
      history = [];
    }
  }
  const ops: BatchOp[] = history;
  const applied = await readMeta(backend, backend.location, 'applied', decodeIndexApplied);
  if (applied) ops.push(metaPut(MetaKey.applied, { ...applied, compactedRevision: applied.revision }));
  ops.push(formatPut());
  await backend.write(ops, { sync: true, label: 'format.migrate' });
}

/**
 * Format 1 → 2: seals every log and meta record (but `format`) and writes the new format record,
 * all in ONE synced batch, so a crash leaves format 1 untouched or format 2 complete. The log is
 * bounded by compaction, so the batch is too.
 */
async function migrateFromUnsealed(backend: Backend): Promise<void> {
  const ops: BatchOp[] = [];
  for (const ns of ['log', 'meta'] as const) {
    for await (const batch of backend.iterate(ns, {}, ITERATE_BATCH_MAX)) {
      for (const [key, value] of batch) {
        if (ns === 'meta' && Buffer.from(key).equals(MetaKey.format)) continue;
        ops.push({ type: 'put', ns, key, value: seal(key, value) });
      }
    }
  }
  ops.push(formatPut(INDEX_REVISION_FORMAT_VERSION));
  await backend.write(ops, { sync: true, label: 'format.migrate' });
}
