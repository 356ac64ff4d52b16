// A fast path for decoding + validating the most frequent request frames (put, get, delete) on
// the server. It reads the msgpack bytes directly and builds the validated request in one step,
// instead of msgpackr building an object of strings and validation building a second one.
//
// It only ever answers "this frame is a VALID request, here it is"; for anything else it returns
// undefined and the caller takes the generic path (msgpackr unpack + validateRequest) unchanged.
// So it never has to reproduce an error: every frame that is odd in any way (another op, a type
// or width it does not read, an unknown or repeated field, a non-ASCII string, a truncated frame,
// trailing bytes, any limit or range violation) goes the generic way and gets the generic answer.
// What it does accept, it returns exactly as the generic path would: the same fields with the
// same values, keys and values as views of the frame (msgpackr's `subarray`, so a Buffer frame
// gives Buffer views). test/fast-request.test.ts checks both over seeded random frames.
//
// Accepted encodings: a map as fixmap or map16; field names as fixstr; op and consistency as
// fixstr; key and value as bin8/bin16/bin32; integers as positive fixint, uint8, uint16, uint32;
// the session id as an ASCII fixstr or str8. Fields may come in any order.

import { asciiString } from './bytes.js';
import type { ValidatedRequest } from './validate.js';
import {
  REQUEST_TIMEOUT_MS_MAX,
  SESSION_ID_CHARS_MAX,
  type Consistency,
  type Limits,
  type SessionRef,
} from './wire.js';

// Field bits: which fields a frame carried (each at most once).
const F_ID = 1;
const F_OP = 2;
const F_TIMEOUT = 4;
const F_KEY = 8;
const F_VALUE = 16;
const F_SESSION = 32;
const F_CONSISTENCY = 64;

const OP_PUT = 1;
const OP_GET = 2;
const OP_DELETE = 3;

/** Sentinel for "not read": the generic path decides. */
const NO = -1;

/** The fields of one frame as read from the bytes (module-level scratch: decoding is synchronous). */
let pos = 0;
let seen = 0;
let reqId = 0;
let op = 0;
let timeoutMs = 0;
let keyStart = 0;
let keyEnd = 0;
let valueStart = 0;
let valueEnd = 0;
let consistency: Consistency = 'linearizable';
let session: SessionRef | undefined;

/**
 * The validated request of a put, get or delete frame in the usual encodings, or undefined when
 * the frame is anything else (or invalid in any way): then the generic path must decode it.
 */
export function fastDecodeRequest(bytes: Uint8Array, limits: Limits): ValidatedRequest | undefined {
  const n = bytes.length;
  if (n === 0 || n > limits.maxFrameBytes) return undefined;
  pos = 0;
  seen = 0;
  op = 0;
  session = undefined;
  consistency = 'linearizable';
  const fields = readMapHeader(bytes);
  if (fields === NO) return undefined;
  for (let i = 0; i < fields; i++) {
    if (!readField(bytes)) return undefined;
  }
  if (pos !== n) return undefined;
  return build(bytes, limits);
}

