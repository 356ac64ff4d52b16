// Commands of the key-value state machine: their types and their msgpack encoding. Decoding is
// strict because command bytes come from the log, i.e. ultimately from clients.
import { isIndex, isRecord, latin1, pack, plainBytes, unpack } from './codec.js';

/** UTF-8 length of a string without encoding it (checked for every applied command's session id). */
function utf8Length(s: string): number {
  return Buffer.byteLength(s, 'utf8');
}
import { MsgpackWriter, hasExactKeys, template } from './msgpack-writer.js';
import { type TxnFields, TxnShapeError, decodeTxnFields } from './txn.js';
import { type IdemTag, IDEM_LIMITS, isIdemKey } from './idempotency.js';

/** Exactly-once bookkeeping carried by a command (Raft thesis §6.3). */
export interface SessionTag {
  /** Client session id: 1..MAX_SESSION_ID_BYTES bytes of UTF-8. */
  id: string;
  /** Sequence number of this request in the session; clients number from 1 (0 is accepted). */
  seq: number;
  /**
   * Every seq below this has had its response delivered; results below it may be forgotten.
   * A session the state machine does not know is taken as new only while ackedBelow <= 1.
   */
  ackedBelow: number;
}

/** The condition of a compare-and-swap; exactly one form. */
export type CasCondition =
  /** The key exists with this modRevision (0 means: the key is absent). */
  | { modRevision: number }
  /** The key exists with exactly this value. */
  | { value: Uint8Array }
  /** The key does not exist. */
  | { absent: true };

/** What a compare-and-swap does when its condition holds. */
export type CasAction = { op: 'put'; value: Uint8Array } | { op: 'del' };

/** Fields every command may carry. */
export interface CommandCommon {
  session?: SessionTag;
  /** The proposing leader's wall clock (ms since epoch); drives deterministic session expiry. */
  timeMs?: number;
  /** An idempotency key (HTTP `Idempotency-Key`): applied once per key (idempotency.ts). */
  idem?: IdemTag;
}

/** A state-machine command on one key. */
export type KeyCommand =
  | ({ op: 'put'; key: Uint8Array; value: Uint8Array } & CommandCommon)
  | ({ op: 'del'; key: Uint8Array } & CommandCommon)
  | ({ op: 'cas'; key: Uint8Array; cond: CasCondition; then: CasAction } & CommandCommon);

/**
 * Compacts history: versions no read at `revision` or later can see are dropped, and reads below
 * it fail QKV_COMPACTED. Through the log, so every replica compacts at the same revision.
 */
export type CompactCommand = { op: 'compact'; revision: number } & CommandCommon;

/**
 * A transaction (txn.ts): compares, then the success or the failure branch, all at one revision.
 * A range delete is a transaction with no compares and one deleteRange op.
 */
export type TxnCommand = { op: 'txn' } & TxnFields & CommandCommon;

/** A state-machine command. */
export type Command = KeyCommand | CompactCommand | TxnCommand;

/** Named limits of command decoding. */
export const COMMAND_LIMITS = {
  /** Max key length in bytes. */
  maxKeyBytes: 4096,
  /** Max session id length in UTF-8 bytes. */
  maxSessionIdBytes: 256,
} as const;

/** Command encoding version; decoding refuses any other. */
const COMMAND_VERSION = 1;

/**
 * Commands this process encoded, by their bytes, as decodeCommand returns them. The leader applies
 * the very entries it proposed; it takes the decoded form from here instead of decoding its own
 * bytes a second time. Weak: an entry that is never applied here (leadership lost) costs nothing.
 */
const encodedHere = new WeakMap<Uint8Array, Command>();

/** Encodes a command for a log entry. Throws CommandDecodeError if the command is invalid. */
export function encodeCommand(cmd: Command): Uint8Array {
  return encodeCommandAt(cmd, undefined);
}

/**
 * encodeCommand({ ...cmd, timeMs }) without the copy (`timeMs` undefined: encodeCommand(cmd)).
 * Usual put/del commands are written directly (same bytes, see encodeDirect); the rest as before.
 */
export function encodeCommandAt(cmd: Command, timeMs: number | undefined): Uint8Array {
  const direct = encodeDirect(cmd, timeMs);
  if (direct !== undefined) return direct;
  const full = timeMs === undefined ? cmd : { ...cmd, timeMs };
  const wire: Record<string, unknown> = { v: COMMAND_VERSION };
  for (const k in full) {
    const v = (full as unknown as Record<string, unknown>)[k];
    if (v !== undefined) wire[k] = v;
  }
  const bytes = pack(wire);
  // Validate: never put a command into the log that replicas would reject.
  encodedHere.set(bytes, decodeCommand(bytes));
  return bytes;
}

