// Records of the `log` namespace. A record ("segment") holds a contiguous run of entries written
// by one append: key = u64be(index of the run's first entry), value = msgpack array of
// `[term, type, data]` triples. Records of the previous format hold one entry each: key =
// u64be(index), value = `[term, type, data]` (first element a number, where a segment's first
// element is an array); they are read as one-entry segments and never written any more.
//
// The segment rule: reading records in key order, a record truncates whatever came before it at
// its first index. Appends keep it true by deleting every record whose key is >= the first new
// index in the same batch, so a record's key is higher than the key of every record it overlaps,
// and it was written after them.
import { EntryType } from '@quorumkv/raft';
import { seal, unseal } from './checksum.js';
import { isIndex, plainBytes, readU64be, u64be, unpack } from './codec.js';
import { StorageCorruptError } from './errors.js';
import { sharedWriter } from './msgpack-writer.js';
import type { LogEntry } from './types.js';

/** Most entries one segment record holds; a longer append is written as several segments. */
export const SEGMENT_MAX_ENTRIES = 4096;
/** Most bytes (entry data plus a per-entry allowance) one segment holds; a lone bigger entry gets its own. */
export const SEGMENT_MAX_BYTES = 1 << 20;
/** What an entry costs in a segment besides its data (array and bin headers, term, type), rounded up. */
const SEGMENT_ENTRY_OVERHEAD_BYTES = 16;

/** How appends are cut into segment records. */
export interface SegmentLimits {
  maxEntries: number;
  maxBytes: number;
}

/** The limits used outside tests. */
export const DEFAULT_SEGMENT_LIMITS: SegmentLimits = { maxEntries: SEGMENT_MAX_ENTRIES, maxBytes: SEGMENT_MAX_BYTES };

/** The index range a stored segment still holds (after the segment rule cut it short). */
export interface SegmentBounds {
  first: number;
  last: number;
}

/** A decoded record: its entries, ascending and contiguous from `first`. */
export interface DecodedSegment {
  first: number;
  entries: LogEntry[];
}

/** Encodes a run of contiguous entries as one segment value (the key is the first index). */
export function encodeSegment(entries: readonly LogEntry[]): Uint8Array {
  // Hand-written (hot: every append); the same bytes as pack(entries.map((e) => [e.term, e.type, e.data])).
  const w = sharedWriter();
  let dataBytes = 0;
  for (let i = 0; i < entries.length; i++) dataBytes += (entries[i] as LogEntry).data.byteLength;
  w.begin(5 + dataBytes + entries.length * 24);
  w.writeArrayHeader(entries.length);
  for (let i = 0; i < entries.length; i++) {
    const e = entries[i] as LogEntry;
    w.writeArrayHeader(3);
    w.writeNumber(e.term);
    w.writeNumber(e.type);
    w.writeBin(e.data);
  }
  return w.end();
}

/** The stored value of a run of entries: its segment, sealed with its checksum (checksum.ts). */
export function sealSegment(entries: readonly LogEntry[]): Uint8Array {
  const first = entries[0];
  if (first === undefined) throw new Error('storage invariant violated: an empty segment');
  return seal(u64be(first.index), encodeSegment(entries));
}

/** The segment bytes of a stored log record, after checking its checksum (QKV_STORAGE_CORRUPT names the index). */
export function unsealSegment(location: string, key: Uint8Array, value: Uint8Array): Uint8Array {
  return unseal(location, `the log record at index ${segmentKeyIndex(location, key)}`, key, value);
}

/** Cuts contiguous entries into runs within `limits` (each run holds at least one entry). */
export function splitIntoRuns(entries: readonly LogEntry[], limits: SegmentLimits): LogEntry[][] {
  const runs: LogEntry[][] = [];
  let run: LogEntry[] = [];
  let runBytes = 0;
  for (const e of entries) {
    const bytes = e.data.length + SEGMENT_ENTRY_OVERHEAD_BYTES;
    if (run.length > 0 && (run.length >= limits.maxEntries || runBytes + bytes > limits.maxBytes)) {
      runs.push(run);
      run = [];
      runBytes = 0;
    }
    run.push(e);
    runBytes += bytes;
  }
  if (run.length > 0) runs.push(run);
  return runs;
}

