// The frame codec: a frame is one WebSocket binary message holding one msgpack value,
//
//   [FRAME_KIND_MESSAGES, [message, message, …]]
//
// Each message is a fixed 13-element tuple (positional: no keys on the wire, and a strict
// decoder can check each slot's type):
//
//   [type, to, from, term, logTerm, index, commit, reject, rejectHint,
//    entries, rejectHintTerm | nil, context | nil, snapshot | nil]
//
// `entries` is flat: [term, index, type, data, term, index, type, data, …] (no array per entry).
// `snapshot` is [index, term, voters, learners, data]. Every byte string is msgpack `bin`.
// Numbers are non-negative safe integers. docs/transport.md has the full description.
import { Packr, Unpackr } from 'msgpackr';
import { BadMessageError, checkMessageShape, type MessageType } from '@quorumkv/raft';
import type { Entry, Message, Snapshot } from '@quorumkv/raft';
import { FrameError } from './errors.js';

/** The first element of every frame on the `raft` channel. */
export const FRAME_KIND_MESSAGES = 1;

/** Message types that travel between nodes (the core's local types 0–5 never do). */
export type WireMessageType = Exclude<MessageType, 0 | 1 | 2 | 3 | 4 | 5>;

const WIRE_TYPES = [10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22] as const satisfies readonly WireMessageType[];
// Compile-time check that WIRE_TYPES lists every wire type of the core: this line stops compiling
// if the core adds a wire message type that is not listed above.
const wireTypesComplete: Exclude<WireMessageType, (typeof WIRE_TYPES)[number]> extends never ? true : false = true;
void wireTypesComplete;
const wireTypeSet: ReadonlySet<number> = new Set(WIRE_TYPES);

/** True when `type` is a message type that may be sent to a peer. */
export function isWireMessageType(type: number): type is WireMessageType {
  return wireTypeSet.has(type);
}

/** Longest node id accepted on the wire and in configuration, in UTF-16 code units. */
export const MAX_NODE_ID_LENGTH = 128;

const MESSAGE_TUPLE_LENGTH = 13;
const ENTRY_FIELDS = 4;
const SNAPSHOT_TUPLE_LENGTH = 5;

// Upper bounds of msgpack encodings, for `estimateMessageBytes`.
const NUMBER_MAX_BYTES = 9; // float64 or uint64
const HEADER_MAX_BYTES = 5; // array32 / str32 / bin32 header
/** Upper bound of a frame's bytes besides its messages: array header, kind, messages header. */
export const FRAME_OVERHEAD_BYTES = 1 + 1 + HEADER_MAX_BYTES;
// type, 6 numbers, reject, rejectHintTerm, tuple/entries/context headers, snapshot nil.
const MESSAGE_FIXED_BYTES = 1 + 1 + 6 * NUMBER_MAX_BYTES + 1 + NUMBER_MAX_BYTES + 3 * HEADER_MAX_BYTES + 1;
const ENTRY_FIXED_BYTES = 2 * NUMBER_MAX_BYTES + 1 + HEADER_MAX_BYTES;

/** Upper bound of the msgpack bytes of a string (UTF-8 is at most 3 bytes per UTF-16 unit). */
function stringMaxBytes(s: string): number {
  return HEADER_MAX_BYTES + 3 * s.length;
}

/**
 * An upper bound of `msg`'s encoded size, cheap to compute (no encoding, no UTF-8 pass). Queue
 * limits and frame splitting use it, so a frame built from estimates never exceeds its limit.
 */
export function estimateMessageBytes(msg: Message): number {
  let bytes = MESSAGE_FIXED_BYTES + stringMaxBytes(msg.to) + stringMaxBytes(msg.from);
  for (const e of msg.entries) bytes += ENTRY_FIXED_BYTES + e.data.byteLength;
  if (msg.context !== undefined) bytes += msg.context.byteLength;
  if (msg.snapshot !== undefined) bytes += snapshotMaxBytes(msg.snapshot);
  return bytes;
}

/**
 * The smallest `maxFrameBytes` that carries any append the core builds under `maxBytesPerAppend`
 * (the core counts an entry as data + 16 bytes; the encoding needs at most data + 24). The core
 * sends an entry larger than `maxBytesPerAppend` alone, so the server must also cap one entry's
 * size (a proposal) below this bound. A server checks `limits.maxFrameBytes` against it at start-up.
 */
export function frameBytesNeededForAppend(maxBytesPerAppend: number): number {
  const idsMaxBytes = 2 * (HEADER_MAX_BYTES + 3 * MAX_NODE_ID_LENGTH);
  return FRAME_OVERHEAD_BYTES + MESSAGE_FIXED_BYTES + idsMaxBytes + Math.ceil((maxBytesPerAppend * ENTRY_FIXED_BYTES) / 16);
}

function snapshotMaxBytes(s: Snapshot): number {
  let bytes = 1 + 2 * NUMBER_MAX_BYTES + 3 * HEADER_MAX_BYTES + s.data.byteLength;
  for (const id of s.metadata.confState.voters) bytes += stringMaxBytes(id);
  for (const id of s.metadata.confState.learners) bytes += stringMaxBytes(id);
  return bytes;
}

