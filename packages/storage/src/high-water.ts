// The high-water mark: what this node has promised about its log, kept outside the database.
//
// A node acknowledges entries (to the leader, or to itself as leader) and votes only after they
// are durable. If LevelDB later loses the tail of its journal (a damaged record is skipped on
// open), the node would come back with less than it promised, and nothing in the database could
// tell: the batch that is lost is the one that would have said so. The mark lives in a file of its
// own (`HIGH_WATER` in the data directory, written and fdatasync'd after the synced log write, so
// before any message about it leaves), records the last log index, term and vote the node has made
// durable, and survives whatever happens to LevelDB's journal. See docs/storage.md.
//
// File layout: two slots of MARK_SLOT_BYTES at offsets 0 and MARK_SLOT_BYTES, written
// alternately; each slot is `crc32 (4 B) ++ length (2 B) ++ msgpack {seq, index, term, vote}`,
// the CRC over length and payload. Reading takes the valid slot with the higher seq, so a write
// torn by a crash leaves the other slot (one sector each, so a torn write touches only one).
import type { Backend } from './backend.js';
import { crc32 } from './checksum.js';
import { isIndex, isRecord, pack, unpack } from './codec.js';
import { StorageCorruptError, assert } from './errors.js';

/** Bytes of one slot of the mark file (one disk sector). */
export const MARK_SLOT_BYTES = 512;
/** Slot header: crc32 (4 B) and payload length (2 B). */
const SLOT_HEADER_BYTES = 6;

/** The durable promise: the log reaches `index`; the hard state has `term` and `vote`. */
export interface HighWaterMark {
  index: number;
  term: number;
  vote: string | null;
}

interface Slot extends HighWaterMark {
  seq: number;
}

/** Reads and writes the mark through a Backend (the LevelDB directory's file, or the memory disk). */
export class HighWater {
  private constructor(
    private readonly backend: Backend,
    private current: Slot | undefined,
  ) {}

  /** Reads the mark file. Undefined mark: no file yet (a new store, or one from before marks existed). */
  static async open(backend: Backend): Promise<HighWater> {
    const bytes = await backend.readMarkFile();
    // All zeros: created, but the first write never landed (a crash right after creating it).
    const none = bytes === undefined || bytes.every((b) => b === 0);
    return new HighWater(backend, none ? undefined : readSlots(backend.location, bytes));
  }

  /** The mark, or undefined when none was written yet. */
  get(): HighWaterMark | undefined {
    const c = this.current;
    return c && { index: c.index, term: c.term, vote: c.vote };
  }

  /** Writes `mark` durably (into the slot not holding the current one). No-op when it is unchanged. */
  async set(mark: HighWaterMark): Promise<void> {
    const c = this.current;
    if (c && c.index === mark.index && c.term === mark.term && c.vote === mark.vote) return;
    const next: Slot = { seq: (c?.seq ?? 0) + 1, ...mark };
    await this.backend.writeMarkFile((next.seq % 2) * MARK_SLOT_BYTES, encodeSlot(next));
    this.current = next;
  }
}

function encodeSlot(slot: Slot): Uint8Array {
  const payload = pack({ seq: slot.seq, index: slot.index, term: slot.term, vote: slot.vote });
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
  return { seq: raw['seq'], index: raw['index'], term: raw['term'], vote };
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
