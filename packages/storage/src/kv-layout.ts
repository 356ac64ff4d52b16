// Key layout of the generation-prefixed namespaces `kv` and `sessions`, and their value codecs.
//   kv:        gen(4 BE) ++ userKey                          → pack([value, createRev, modRev, version])
//   sessions:  gen(4 BE) ++ 'h' ++ utf8(id)                  → pack([lastActiveMs, discardedBelow, seqs, inline])
//              gen(4 BE) ++ 'r' ++ len(1) ++ utf8(id) ++ seq(8 BE) → pack(result)
//   history:   gen(4 BE) ++ esc(userKey) ++ 00 00 ++ rev(8 BE) → the kv record written at rev, or
//              empty (a tombstone: the key was deleted at rev)
// esc() doubles every 00 byte as 00 FF, so 00 00 ends the key: history keys sort by user key (in
// byte order, as `kv` does), then by revision, and a prefix or [start, end) of user keys is one
// range of history keys. `kv` holds each key's latest record (the cheap path of current reads and
// of applies); `history` holds every version since the compacted revision (reads at a revision).
// `inline` is parallel to `seqs`: the packed result of that seq, or null when the result has its
// own 'r' record. Small results live in the header, which is written once per session per apply
// batch, so a typical write costs no session records of its own. Headers written before inline
// results existed have three fields and read as "every result in its own record".
import { concat, isIndex, plainBytes, prefixUpperBound, u32be, u64be, unpack, utf8, writeU64be } from './codec.js';
import { StorageCorruptError } from './errors.js';
import { sharedWriter } from './msgpack-writer.js';

/** A key with its value and revision metadata. */
export interface KeyValue {
  key: Uint8Array;
  value: Uint8Array;
  /** Raft index of the entry that created the key (since its last deletion). */
  createRevision: number;
  /** Raft index of the entry that last wrote the key. */
  modRevision: number;
  /** Writes since creation (1 after the creating put); a delete resets it. */
  version: number;
}

/** The stored part of a KeyValue (the key is the record's key). */
export type KvRecord = Omit<KeyValue, 'key'>;

/** Per-session bookkeeping. */
export interface SessionHeader {
  /** Replicated clock (ms) when the session last sent a command. */
  lastActiveMs: number;
  /** Results for seq below this were discarded: such a seq gets QKV_SESSION_EXPIRED. */
  discardedBelow: number;
  /** Seqs whose results are stored, ascending. */
  seqs: number[];
  /**
   * Parallel to `seqs` (as stored): the packed result kept in the header, or null when that seq's
   * result has an 'r' record of its own. Arrays, not a map: a batch copies the header of every
   * session it touches (kv-rules.ts), and two array slices cost a quarter of a Map copy.
   */
  inline: Array<Uint8Array | null>;
  /** How many entries of `inline` are not null (at most INLINE_RESULTS_MAX). */
  inlineCount: number;
}

/** Largest packed result kept inline in its session header. */
export const INLINE_RESULT_BYTES_MAX = 96;
/** Most results kept inline per session (bounds a header to about 7 KiB). */
export const INLINE_RESULTS_MAX = 64;

/** The 4-byte prefix of a generation. */
export function genPrefix(gen: number): Uint8Array {
  // Every kv key of a batch starts with it; the current generation's is made once.
  if (gen !== lastGen) {
    lastGen = gen;
    lastGenPrefix = u32be(gen);
  }
  return lastGenPrefix;
}
let lastGen = 0;
let lastGenPrefix = u32be(0);

/** The key range of a whole generation. */
export function genRange(gen: number): { gte: Uint8Array; lt: Uint8Array } {
  return { gte: genPrefix(gen), lt: genPrefix(gen + 1) };
}

/** Storage key of a user key. */
export function kvKey(gen: number, key: Uint8Array): Uint8Array {
  return concat(genPrefix(gen), key);
}

/** Range of user keys [start, end) in a generation; `end` undefined = to the end. */
export function kvRange(gen: number, start: Uint8Array, end: Uint8Array | undefined): { gte: Uint8Array; lt: Uint8Array } {
  return { gte: kvKey(gen, start), lt: end ? kvKey(gen, end) : genPrefix(gen + 1) };
}

