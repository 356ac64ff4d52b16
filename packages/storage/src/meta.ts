// Records of the `meta` namespace: what they hold, how they are encoded and validated.
import type { Backend, BatchOp, ReadView } from './backend.js';
import { isIndex, isRecord, plainBytes, unpack, utf8 } from './codec.js';
import { packPlain } from './msgpack-writer.js';
import { StorageCorruptError, StorageFormatError } from './errors.js';
import type { HardState, LogStart, Member, Membership } from './types.js';

/** The on-disk format this build writes and reads. Bump on any incompatible layout change. */
export const STORAGE_FORMAT_VERSION = 1;

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
}

/** The state right after creation. */
export function initialApplied(): AppliedState {
  return { index: 0, term: 0, hash: new Uint8Array(32), clockMs: 0 };
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
  if (!isRecord(x) || !isIndex(x['index']) || !isIndex(x['term']) || !isIndex(x['clockMs'])) return undefined;
  const hash = x['hash'];
  if (!(hash instanceof Uint8Array) || hash.length !== 32) return undefined;
  return { index: x['index'], term: x['term'], hash: plainBytes(hash), clockMs: x['clockMs'] };
};

function decodeMember(x: unknown): Member | undefined {
  if (!isRecord(x) || typeof x['id'] !== 'string' || x['id'] === '' || typeof x['address'] !== 'string') return undefined;
  const zone = x['zone'];
  if (zone !== undefined && typeof zone !== 'string') return undefined;
  return zone === undefined ? { id: x['id'], address: x['address'] } : { id: x['id'], address: x['address'], zone };
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

/** Encodes a meta record as a batch op. */
export function metaPut(key: Uint8Array, value: unknown): BatchOp {
  // packPlain: the applied state is written with every apply batch; same bytes as pack(value).
  return { type: 'put', ns: 'meta', key, value: packPlain(value) };
}

/** Reads and validates one meta record; undefined if absent. */
export async function readMeta<T>(view: ReadView, location: string, name: keyof typeof MetaKey, decode: Decoder<T>): Promise<T | undefined> {
  const bytes = await view.get('meta', MetaKey[name]);
  return bytes === undefined ? undefined : decodeMeta(location, name, bytes, decode);
}

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
    await backend.write([metaPut(MetaKey.format, { version: STORAGE_FORMAT_VERSION }), metaPut(MetaKey.generation, 0)], {
      sync: true,
      label: 'format.init',
    });
    return;
  }
  const format = decodeMeta(where, 'format', bytes, (x) => (isRecord(x) && isIndex(x['version']) ? x['version'] : undefined));
  if (format !== STORAGE_FORMAT_VERSION) throw new StorageFormatError(where, format, STORAGE_FORMAT_VERSION);
}