// ---------------------------------------------------------------------------------------------
// Direct encoding of put/del commands. The generic path above packs `{v: 1, ...cmd}` with
// msgpackr and then decodes its own bytes (validating them, and remembering the result for
// apply). For a put or del whose fields are in the order the server builds them — op, key,
// value (put), then optionally session {id, seq, ackedBelow} and timeMs — the bytes are written
// directly (MsgpackWriter: byte-identical to msgpackr) and the remembered Command is built from
// the checked input, with key and value as views of the written bytes, like decodeCommand's.
// It is taken only when decodeCommand would accept the bytes and return exactly that Command:
// every field checked as decodeCommand checks it, session ids without surrogate code units (a
// lone surrogate would not survive the round trip) and short enough that their UTF-8 fits the
// limit; anything else takes the generic path (and its errors). test/commands-direct.test.ts
// compares bytes and remembered Command with the generic path over seeded random commands.

/** Output slab of command bytes (they stay in the Raft log until applied and compacted; as msgpackr's). */
const COMMAND_SLAB_BYTES = 16 * 1024;
/** Largest command written directly, in bytes (a fraction of a slab; bigger ones take msgpackr). */
const DIRECT_COMMAND_BYTES_MAX = COMMAND_SLAB_BYTES / 4;
/** Session ids up to this many UTF-16 units have at most 3 UTF-8 bytes per unit, so fit the limit. */
const DIRECT_SESSION_ID_UNITS_MAX = Math.floor(COMMAND_LIMITS.maxSessionIdBytes / 3);
/** Bytes of a command besides key, value and session id, rounded up (a hint for the writer). */
const COMMAND_FIXED_BYTES_MAX = 96;

const commandWriter = new MsgpackWriter(COMMAND_SLAB_BYTES);
/** `v: 1, op: 'put', key: ` and the same for del. */
const PUT_HEAD = template((w) => (w.writeStr('v'), w.writeNumber(COMMAND_VERSION), w.writeStr('op'), w.writeStr('put'), w.writeStr('key')));
const DEL_HEAD = template((w) => (w.writeStr('v'), w.writeNumber(COMMAND_VERSION), w.writeStr('op'), w.writeStr('del'), w.writeStr('key')));
const VALUE_KEY = template((w) => w.writeStr('value'));
/** `session: {id: ` */
const SESSION_HEAD = template((w) => (w.writeStr('session'), w.writeMapHeader(3), w.writeStr('id')));
const SEQ_KEY = template((w) => w.writeStr('seq'));
const ACKED_BELOW_KEY = template((w) => w.writeStr('ackedBelow'));
const TIME_MS_KEY = template((w) => w.writeStr('timeMs'));
const SESSION_KEYS = ['id', 'seq', 'ackedBelow'] as const;

/** Bytes msgpackr writes as bin (and decodeCommand reads back as bytes). */
function isBin(x: unknown): x is Uint8Array {
  return x instanceof Uint8Array && (x.constructor === Uint8Array || x.constructor === Buffer);
}

/** A session tag decodeCommand accepts and gives back equal (see above), or undefined. */
function directSession(s: unknown): SessionTag | undefined {
  if (typeof s !== 'object' || s === null || s.constructor !== Object || !hasExactKeys(s, SESSION_KEYS)) return undefined;
  const { id, seq, ackedBelow } = s as SessionTag;
  if (typeof id !== 'string' || id.length === 0 || id.length > DIRECT_SESSION_ID_UNITS_MAX) return undefined;
  for (let i = 0; i < id.length; i++) if ((id.charCodeAt(i) & 0xf800) === 0xd800) return undefined;
  if (!isIndex(seq) || !isIndex(ackedBelow) || ackedBelow > seq) return undefined;
  // `+ 0`: -0 is written as 0, so decodeCommand gives 0.
  return { id, seq: seq + 0, ackedBelow: ackedBelow + 0 };
}

/** The fields of a put/del command in the accepted order, or undefined. */
let dOp: 'put' | 'del' = 'put';
let dKey: Uint8Array | undefined;
let dValue: Uint8Array | undefined;
let dSession: unknown;
let dTimeMs: unknown;