/** Range of user keys with a prefix. */
export function kvPrefixRange(gen: number, prefix: Uint8Array): { gte: Uint8Array; lt: Uint8Array } {
  return kvRange(gen, prefix, prefixUpperBound(prefix));
}

/** Bytes after the escaped user key in a history key: the 00 00 terminator and the revision. */
const HISTORY_SUFFIX_BYTES = 10;

/** gen ++ esc(key): the history key prefix shared by every version of `key` and of the keys it prefixes. */
function historyKeyStart(gen: number, key: Uint8Array, extraBytes = 0): Uint8Array {
  let zeros = 0;
  for (let i = 0; i < key.length; i++) if (key[i] === 0) zeros++;
  const out = new Uint8Array(4 + key.length + zeros + extraBytes);
  out.set(genPrefix(gen), 0);
  if (zeros === 0) {
    out.set(key, 4); // the usual case: nothing to escape
    return out;
  }
  let at = 4;
  for (let i = 0; i < key.length; i++) {
    const byte = key[i] as number;
    out[at++] = byte;
    if (byte === 0) out[at++] = 0xff;
  }
  return out;
}

/** Storage key of the version of `key` written at `revision`. */
export function historyKey(gen: number, key: Uint8Array, revision: number): Uint8Array {
  // One allocation (hot: every applied write); the terminator's zeros are the buffer's own.
  const out = historyKeyStart(gen, key, HISTORY_SUFFIX_BYTES);
  writeU64be(out, out.length - 8, revision);
  return out;
}

/** The history keys of `key`'s versions at revisions [0, below). */
export function historyVersionsBelow(gen: number, key: Uint8Array, below: number): { gte: Uint8Array; lt: Uint8Array } {
  return { gte: historyKey(gen, key, 0), lt: historyKey(gen, key, below) };
}

/** The history keys of every version of the user keys in [start, end) (`end` undefined = to the end). */
export function historyRange(gen: number, start: Uint8Array, end: Uint8Array | undefined): { gte: Uint8Array; lt: Uint8Array } {
  return { gte: historyKeyStart(gen, start), lt: end ? historyKeyStart(gen, end) : genPrefix(gen + 1) };
}

/**
 * The user key and revision of a history key (generation prefix included).
 * @throws StorageCorruptError for a key no `historyKey` makes (too short, a broken escape, no
 * 00 00 terminator): a damaged key is refused, never parsed into another key or revision.
 */
export function parseHistoryKey(location: string, k: Uint8Array): { key: Uint8Array; revision: number } {
  const bad = (why: string) => new StorageCorruptError(location, `a history key is damaged (${why})`);
  const end = k.length - HISTORY_SUFFIX_BYTES;
  if (end < 4) throw bad(`${k.length} bytes`);
  if (k[end] !== 0 || k[end + 1] !== 0) throw bad('no 00 00 terminator');
  const out: number[] = [];
  for (let i = 4; i < end; i++) {
    out.push(k[i] as number);
    if (k[i] === 0) {
      if (k[i + 1] !== 0xff || i + 1 >= end) throw bad('a 00 byte without its FF escape');
      i++; // skip the escape's FF
    }
  }
  const revision = Buffer.from(k.buffer, k.byteOffset + end + 2, 8).readBigUInt64BE();
  if (revision > BigInt(Number.MAX_SAFE_INTEGER)) throw bad('revision out of range');
  return { key: Uint8Array.from(out), revision: Number(revision) };
}

/** A tombstone version: the key was deleted at its revision. */
export const HISTORY_TOMBSTONE = new Uint8Array(0);

const H = utf8('h');
const R = utf8('r');

/** Storage key of a session header. */
export function sessionHeaderKey(gen: number, id: string): Uint8Array {
  return concat(genPrefix(gen), H, utf8(id));
}

/** Range of all session headers of a generation. */
export function sessionHeaderRange(gen: number): { gte: Uint8Array; lt: Uint8Array } {
  return { gte: concat(genPrefix(gen), H), lt: concat(genPrefix(gen), utf8('i')) };
}

