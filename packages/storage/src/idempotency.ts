// The idempotency-key table: exactly-once for requests that carry no client session (HTTP writes
// with an `Idempotency-Key` header). A command tagged `idem: {key, hash}` is applied once; a later
// command with the same key and the same request hash gets the stored result back, one with a
// different hash is refused (QKV_IDEMPOTENCY_KEY_REUSED). Entries live in their own records
// (`sessions` namespace, prefix 'k'), bounded in count and bytes, and expire by the replicated
// clock (commands' `timeMs`), so every replica keeps and drops the same entries.
//
//   sessions:  gen(4 BE) ++ 'k' ++ utf8(key)  → pack([createdMs, hash, packedResult])
import { concat, isIndex, plainBytes, utf8 } from './codec.js';
import { StorageCorruptError } from './errors.js';
import { genPrefix, safeUnpack } from './kv-layout.js';
import { sharedWriter } from './msgpack-writer.js';

/** The tag of a command that carries an idempotency key. */
export interface IdemTag {
  /** The client's key: 1..IDEM_LIMITS.maxKeyChars printable ASCII characters. */
  key: string;
  /** A digest of the request (the server hashes method, path and body): same key + other hash = reuse. */
  hash: string;
}

/** One remembered request. */
export interface IdemEntry {
  /** The replicated clock when it was first applied; it expires TTL after. */
  createdMs: number;
  hash: string;
  /** The packed ApplyResult of its first application. */
  result: Uint8Array;
}

/** Named limits of idempotency tags (decoding). */
export const IDEM_LIMITS = {
  /** Longest key, in characters (printable ASCII). */
  maxKeyChars: 128,
  /** Longest request hash, in characters. */
  maxHashChars: 128,
} as const;

/** Bytes an entry is counted as besides its key, hash and result (bounds the table's memory). */
export const IDEM_ENTRY_OVERHEAD_BYTES = 64;

/** The bytes an entry is counted as against the table's byte limit. */
export function idemEntryBytes(key: string, e: IdemEntry): number {
  return key.length + e.hash.length + e.result.length + IDEM_ENTRY_OVERHEAD_BYTES;
}

const K = utf8('k');

/** Storage key of an idempotency entry. */
export function idemKey(gen: number, key: string): Uint8Array {
  return concat(genPrefix(gen), K, utf8(key));
}

/** Range of all idempotency entries of a generation. */
export function idemRange(gen: number): { gte: Uint8Array; lt: Uint8Array } {
  return { gte: concat(genPrefix(gen), K), lt: concat(genPrefix(gen), utf8('l')) };
}

/** The key of an entry's storage key. */
export function idemKeyOf(storageKey: Uint8Array): string {
  return Buffer.from(storageKey.subarray(5)).toString('utf8');
}

/** Encodes an entry (the same bytes as pack([createdMs, hash, result])). */
export function encodeIdemEntry(e: IdemEntry): Uint8Array {
  const w = sharedWriter();
  w.begin(32 + e.hash.length * 3 + e.result.length);
  w.writeArrayHeader(3);
  w.writeUint(e.createdMs);
  w.writeStr(e.hash);
  w.writeBin(e.result);
  return w.end();
}

/** Decodes an entry or throws QKV_STORAGE_CORRUPT. */
export function decodeIdemEntry(location: string, bytes: Uint8Array): IdemEntry {
  const raw = safeUnpack(location, 'idempotency entry', bytes);
  if (Array.isArray(raw) && raw.length === 3) {
    const [createdMs, hash, result] = raw as unknown[];
    if (isIndex(createdMs) && typeof hash === 'string' && result instanceof Uint8Array) return { createdMs, hash, result: plainBytes(result) };
  }
  throw new StorageCorruptError(location, 'an idempotency entry has an invalid shape');
}

/** Whether `key` is a valid idempotency key: 1..maxKeyChars printable ASCII (0x21..0x7e). */
export function isIdemKey(key: unknown): key is string {
  return typeof key === 'string' && key.length >= 1 && key.length <= IDEM_LIMITS.maxKeyChars && /^[\x21-\x7e]+$/.test(key);
}