/** Reads the command's own fields in for-in order: op, key, value (put), session?, timeMs?. */
function readDirectFields(cmd: Command): boolean {
  const c = cmd as unknown as Record<string, unknown>;
  if (c.constructor !== Object) return false;
  const op = c['op'];
  if (op !== 'put' && op !== 'del') return false;
  dOp = op;
  dKey = dValue = undefined;
  dSession = dTimeMs = undefined;
  // Expected keys in order; session and timeMs may be missing.
  let stage = 0; // 0: op, 1: key, 2: value, 3: session, 4: timeMs, 5: done
  let last = '';
  for (const k in c) {
    last = k;
    if (stage === 0 && k === 'op') stage = 1;
    else if (stage === 1 && k === 'key') {
      dKey = c[k] as Uint8Array;
      stage = op === 'put' ? 2 : 3;
    } else if (stage === 2 && k === 'value') {
      dValue = c[k] as Uint8Array;
      stage = 3;
    } else if (stage === 3 && k === 'session') {
      dSession = c[k];
      stage = 4;
    } else if ((stage === 3 || stage === 4) && k === 'timeMs') {
      dTimeMs = c[k];
      stage = 5;
    } else return false;
  }
  // For-in lists own keys first: the last one being own makes them all own.
  return stage >= 3 && Object.prototype.hasOwnProperty.call(c, last);
}

/**
 * The bytes of a usual put/del command (remembered with its Command), or undefined when the
 * generic path must encode it. Exported for tests (not from the package index).
 */
export function encodeDirect(cmd: Command, timeMsArg: number | undefined): Uint8Array | undefined {
  if (!readDirectFields(cmd)) return undefined;
  const key = dKey;
  const value = dValue;
  if (!isBin(key) || key.length === 0 || key.length > COMMAND_LIMITS.maxKeyBytes) return undefined;
  if (dOp === 'put' && !isBin(value)) return undefined;
  let session: SessionTag | undefined;
  if (dSession !== undefined && (session = directSession(dSession)) === undefined) return undefined;
  const t = timeMsArg ?? dTimeMs;
  if (t !== undefined && !isIndex(t)) return undefined;
  const timeMs = t === undefined ? undefined : t + 0;

  const maxBytes = COMMAND_FIXED_BYTES_MAX + key.length + (value === undefined ? 0 : value.length) + (session === undefined ? 0 : session.id.length * 3);
  // Big commands go through msgpackr: a slab grown for one would pin twice its size in the log.
  if (maxBytes > DIRECT_COMMAND_BYTES_MAX) return undefined;
  const w = commandWriter;
  w.begin(maxBytes);
  w.writeMapHeader(3 + (value === undefined ? 0 : 1) + (session === undefined ? 0 : 1) + (timeMs === undefined ? 0 : 1));
  w.writeRaw(dOp === 'put' ? PUT_HEAD : DEL_HEAD);
  w.writeBin(key);
  const keyEnd = w.written;
  let valueEnd = 0;
  if (value !== undefined) {
    w.writeRaw(VALUE_KEY);
    w.writeBin(value);
    valueEnd = w.written;
  }
  if (session !== undefined) {
    w.writeRaw(SESSION_HEAD);
    w.writeStr(session.id);
    w.writeRaw(SEQ_KEY);
    w.writeNumber(session.seq);
    w.writeRaw(ACKED_BELOW_KEY);
    w.writeNumber(session.ackedBelow);
  }
  if (timeMs !== undefined) {
    w.writeRaw(TIME_MS_KEY);
    w.writeNumber(timeMs);
  }
  const bytes = w.end();
  // As decodeCommand returns it: key and value as plain views of the bytes, then session, timeMs.
  const keyView = new Uint8Array(bytes.buffer, bytes.byteOffset + keyEnd - key.length, key.length);
  const decoded: Command =
    value === undefined
      ? { op: 'del', key: keyView }
      : { op: 'put', key: keyView, value: new Uint8Array(bytes.buffer, bytes.byteOffset + valueEnd - value.length, value.length) };
  if (session !== undefined) decoded.session = session;
  if (timeMs !== undefined) decoded.timeMs = timeMs;
  encodedHere.set(bytes, decoded);
  return bytes;
}

/**
 * decodeCommand(bytes), taking the result remembered by encodeCommand when these exact bytes
 * (the same object) were encoded in this process. The result must be treated as read-only.
 */
