// The frames of the snapshot channel (the transport's `snapshot` connection), msgpack maps with a
// `t` field:
//   sender → receiver: begin {index, term, msg, fresh?}, chunk {offset, data, crc}, end {total, sha256}
//   receiver → sender: resume {offset}, ack {offset}, nack {offset, reason}, done {}, fail {reason}
// The state machines (snapshot-sender.ts, snapshot-receiver.ts) take decoded frames and return
// frame objects; only the adapter (snapshots.ts) turns them into bytes.
import { Packr } from 'msgpackr';
import { MessageType, type Message } from '@quorumkv/raft';

export type SenderFrame =
  /** `fresh`: drop any staged copy of this snapshot and start over (the sender cannot continue it). */
  | { t: 'begin'; index: number; term: number; msg: Message; fresh?: boolean }
  | { t: 'chunk'; offset: number; data: Uint8Array; crc: number }
  | { t: 'end'; total: number; sha256: Uint8Array };

export type ReceiverFrame =
  | { t: 'resume'; offset: number }
  | { t: 'ack'; offset: number }
  | { t: 'nack'; offset: number; reason: string }
  | { t: 'done' }
  | { t: 'fail'; reason: string };

/** A decoded frame before validation: the machines check every field they read. */
export type RawFrame = Record<string, unknown>;

const packr = new Packr({ useRecords: false, mapsAsObjects: true });
const EMPTY = new Uint8Array(0);

export function encodeFrame(f: SenderFrame | ReceiverFrame): Buffer {
  return packr.pack(f.t === 'begin' ? { ...f, msg: wireMessage(f.msg) } : f);
}

/** Decodes one WebSocket message; null when it is not a msgpack map. */
export function decodeFrame(data: unknown): RawFrame | null {
  try {
    const buf = Array.isArray(data) ? Buffer.concat(data as Buffer[]) : Buffer.isBuffer(data) ? data : Buffer.from(data as ArrayBuffer);
    const v = packr.unpack(buf) as unknown;
    return typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as RawFrame) : null;
  } catch {
    return null;
  }
}

export const isIdx = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;

/** Serialises a Message for the begin frame (snapshot data travels separately). */
function wireMessage(m: Message): Record<string, unknown> {
  return { ...m, snapshot: m.snapshot ? { metadata: m.snapshot.metadata } : undefined };
}

/** The Snap message of a begin frame, checked: it must come from `from` and be meant for `to`. */
export function parseWireMessage(v: unknown, from: string, to: string): Message | null {
  if (typeof v !== 'object' || v === null) return null;
  const o = v as Record<string, unknown>;
  const snap = o.snapshot as { metadata?: { index?: unknown; term?: unknown; confState?: { voters?: unknown; learners?: unknown } } } | undefined;
  const md = snap?.metadata;
  const ids = (x: unknown) => Array.isArray(x) && x.every((i) => typeof i === 'string');
  if (o.type !== MessageType.Snap || !isIdx(o.term) || !md || !isIdx(md.index) || !isIdx(md.term) || !md.confState) return null;
  if (!ids(md.confState.voters) || !ids(md.confState.learners)) return null;
  if (o.from !== from || o.to !== to) return null;
  return {
    type: MessageType.Snap,
    from,
    to,
    term: o.term,
    logTerm: 0,
    index: 0,
    entries: [],
    commit: 0,
    reject: false,
    rejectHint: 0,
    snapshot: {
      metadata: { index: md.index, term: md.term, confState: { voters: md.confState.voters as string[], learners: md.confState.learners as string[] } },
      data: EMPTY,
    },
  };
}