// moreTypes: false makes every Uint8Array a plain msgpack `bin` (not a typed-array extension);
// useRecords: false keeps frames self-contained (no structure state shared across frames).
const packr = new Packr({ useRecords: false, moreTypes: false, bundleStrings: false, structuredClone: false });
const unpackr = new Unpackr({ useRecords: false, mapsAsObjects: false, structuredClone: false });

/**
 * Encodes messages into one frame. The caller guarantees the messages are wire messages (the
 * transport checks in `send`). Entry payloads are copied once, into the frame.
 */
export function encodeFrame(messages: readonly Message[]): Uint8Array {
  const tuples = new Array<unknown>(messages.length);
  for (let i = 0; i < messages.length; i++) tuples[i] = messageTuple(messages[i] as Message);
  return packr.pack([FRAME_KIND_MESSAGES, tuples]);
}

function messageTuple(m: Message): unknown[] {
  const entries = new Array<unknown>(m.entries.length * ENTRY_FIELDS);
  let j = 0;
  for (const e of m.entries) {
    entries[j++] = e.term;
    entries[j++] = e.index;
    entries[j++] = e.type;
    entries[j++] = e.data;
  }
  const s = m.snapshot;
  const snapshot =
    s === undefined
      ? null
      : [s.metadata.index, s.metadata.term, s.metadata.confState.voters, s.metadata.confState.learners, s.data];
  return [
    m.type, m.to, m.from, m.term, m.logTerm, m.index, m.commit, m.reject, m.rejectHint,
    entries, m.rejectHintTerm ?? null, m.context ?? null, snapshot,
  ];
}

/**
 * Decodes and strictly validates one frame. Byte strings in the result (entry data, context,
 * snapshot data) are zero-copy `Uint8Array` views into `frame`: a consumer that keeps one long
 * after handling the message (an in-memory log) should copy it, or it keeps the frame alive.
 * @throws FrameError for anything that is not exactly a valid frame; never any other error.
 */
export function decodeFrame(frame: Uint8Array): Message[] {
  let value: unknown;
  try {
    value = unpackr.unpack(frame);
  } catch (cause) {
    throw new FrameError(`frame is not valid msgpack: ${(cause as Error).message?.slice(0, 80)}`, { cause });
  }
  if (!Array.isArray(value) || value.length !== 2) throw new FrameError('frame must be a 2-element array');
  if (value[0] !== FRAME_KIND_MESSAGES) throw new FrameError(`unknown frame kind ${String(value[0])}`);
  const tuples: unknown = value[1];
  if (!Array.isArray(tuples)) throw new FrameError('frame messages must be an array');
  const messages = new Array<Message>(tuples.length);
  for (let i = 0; i < tuples.length; i++) messages[i] = decodeMessage(tuples[i], i);
  return messages;
}

function decodeMessage(t: unknown, i: number): Message {
  if (!Array.isArray(t) || t.length !== MESSAGE_TUPLE_LENGTH) {
    throw new FrameError(`message ${i} must be a ${MESSAGE_TUPLE_LENGTH}-element array`);
  }
  const type = t[0] as unknown;
  if (typeof type !== 'number' || !isWireMessageType(type)) throw new FrameError(`message ${i}: bad type ${String(type)}`);
  const msg: Message = {
    type,
    to: nodeId(t[1], i, 'to'),
    from: nodeId(t[2], i, 'from'),
    term: uint(t[3], i, 'term'),
    logTerm: uint(t[4], i, 'logTerm'),
    index: uint(t[5], i, 'index'),
    commit: uint(t[6], i, 'commit'),
    reject: bool(t[7], i, 'reject'),
    rejectHint: uint(t[8], i, 'rejectHint'),
    entries: decodeEntries(t[9], i),
  };
  if (t[10] !== null) msg.rejectHintTerm = uint(t[10], i, 'rejectHintTerm');
  if (t[11] !== null) msg.context = bytes(t[11], i, 'context');
  if (t[12] !== null) msg.snapshot = decodeSnapshot(t[12], i);
  return msg;
}

function decodeEntries(v: unknown, i: number): Entry[] {
  if (!Array.isArray(v) || v.length % ENTRY_FIELDS !== 0) {
    throw new FrameError(`message ${i}: entries must be a flat array of ${ENTRY_FIELDS}-field groups`);
  }
  const entries = new Array<Entry>(v.length / ENTRY_FIELDS);
  for (let k = 0, j = 0; j < v.length; k++, j += ENTRY_FIELDS) {
    const type: unknown = v[j + 2];
    if (type !== 0 && type !== 1) throw new FrameError(`message ${i}: entry ${k} has bad type ${String(type)}`);
    entries[k] = {
      term: uint(v[j], i, 'entry term'),
      index: uint(v[j + 1], i, 'entry index'),
      type,
      data: bytes(v[j + 3], i, 'entry data'),
    };
  }
  return entries;
}