export function decodeCommandOnce(bytes: Uint8Array): Command {
  const known = encodedHere.get(bytes);
  if (known === undefined) return decodeDirect(bytes) ?? decodeCommand(bytes);
  encodedHere.delete(bytes);
  return known;
}

// ---------------------------------------------------------------------------------------------
// Direct decoding of put/del commands, the mirror of encodeDirect: followers decode every
// command they apply, and msgpackr's generic decode (strings, objects, then validation) was a
// visible share of their CPU. Bytes laid out exactly as encodeDirect writes them — map header,
// `v: 1, op, key`, `value` for a put, optional `session: {id, seq, ackedBelow}` with an ASCII id,
// optional `timeMs` — are read in place; the result is returned only if decodeCommand would
// return an equal Command. Anything else (other layouts, encodings, non-ASCII ids, -0, any
// doubt) returns undefined and takes decodeCommand. test/commands-direct.test.ts holds the two
// to the same results over seeded random and mutated commands.

let dPos = 0;

/** Decodes a command laid out as encodeDirect writes it, or undefined (then use decodeCommand). */
export function decodeDirect(bytes: Uint8Array): Command | undefined {
  dPos = 0;
  const fields = readMapSize(bytes);
  if (fields === undefined) return undefined;
  let op: 'put' | 'del';
  if (matchAt(bytes, PUT_HEAD)) op = 'put';
  else if (matchAt(bytes, DEL_HEAD)) op = 'del';
  else return undefined;
  let seen = 3;
  const key = readBin(bytes);
  if (key === undefined || key.length === 0 || key.length > COMMAND_LIMITS.maxKeyBytes) return undefined;
  let value: Uint8Array | undefined;
  if (op === 'put') {
    if (!matchAt(bytes, VALUE_KEY)) return undefined;
    value = readBin(bytes);
    if (value === undefined) return undefined;
    seen++;
  }
  let session: SessionTag | undefined;
  if (dPos < bytes.length && matchAt(bytes, SESSION_HEAD)) {
    const id = readAsciiStr(bytes);
    if (id === undefined || id.length === 0 || id.length > COMMAND_LIMITS.maxSessionIdBytes || !matchAt(bytes, SEQ_KEY)) return undefined;
    const seq = readIndex(bytes);
    if (seq === undefined || !matchAt(bytes, ACKED_BELOW_KEY)) return undefined;
    const ackedBelow = readIndex(bytes);
    if (ackedBelow === undefined || ackedBelow > seq) return undefined;
    session = { id, seq, ackedBelow };
    seen++;
  }
  let timeMs: number | undefined;
  if (dPos < bytes.length) {
    if (!matchAt(bytes, TIME_MS_KEY)) return undefined;
    timeMs = readIndex(bytes);
    if (timeMs === undefined) return undefined;
    seen++;
  }
  if (dPos !== bytes.length || seen !== fields) return undefined;
  const cmd: Command = value === undefined ? { op: 'del', key } : { op: 'put', key, value };
  if (session !== undefined) cmd.session = session;
  if (timeMs !== undefined) cmd.timeMs = timeMs;
  return cmd;
}

function readMapSize(b: Uint8Array): number | undefined {
  const h = b[dPos];
  if (h === undefined) return undefined;
  if ((h & 0xf0) === 0x80) {
    dPos += 1;
    return h & 0x0f;
  }
  if (h === 0xde && dPos + 3 <= b.length) {
    dPos += 3;
    return (b[dPos - 2]! << 8) | b[dPos - 1]!;
  }
  return undefined;
}

function matchAt(b: Uint8Array, expected: Uint8Array): boolean {
  if (dPos + expected.length > b.length) return false;
  for (let i = 0; i < expected.length; i++) if (b[dPos + i] !== expected[i]) return false;
  dPos += expected.length;
  return true;
}

/** A bin8/16/32 as a plain Uint8Array view (as decodeCommand's plainBytes gives it). */
function readBin(b: Uint8Array): Uint8Array | undefined {
  const h = b[dPos];
  let n: number;
  let head: number;
  if (h === 0xc4 && dPos + 2 <= b.length) (n = b[dPos + 1]!), (head = 2);
  else if (h === 0xc5 && dPos + 3 <= b.length) (n = (b[dPos + 1]! << 8) | b[dPos + 2]!), (head = 3);
  else if (h === 0xc6 && dPos + 5 <= b.length) (n = ((b[dPos + 1]! << 24) | (b[dPos + 2]! << 16) | (b[dPos + 3]! << 8) | b[dPos + 4]!) >>> 0), (head = 5);
  else return undefined;
  const start = dPos + head;
  if (start + n > b.length) return undefined;
  dPos = start + n;
  return new Uint8Array(b.buffer, b.byteOffset + start, n);
}

