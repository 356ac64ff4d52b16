// Commands of the key-value state machine: their types and their msgpack encoding. Decoding is
// strict because command bytes come from the log, i.e. ultimately from clients.
import { isIndex, isRecord, pack, plainBytes, unpack, utf8 } from './codec.js';

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
}

/** A state-machine command. */
export type Command =
  | ({ op: 'put'; key: Uint8Array; value: Uint8Array } & CommandCommon)
  | ({ op: 'del'; key: Uint8Array } & CommandCommon)
  | ({ op: 'cas'; key: Uint8Array; cond: CasCondition; then: CasAction } & CommandCommon);

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
  const wire: Record<string, unknown> = { v: COMMAND_VERSION };
  for (const k in cmd) {
    const v = (cmd as unknown as Record<string, unknown>)[k];
    if (v !== undefined) wire[k] = v;
  }
  const bytes = pack(wire);
  // Validate: never put a command into the log that replicas would reject.
  encodedHere.set(bytes, decodeCommand(bytes));
  return bytes;
}

/**
 * decodeCommand(bytes), taking the result remembered by encodeCommand when these exact bytes
 * (the same object) were encoded in this process. The result must be treated as read-only.
 */
export function decodeCommandOnce(bytes: Uint8Array): Command {
  const known = encodedHere.get(bytes);
  if (known === undefined) return decodeCommand(bytes);
  encodedHere.delete(bytes);
  return known;
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
  put: new Set(['v', 'op', 'key', 'session', 'timeMs', 'value']),
  del: new Set(['v', 'op', 'key', 'session', 'timeMs']),
  cas: new Set(['v', 'op', 'key', 'session', 'timeMs', 'cond', 'then']),
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
  if (typeof id !== 'string' || id.length === 0 || utf8(id).length > COMMAND_LIMITS.maxSessionIdBytes) {
    fail(`"session.id" must be a string of 1..${COMMAND_LIMITS.maxSessionIdBytes} bytes`);
  }
  if (!isIndex(seq)) fail('"session.seq" must be a non-negative integer');
  if (!isIndex(ackedBelow) || ackedBelow > seq) fail('"session.ackedBelow" must be an integer in [0, seq]');
  return { id, seq, ackedBelow };
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
    default:
      return fail(`unknown op ${JSON.stringify(raw['op'])}`);
  }
}