function decodeSnapshot(v: unknown, i: number): Snapshot {
  if (!Array.isArray(v) || v.length !== SNAPSHOT_TUPLE_LENGTH) {
    throw new FrameError(`message ${i}: snapshot must be a ${SNAPSHOT_TUPLE_LENGTH}-element array`);
  }
  return {
    metadata: {
      index: uint(v[0], i, 'snapshot index'),
      term: uint(v[1], i, 'snapshot term'),
      confState: { voters: nodeIds(v[2], i, 'voters'), learners: nodeIds(v[3], i, 'learners') },
    },
    data: bytes(v[4], i, 'snapshot data'),
  };
}

function uint(v: unknown, i: number, field: string): number {
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) {
    throw new FrameError(`message ${i}: ${field} must be a non-negative safe integer`);
  }
  return v;
}

function bool(v: unknown, i: number, field: string): boolean {
  if (typeof v !== 'boolean') throw new FrameError(`message ${i}: ${field} must be a boolean`);
  return v;
}

/** msgpackr decodes `bin` as a Buffer view; hand out a plain Uint8Array view of the same bytes. */
function bytes(v: unknown, i: number, field: string): Uint8Array {
  if (!(v instanceof Uint8Array)) throw new FrameError(`message ${i}: ${field} must be binary`);
  return new Uint8Array(v.buffer, v.byteOffset, v.byteLength);
}

function nodeId(v: unknown, i: number, field: string): string {
  if (!isValidNodeId(v)) throw new FrameError(`message ${i}: ${field} must be a node id`);
  return v;
}

function nodeIds(v: unknown, i: number, field: string): string[] {
  if (!Array.isArray(v)) throw new FrameError(`message ${i}: ${field} must be an array of node ids`);
  for (const id of v) nodeId(id, i, field);
  return v as string[];
}

/** Most members a snapshot's configuration may list (voters and learners together). */
export const MAX_SNAPSHOT_MEMBERS = 1024;
/**
 * Longest `context` accepted: the core puts a read's context (the server uses 8 bytes), a
 * heartbeat round number, the campaign kind (1 byte) or a transfer target's node id there.
 */
export const MAX_CONTEXT_BYTES = 3 * MAX_NODE_ID_LENGTH + 16;
/**
 * The core counts every entry as at least 16 bytes against `maxBytesPerAppend` (entrySize), and a
 * frame must hold any append (`frameBytesNeededForAppend` > maxBytesPerAppend), so no correct
 * append carries more than maxFrameBytes / 16 + 1 entries.
 */
const CORE_MIN_ENTRY_BYTES = 16;

/** The bounds `checkMessage` enforces, derived from the receiver's transport limits. */
export interface MessageBounds {
  maxEntriesPerMessage: number;
}

/** The message bounds that follow from `maxFrameBytes` (see CORE_MIN_ENTRY_BYTES). */
export function messageBounds(maxFrameBytes: number): MessageBounds {
  return { maxEntriesPerMessage: Math.floor(maxFrameBytes / CORE_MIN_ENTRY_BYTES) + 1 };
}

/**
 * Checks what no correct peer violates, beyond the shapes `decodeFrame` checks: the core's rules
 * for one message on its own (`checkMessageShape`: entries only on appends, contiguous after the
 * message's index, terms never decreasing nor above the message's; a snapshot only on a snapshot
 * message, of a term not above it), and counts and sizes within bounds. The core checks the
 * facts that need its state (committed entries, the leader of the term) itself.
 * @throws FrameError naming the message and the rule.
 */
export function checkMessage(m: Message, i: number, bounds: MessageBounds): void {
  const bad = (why: string): never => {
    throw new FrameError(`message ${i}: ${why}`);
  };
  if (m.entries.length > bounds.maxEntriesPerMessage) bad(`${m.entries.length} entries (at most ${bounds.maxEntriesPerMessage})`);
  if (m.context !== undefined && m.context.byteLength > MAX_CONTEXT_BYTES) bad(`context of ${m.context.byteLength} bytes (at most ${MAX_CONTEXT_BYTES})`);
  const s = m.snapshot;
  if (s !== undefined) {
    const members = s.metadata.confState.voters.length + s.metadata.confState.learners.length;
    if (members > MAX_SNAPSHOT_MEMBERS) bad(`snapshot lists ${members} members (at most ${MAX_SNAPSHOT_MEMBERS})`);
  }
  try {
    checkMessageShape(m);
  } catch (err) {
    if (err instanceof BadMessageError) bad(err.reason);
    throw err;
  }
}

/** A node id is a non-empty string of at most MAX_NODE_ID_LENGTH units with no control characters. */
export function isValidNodeId(v: unknown): v is string {
  // eslint-disable-next-line no-control-regex
  return typeof v === 'string' && v.length > 0 && v.length <= MAX_NODE_ID_LENGTH && !/[\u0000-\u001f\u007f]/.test(v);
}