/** Session id of a header key. */
export function sessionIdOfHeaderKey(key: Uint8Array): string {
  return Buffer.from(key.subarray(5)).toString('utf8');
}

/** Storage key of one stored result. */
export function sessionResultKey(gen: number, id: string, seq: number): Uint8Array {
  const idBytes = utf8(id);
  return concat(genPrefix(gen), R, new Uint8Array([idBytes.length]), idBytes, u64be(seq));
}

/** Encodes a kv record. */
export function encodeKvRecord(r: KvRecord): Uint8Array {
  // Hand-written (hot: every applied put); the same bytes as pack([value, createRev, modRev, version]).
  const w = sharedWriter();
  w.begin(r.value.byteLength + 32);
  w.writeArrayHeader(4);
  w.writeBin(r.value);
  w.writeUint(r.createRevision);
  w.writeUint(r.modRevision);
  w.writeUint(r.version);
  return w.end();
}

/** Decodes a kv record or throws QKV_STORAGE_CORRUPT. */
export function decodeKvRecord(location: string, bytes: Uint8Array): KvRecord {
  const raw = safeUnpack(location, 'kv record', bytes);
  if (Array.isArray(raw) && raw.length === 4) {
    const [value, createRevision, modRevision, version] = raw as unknown[];
    if (value instanceof Uint8Array && isIndex(createRevision) && isIndex(modRevision) && isIndex(version)) {
      return { value: plainBytes(value), createRevision, modRevision, version };
    }
  }
  throw new StorageCorruptError(location, 'a kv record has an invalid shape');
}

/** Encodes a session header. */
export function encodeSessionHeader(h: SessionHeader): Uint8Array {
  // Hand-written (hot: once per session per apply batch); the same bytes as
  // pack([lastActiveMs, discardedBelow, seqs, inline]) (inline: the packed result or null, parallel to seqs).
  const w = sharedWriter();
  const n = h.seqs.length;
  w.begin(32 + n * (9 + 2) + h.inlineCount * INLINE_RESULT_BYTES_MAX);
  w.writeArrayHeader(4);
  w.writeUint(h.lastActiveMs);
  w.writeUint(h.discardedBelow);
  w.writeArrayHeader(n);
  for (let i = 0; i < n; i++) w.writeUint(h.seqs[i] as number);
  w.writeArrayHeader(n);
  for (let i = 0; i < n; i++) {
    const packed = h.inline[i];
    if (packed === null || packed === undefined) w.writeNil();
    else w.writeBin(packed);
  }
  return w.end();
}

/** Decodes a session header or throws QKV_STORAGE_CORRUPT. */
export function decodeSessionHeader(location: string, bytes: Uint8Array): SessionHeader {
  const raw = safeUnpack(location, 'session header', bytes);
  if (Array.isArray(raw) && (raw.length === 3 || raw.length === 4)) {
    const [lastActiveMs, discardedBelow, seqs, inlined] = raw as unknown[];
    if (isIndex(lastActiveMs) && isIndex(discardedBelow) && Array.isArray(seqs) && seqs.every(isIndex)) {
      const inline = new Array<Uint8Array | null>(seqs.length).fill(null);
      let inlineCount = 0;
      if (inlined !== undefined) {
        if (!Array.isArray(inlined) || inlined.length !== seqs.length) throw new StorageCorruptError(location, 'a session header has an invalid inline list');
        inlined.forEach((r, i) => {
          if (r === null) return;
          if (!(r instanceof Uint8Array)) throw new StorageCorruptError(location, 'a session header has an invalid inline result');
          inline[i] = plainBytes(r);
          inlineCount++;
        });
      }
      return { lastActiveMs, discardedBelow, seqs: seqs as number[], inline, inlineCount };
    }
  }
  throw new StorageCorruptError(location, 'a session header has an invalid shape');
}

/** Unpacks or throws QKV_STORAGE_CORRUPT naming `what`. */
export function safeUnpack(location: string, what: string, bytes: Uint8Array): unknown {
  try {
    return unpack(bytes);
  } catch (err) {
    throw new StorageCorruptError(location, `a ${what} is not decodable`, { cause: err });
  }
}