/** A fixstr/str8 of ASCII bytes only (so its UTF-8 decoding is the bytes themselves). */
function readAsciiStr(b: Uint8Array): string | undefined {
  const h = b[dPos];
  if (h === undefined) return undefined;
  let n: number;
  let start: number;
  if ((h & 0xe0) === 0xa0) (n = h & 0x1f), (start = dPos + 1);
  else if (h === 0xd9 && dPos + 2 <= b.length) (n = b[dPos + 1]!), (start = dPos + 2);
  else return undefined;
  if (start + n > b.length) return undefined;
  for (let i = start; i < start + n; i++) if (b[i]! >= 0x80) return undefined;
  dPos = start + n;
  return latin1(b, start, dPos);
}

/** A non-negative safe integer in the forms msgpackr writes (fixint, uint8/16/32, float64), never -0. */
function readIndex(b: Uint8Array): number | undefined {
  const h = b[dPos];
  if (h === undefined) return undefined;
  if (h < 0x80) {
    dPos += 1;
    return h;
  }
  if (h === 0xcc && dPos + 2 <= b.length) {
    dPos += 2;
    return b[dPos - 1]!;
  }
  if (h === 0xcd && dPos + 3 <= b.length) {
    dPos += 3;
    return (b[dPos - 2]! << 8) | b[dPos - 1]!;
  }
  if (h === 0xce && dPos + 5 <= b.length) {
    dPos += 5;
    return ((b[dPos - 4]! << 24) | (b[dPos - 3]! << 16) | (b[dPos - 2]! << 8) | b[dPos - 1]!) >>> 0;
  }
  if (h === 0xcb && dPos + 9 <= b.length) {
    const v = new DataView(b.buffer, b.byteOffset + dPos + 1, 8).getFloat64(0);
    if (!isIndex(v) || Object.is(v, -0)) return undefined;
    dPos += 9;
    return v;
  }
  return undefined;
}

/** A command's bytes are malformed; `message` says which field and why. */
export class CommandDecodeError extends Error {
  readonly code = 'QKV_BAD_COMMAND';
  constructor(message: string, options?: { cause?: unknown }) {
    super(`malformed command: ${message}`, options);
    this.name = 'CommandDecodeError';
  }
}

function fail(message: string): never {
  throw new CommandDecodeError(message);
}

function onlyKeys(obj: Record<string, unknown>, allowed: ReadonlySet<string>, what: string): void {
  for (const k in obj) if (!allowed.has(k)) fail(`unknown field "${k}" in ${what}`);
}

/** The fields each shape may carry (built once: decoding runs for every applied entry). */
const FIELDS = {
  session: new Set(['id', 'seq', 'ackedBelow']),
  put: new Set(['v', 'op', 'key', 'session', 'timeMs', 'idem', 'value']),
  del: new Set(['v', 'op', 'key', 'session', 'timeMs', 'idem']),
  cas: new Set(['v', 'op', 'key', 'session', 'timeMs', 'idem', 'cond', 'then']),
  compact: new Set(['v', 'op', 'revision', 'session', 'timeMs', 'idem']),
  txn: new Set(['v', 'op', 'compare', 'success', 'failure', 'session', 'timeMs', 'idem']),
  idem: new Set(['key', 'hash']),
  thenPut: new Set(['op', 'value']),
  thenDel: new Set(['op']),
} as const;

function bytesField(obj: Record<string, unknown>, name: string, maxBytes?: number): Uint8Array {
  const v = obj[name];
  if (!(v instanceof Uint8Array)) fail(`"${name}" must be bytes`);
  if (maxBytes !== undefined && v.length > maxBytes) fail(`"${name}" is longer than ${maxBytes} bytes`);
  return plainBytes(v);
}

function decodeSession(x: unknown): SessionTag {
  if (!isRecord(x)) fail('"session" must be a map');
  onlyKeys(x, FIELDS.session, 'session');
  const { id, seq, ackedBelow } = x;
  if (typeof id !== 'string' || id.length === 0 || utf8Length(id) > COMMAND_LIMITS.maxSessionIdBytes) {
    fail(`"session.id" must be a string of 1..${COMMAND_LIMITS.maxSessionIdBytes} bytes`);
  }
  if (!isIndex(seq)) fail('"session.seq" must be a non-negative integer');
  if (!isIndex(ackedBelow) || ackedBelow > seq) fail('"session.ackedBelow" must be an integer in [0, seq]');
  return { id, seq, ackedBelow };
}