/** Builds the request once every field was read, or undefined when validation would refuse it. */
function build(bytes: Uint8Array, limits: Limits): ValidatedRequest | undefined {
  if ((seen & (F_ID | F_OP | F_KEY)) !== (F_ID | F_OP | F_KEY)) return undefined;
  const hasTimeout = (seen & F_TIMEOUT) !== 0;
  if (hasTimeout && (timeoutMs < 1 || timeoutMs > REQUEST_TIMEOUT_MS_MAX)) return undefined;
  const keyBytes = keyEnd - keyStart;
  if (keyBytes === 0 || keyBytes > limits.maxKeyBytes) return undefined;
  const key = bytes.subarray(keyStart, keyEnd);
  if (op === OP_PUT) {
    if ((seen & F_CONSISTENCY) !== 0 || (seen & (F_VALUE | F_SESSION)) !== (F_VALUE | F_SESSION)) return undefined;
    if (valueEnd - valueStart > limits.maxValueBytes || session === undefined) return undefined;
    const value = bytes.subarray(valueStart, valueEnd);
    return hasTimeout
      ? { ok: true, request: { id: reqId, timeoutMs, op: 'put', key, value, session } }
      : { ok: true, request: { id: reqId, op: 'put', key, value, session } };
  }
  if (op === OP_DELETE) {
    if ((seen & (F_CONSISTENCY | F_VALUE)) !== 0 || session === undefined) return undefined;
    return hasTimeout
      ? { ok: true, request: { id: reqId, timeoutMs, op: 'delete', key, session } }
      : { ok: true, request: { id: reqId, op: 'delete', key, session } };
  }
  // get
  if ((seen & (F_VALUE | F_SESSION)) !== 0) return undefined;
  return hasTimeout
    ? { ok: true, request: { id: reqId, timeoutMs, op: 'get', key, consistency } }
    : { ok: true, request: { id: reqId, op: 'get', key, consistency } };
}

/** A fixmap or map16 header at `pos`: its entry count, or NO. */
function readMapHeader(b: Uint8Array): number {
  if (pos >= b.length) return NO;
  const t = b[pos] as number;
  if ((t & 0xf0) === 0x80) {
    pos++;
    return t & 0x0f;
  }
  if (t === 0xde && pos + 3 <= b.length) {
    const size = ((b[pos + 1] as number) << 8) | (b[pos + 2] as number);
    pos += 3;
    return size;
  }
  return NO;
}

/** A uint (positive fixint, uint8/16/32) at `pos`, or NO. */
function readUint(b: Uint8Array): number {
  if (pos >= b.length) return NO;
  const t = b[pos] as number;
  if (t < 0x80) {
    pos++;
    return t;
  }
  if (t === 0xcc && pos + 2 <= b.length) {
    pos += 2;
    return b[pos - 1] as number;
  }
  if (t === 0xcd && pos + 3 <= b.length) {
    const v = ((b[pos + 1] as number) << 8) | (b[pos + 2] as number);
    pos += 3;
    return v;
  }
  if (t === 0xce && pos + 5 <= b.length) {
    const v =
      (b[pos + 1] as number) * 0x1000000 + (((b[pos + 2] as number) << 16) | ((b[pos + 3] as number) << 8) | (b[pos + 4] as number));
    pos += 5;
    return v;
  }
  return NO;
}

/** A bin8/16/32 at `pos`: sets binStart/binEnd and returns true, or false. */
let binStart = 0;
let binEnd = 0;
function readBin(b: Uint8Array): boolean {
  if (pos >= b.length) return false;
  const t = b[pos] as number;
  let len: number;
  let head: number;
  if (t === 0xc4 && pos + 2 <= b.length) {
    len = b[pos + 1] as number;
    head = 2;
  } else if (t === 0xc5 && pos + 3 <= b.length) {
    len = ((b[pos + 1] as number) << 8) | (b[pos + 2] as number);
    head = 3;
  } else if (t === 0xc6 && pos + 5 <= b.length) {
    len = (b[pos + 1] as number) * 0x1000000 + (((b[pos + 2] as number) << 16) | ((b[pos + 3] as number) << 8) | (b[pos + 4] as number));
    head = 5;
  } else return false;
  binStart = pos + head;
  binEnd = binStart + len;
  if (binEnd > b.length) return false;
  pos = binEnd;
  return true;
}

/** True when the fixstr at `pos` is exactly the ASCII `s` (then skips it). */
function isFixStr(b: Uint8Array, s: string): boolean {
  const len = s.length;
  if (b[pos] !== (0xa0 | len) || pos + 1 + len > b.length) return false;
  for (let i = 0; i < len; i++) if (b[pos + 1 + i] !== s.charCodeAt(i)) return false;
  pos += 1 + len;
  return true;
}

/** Marks a field as seen; false when it was seen already (a repeated field: generic path). */
function mark(bit: number): boolean {
  if ((seen & bit) !== 0) return false;
  seen |= bit;
  return true;
}

