// The high-water mark: what this node has promised about its log, kept outside the database.
//
// A node acknowledges entries (to the leader, or to itself as leader) and votes only after they
// are durable. If LevelDB later loses the tail of its journal (a damaged record is skipped on
// open), the node would come back with less than it promised, and nothing in the database could
// tell: the batch that is lost is the one that would have said so. The mark lives in a file of its
// own (`HIGH_WATER` in the data directory) and survives whatever happens to LevelDB's journal.
// The log store writes it concurrently with each synced append (log-store.ts); docs/storage.md
// argues what each record proves.
//
// File layout: two slots of MARK_SLOT_BYTES at offsets 0 and MARK_SLOT_BYTES, written
// alternately; each slot is `crc32 (4 B) ++ length (2 B) ++ msgpack {seq, index, term, vote,
// pending}`, the CRC over length and payload. Reading takes the valid slot with the higher seq, so
// a write torn by a crash leaves the other slot (one sector each, so a torn write touches only
// one). At most one write is in flight at a time, so the other slot always holds the last record
// that landed. A slot without `pending` (written before it existed) reads as `pending = index`.
import type { Backend } from './backend.js';
import { crc32 } from './checksum.js';
import { isIndex, isRecord, pack, unpack } from './codec.js';
import { StorageCorruptError, assert } from './errors.js';

/** Bytes of one slot of the mark file (one disk sector). */
export const MARK_SLOT_BYTES = 512;
/** Slot header: crc32 (4 B) and payload length (2 B). */
const SLOT_HEADER_BYTES = 6;

/** The promise: the log reaches `index`; the hard state has `term` and `vote`. */
export interface HighWaterMark {
  index: number;
  term: number;
  vote: string | null;
}

/**
 * One record of the mark file. `index` (durable through) is proven: the log was durable up to it
 * before this record was written, so a log ending before it lost acknowledged entries. `pending`
 * is the last index of the append written together with this record: it may be missing after a
 * crash (the append then never completed and nothing of it was acknowledged). `term` and `vote`
 * are the hard state of that append: a vote is sent only once both writes landed, so taking the
 * higher of these and LevelDB's never casts a vote twice in one term.
 */
export interface MarkRecord extends HighWaterMark {
  pending: number;
}

interface Slot extends MarkRecord {
  seq: number;
}

/** Whether two records say the same thing (a write of `b` over `a` would change nothing). */
export function sameRecord(a: MarkRecord, b: MarkRecord): boolean {
  return a.index === b.index && a.pending === b.pending && a.term === b.term && a.vote === b.vote;
}

/** Reads and writes the mark through a Backend (the LevelDB directory's file, or the memory disk). */
export class HighWater {
  /** The last write issued (in flight or done); the next one starts after it (one write at a time). */
  private lastWrite: Promise<void> = Promise.resolve();

  private constructor(
    private readonly backend: Backend,
    /** The record of the last write issued (landed or in flight): slot and seq of the next one follow it. */
    private issued: Slot | undefined,
  ) {}

  /** Reads the mark file. Undefined record: no file yet (a new store, or one from before marks existed). */
  static async open(backend: Backend): Promise<HighWater> {
    const bytes = await backend.readMarkFile();
    // All zeros: created, but the first write never landed (a crash right after creating it).
    const none = bytes === undefined || bytes.every((b) => b === 0);
    return new HighWater(backend, none ? undefined : readSlots(backend.location, bytes));
  }

  /** The last record written or being written (at open: the one read), or undefined when none. */
  last(): MarkRecord | undefined {
    const c = this.issued;
    return c && { index: c.index, pending: c.pending, term: c.term, vote: c.vote };
  }

  /**
   * Writes `record` durably into the slot not holding the previous one. Starts after the write in
   * flight, if any (two in flight could tear both slots). No-op when it equals the last record.
   */
  write(record: MarkRecord): Promise<void> {
    const c = this.issued;
    if (c && sameRecord(c, record)) return this.lastWrite;
    assert(record.pending >= record.index, 'a mark record never has pending below durable-through');
    const next: Slot = { seq: (c?.seq ?? 0) + 1, ...record };
    this.issued = next;
    const write = () => this.backend.writeMarkFile((next.seq % 2) * MARK_SLOT_BYTES, encodeSlot(next));
    // After the previous write whether it failed or not (a failure poisoned the backend: this one throws).
    this.lastWrite = this.lastWrite.then(write, write);
    return this.lastWrite;
  }
}

function encodeSlot(slot: Slot): Uint8Array {
  const payload = pack({ seq: slot.seq, index: slot.index, term: slot.term, vote: slot.vote, pending: slot.pending });
  // Node ids are short (config validates them); a vote that does not fit is a programmer error.
  assert(payload.length <= MARK_SLOT_BYTES - SLOT_HEADER_BYTES, `high-water mark of ${payload.length} bytes does not fit a slot`);
  const out = new Uint8Array(MARK_SLOT_BYTES);
  out[4] = payload.length >>> 8;
  out[5] = payload.length & 0xff;
  out.set(payload, SLOT_HEADER_BYTES);
  const crc = crc32(out.subarray(4, SLOT_HEADER_BYTES + payload.length));
  out[0] = crc >>> 24;
  out[1] = (crc >>> 16) & 0xff;
  out[2] = (crc >>> 8) & 0xff;
  out[3] = crc & 0xff;
  return out;
}

/** The slot at `offset` if it holds a valid record; undefined if it is empty, torn or damaged. */
function decodeSlot(bytes: Uint8Array, offset: number): Slot | undefined {
  if (bytes.length < offset + SLOT_HEADER_BYTES) return undefined;
  const length = (bytes[offset + 4]! << 8) | bytes[offset + 5]!;
  const end = offset + SLOT_HEADER_BYTES + length;
  if (length === 0 || end > bytes.length || length > MARK_SLOT_BYTES - SLOT_HEADER_BYTES) return undefined;
  const stored = ((bytes[offset]! << 24) | (bytes[offset + 1]! << 16) | (bytes[offset + 2]! << 8) | bytes[offset + 3]!) >>> 0;
  if (crc32(bytes.subarray(offset + 4, end)) !== stored) return undefined;
  let raw: unknown;
  try {
    raw = unpack(bytes.subarray(offset + SLOT_HEADER_BYTES, end));
  } catch {
    return undefined;
  }
  if (!isRecord(raw) || !isIndex(raw['seq']) || !isIndex(raw['index']) || !isIndex(raw['term'])) return undefined;
  const vote = raw['vote'];
  if (vote !== null && (typeof vote !== 'string' || vote === '')) return undefined;
  // Written before `pending` existed: the mark was written after its append landed (pending = index).
  const pending = raw['pending'] === undefined ? raw['index'] : raw['pending'];
  if (!isIndex(pending) || pending < raw['index']) return undefined;
  return { seq: raw['seq'], index: raw['index'], term: raw['term'], vote, pending };
}

function readSlots(location: string, bytes: Uint8Array): Slot {
  const a = decodeSlot(bytes, 0);
  const b = decodeSlot(bytes, MARK_SLOT_BYTES);
  const best = a && b ? (a.seq > b.seq ? a : b) : (a ?? b);
  if (!best) {
    throw new StorageCorruptError(
      location,
      'the high-water-mark file (HIGH_WATER) holds no valid record in either slot, so what this node promised its peers is unknown',
    );
  }
  return best;
}