function decodeIdem(x: unknown): IdemTag {
  if (!isRecord(x)) fail('"idem" must be a map');
  onlyKeys(x, FIELDS.idem, 'idem');
  const { key, hash } = x;
  if (!isIdemKey(key)) fail(`"idem.key" must be 1..${IDEM_LIMITS.maxKeyChars} printable ASCII characters`);
  if (typeof hash !== 'string' || hash.length === 0 || hash.length > IDEM_LIMITS.maxHashChars) fail(`"idem.hash" must be a string of 1..${IDEM_LIMITS.maxHashChars} characters`);
  return { key, hash };
}

function decodeCond(x: unknown): CasCondition {
  if (!isRecord(x) || Object.keys(x).length !== 1) fail('"cond" must be a map with exactly one field');
  if ('modRevision' in x) {
    if (!isIndex(x['modRevision'])) fail('"cond.modRevision" must be a non-negative integer');
    return { modRevision: x['modRevision'] };
  }
  if ('value' in x) return { value: bytesField(x, 'value') };
  if ('absent' in x && x['absent'] === true) return { absent: true };
  return fail('"cond" must be {modRevision}, {value} or {absent: true}');
}

function decodeAction(x: unknown): CasAction {
  if (!isRecord(x)) fail('"then" must be a map');
  if (x['op'] === 'put') {
    onlyKeys(x, FIELDS.thenPut, 'then');
    return { op: 'put', value: bytesField(x, 'value') };
  }
  if (x['op'] === 'del') {
    onlyKeys(x, FIELDS.thenDel, 'then');
    return { op: 'del' };
  }
  return fail('"then.op" must be "put" or "del"');
}

function decodeCommon(x: Record<string, unknown>): CommandCommon {
  const common: CommandCommon = {};
  if (x['session'] !== undefined) common.session = decodeSession(x['session']);
  if (x['timeMs'] !== undefined) {
    if (!isIndex(x['timeMs'])) fail('"timeMs" must be a non-negative integer');
    common.timeMs = x['timeMs'];
  }
  if (x['idem'] !== undefined) common.idem = decodeIdem(x['idem']);
  return common;
}

/** Decodes and validates command bytes. Throws CommandDecodeError on anything unexpected. */
export function decodeCommand(bytes: Uint8Array): Command {
  let raw: unknown;
  try {
    raw = unpack(bytes);
  } catch (err) {
    throw new CommandDecodeError('not valid msgpack', { cause: err });
  }
  if (!isRecord(raw)) fail('not a map');
  if (raw['v'] !== COMMAND_VERSION) fail(`unsupported version ${String(raw['v'])}`);
  const key = () => {
    const k = bytesField(raw, 'key', COMMAND_LIMITS.maxKeyBytes);
    return k.length > 0 ? k : fail('"key" must not be empty');
  };
  switch (raw['op']) {
    case 'put':
      onlyKeys(raw, FIELDS.put, 'put');
      return { op: 'put', key: key(), value: bytesField(raw, 'value'), ...decodeCommon(raw) };
    case 'del':
      onlyKeys(raw, FIELDS.del, 'del');
      return { op: 'del', key: key(), ...decodeCommon(raw) };
    case 'cas':
      onlyKeys(raw, FIELDS.cas, 'cas');
      return { op: 'cas', key: key(), cond: decodeCond(raw['cond']), then: decodeAction(raw['then']), ...decodeCommon(raw) };
    case 'compact': {
      onlyKeys(raw, FIELDS.compact, 'compact');
      const revision = raw['revision'];
      if (!isIndex(revision)) fail('"revision" must be a non-negative integer');
      return { op: 'compact', revision, ...decodeCommon(raw) };
    }
    case 'txn': {
      onlyKeys(raw, FIELDS.txn, 'txn');
      let fields: TxnFields;
      try {
        fields = decodeTxnFields(raw, COMMAND_LIMITS.maxKeyBytes);
      } catch (err) {
        if (err instanceof TxnShapeError) fail(`txn: ${err.message}`);
        throw err;
      }
      return { op: 'txn', ...fields, ...decodeCommon(raw) };
    }
    default:
      return fail(`unknown op ${JSON.stringify(raw['op'])}`);
  }
}