/** One top-level field (name and value) at `pos`; false when the frame is not for the fast path. */
function readField(b: Uint8Array): boolean {
  if (pos >= b.length) return false;
  const t = b[pos] as number;
  // Dispatch on the name's length (fixstr header), then compare the bytes.
  switch (t) {
    case 0xa2: // id, op
      if (isFixStr(b, 'id')) {
        if (!mark(F_ID)) return false;
        reqId = readUint(b);
        return reqId !== NO;
      }
      if (isFixStr(b, 'op')) return mark(F_OP) && readOp(b);
      return false;
    case 0xa3: // key
      if (!isFixStr(b, 'key') || !mark(F_KEY) || !readBin(b)) return false;
      keyStart = binStart;
      keyEnd = binEnd;
      return true;
    case 0xa5: // value
      if (!isFixStr(b, 'value') || !mark(F_VALUE) || !readBin(b)) return false;
      valueStart = binStart;
      valueEnd = binEnd;
      return true;
    case 0xa7: // session
      return isFixStr(b, 'session') && mark(F_SESSION) && readSession(b);
    case 0xa9: // timeoutMs
      if (!isFixStr(b, 'timeoutMs') || !mark(F_TIMEOUT)) return false;
      timeoutMs = readUint(b);
      return timeoutMs !== NO;
    case 0xab: // consistency
      if (!isFixStr(b, 'consistency') || !mark(F_CONSISTENCY)) return false;
      if (isFixStr(b, 'linearizable')) consistency = 'linearizable';
      else if (isFixStr(b, 'stale')) consistency = 'stale';
      else return false;
      return true;
    default:
      return false;
  }
}

function readOp(b: Uint8Array): boolean {
  if (isFixStr(b, 'put')) op = OP_PUT;
  else if (isFixStr(b, 'get')) op = OP_GET;
  else if (isFixStr(b, 'delete')) op = OP_DELETE;
  else return false;
  return true;
}

/**
 * The session map {id, seq, ackedBelow} (any order, each once) with its validation:
 * id 1..SESSION_ID_CHARS_MAX ASCII characters, seq >= 1, 1 <= ackedBelow <= seq.
 */
function readSession(b: Uint8Array): boolean {
  const fields = readMapHeader(b);
  if (fields !== 3) return false;
  let sid: string | undefined;
  let seq = NO;
  let ackedBelow = NO;
  for (let i = 0; i < 3; i++) {
    if (pos >= b.length) return false;
    const t = b[pos] as number;
    if (t === 0xa2 && sid === undefined && isFixStr(b, 'id')) {
      sid = readAscii(b);
      if (sid === undefined) return false;
    } else if (t === 0xa3 && seq === NO && isFixStr(b, 'seq')) {
      seq = readUint(b);
      if (seq === NO) return false;
    } else if (t === 0xaa && ackedBelow === NO && isFixStr(b, 'ackedBelow')) {
      ackedBelow = readUint(b);
      if (ackedBelow === NO) return false;
    } else return false;
  }
  if (sid === undefined || sid.length < 1 || sid.length > SESSION_ID_CHARS_MAX) return false;
  if (seq < 1 || ackedBelow < 1 || ackedBelow > seq) return false;
  session = { id: sid, seq, ackedBelow };
  return true;
}

/** An ASCII fixstr or str8 at `pos`, or undefined (other encodings, non-ASCII, truncated). */
function readAscii(b: Uint8Array): string | undefined {
  if (pos >= b.length) return undefined;
  const t = b[pos] as number;
  let len: number;
  if ((t & 0xe0) === 0xa0) {
    len = t & 0x1f;
    pos += 1;
  } else if (t === 0xd9 && pos + 2 <= b.length) {
    len = b[pos + 1] as number;
    pos += 2;
  } else return undefined;
  const end = pos + len;
  if (end > b.length) return undefined;
  const s = asciiString(b, pos, end);
  if (s !== undefined) pos = end;
  return s;
}