/** The first index a log key names; throws QKV_STORAGE_CORRUPT on a key that is not one. */
export function segmentKeyIndex(location: string, key: Uint8Array): number {
  if (key.length !== 8) throw new StorageCorruptError(location, `a log key of ${key.length} bytes is not an 8-byte index`);
  const index = readU64be(key);
  if (index === undefined || index === 0) {
    throw new StorageCorruptError(location, `log key 0x${Buffer.from(key).toString('hex')} is not an index from 1 to 2^53 - 1`);
  }
  return index;
}

/** Length of the msgpack array starting at `at`, and where its first element starts; undefined if none. */
function arrayHeader(bytes: Uint8Array, at: number): { length: number; body: number } | undefined {
  const b = bytes[at];
  if (b === undefined) return undefined;
  if (b >= 0x90 && b <= 0x9f) return { length: b & 0x0f, body: at + 1 };
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (b === 0xdc && bytes.length >= at + 3) return { length: dv.getUint16(at + 1), body: at + 3 };
  if (b === 0xdd && bytes.length >= at + 5) return { length: dv.getUint32(at + 1), body: at + 5 };
  return undefined;
}

/**
 * How many entries a record holds, from its first bytes only (open() learns the segment bounds
 * without decoding entries; load() decodes and checks everything). Undefined: not a record.
 */
export function peekEntryCount(value: Uint8Array): number | undefined {
  const outer = arrayHeader(value, 0);
  if (!outer || outer.length === 0) return undefined;
  if (arrayHeader(value, outer.body) !== undefined) return outer.length; // a segment: an array of triples
  return outer.length === 3 ? 1 : undefined; // a one-entry record of the previous format
}

const ENTRY_TYPES: readonly number[] = Object.values(EntryType);
function isEntryType(x: unknown): x is EntryType {
  return typeof x === 'number' && ENTRY_TYPES.includes(x);
}

function decodeTriple(location: string, index: number, raw: unknown): LogEntry {
  if (!Array.isArray(raw) || raw.length !== 3) throw new StorageCorruptError(location, `log entry ${index} has an invalid shape`);
  const [term, type, data] = raw as unknown[];
  if (!isIndex(term) || !isEntryType(type) || !(data instanceof Uint8Array)) {
    throw new StorageCorruptError(location, `log entry ${index} has invalid fields`);
  }
  return { index, term, type, data: plainBytes(data) };
}

/** Decodes a log record (segment or previous-format entry). Throws QKV_STORAGE_CORRUPT on damage. */
export function decodeSegment(location: string, key: Uint8Array, value: Uint8Array): DecodedSegment {
  const first = segmentKeyIndex(location, key);
  let raw: unknown;
  try {
    raw = unpack(value);
  } catch (err) {
    throw new StorageCorruptError(location, `the log record at index ${first} is not decodable`, { cause: err });
  }
  if (!Array.isArray(raw) || raw.length === 0) {
    throw new StorageCorruptError(location, `the log record at index ${first} is neither a segment nor an entry`);
  }
  const triples: unknown[] = Array.isArray(raw[0]) ? raw : [raw];
  if (first + triples.length - 1 > Number.MAX_SAFE_INTEGER) {
    throw new StorageCorruptError(location, `the log segment at index ${first} reaches past 2^53 - 1`);
  }
  return { first, entries: triples.map((t, i) => decodeTriple(location, first + i, t)) };
}

/**
 * Adds a record read in key order to `log.entries` (the entries after `log.start`, contiguous):
 * the record truncates what came before it at its first index, entries at or below the start are
 * skipped. Throws QKV_STORAGE_CORRUPT on a gap or a term going backwards.
 */
export function mergeSegment(
  location: string,
  log: { startIndex: number; startTerm: number; entries: LogEntry[] },
  segment: DecodedSegment,
): void {
  const next = log.startIndex + 1 + log.entries.length;
  if (segment.first > next) {
    throw new StorageCorruptError(location, `log has a gap: expected index ${next}, found a segment starting at ${segment.first}`);
  }
  log.entries.length = Math.max(0, segment.first - log.startIndex - 1); // the segment rule
  for (const e of segment.entries) {
    if (e.index <= log.startIndex) continue; // covered by the snapshot (a segment straddling the log start)
    const prevTerm = log.entries.at(-1)?.term ?? log.startTerm;
    if (e.term < prevTerm) throw new StorageCorruptError(location, `log term goes backwards at index ${e.index}`);
    log.entries.push(e);
  }
}
