// A direct encoder for the most frequent answer frames, writing exactly the bytes the generic
// encoder (msgpackr, plain-object mode: every object as map16, fields in for-in order, numbers
// below 2^32 as the smallest uint) writes for the same object:
//   put/cas:  { id, ok: true, result: { revision, term } }
//   delete:   { id, ok: true, result: { revision, deleted, term } }
//   get:      { id, ok: true, result: { item: null | { key, value, createRevision, modRevision, version } } }
// Anything else (other fields or field orders, numbers of 2^32 or more, other byte types, frames
// over the limit) returns undefined and goes through msgpackr. test/fast-response.test.ts compares
// the bytes with msgpackr's over seeded random answers.

import { asciiFixstr as ascii, isUint32, map16Header as map16, writeBin, writeUint32 as writeUint } from './msgpack-direct.js';
import type { ClientResponse } from './wire.js';

/** Size of one output slab, in bytes. A slab is never written twice (frames may wait in a socket queue). */
const SLAB_BYTES = 64 * 1024;
/** Answers bigger than this get a buffer of their own instead of a slab part. */
const SLAB_PART_BYTES_MAX = 8 * 1024;
/** Bytes of a get answer besides its key and value (names, headers, numbers), rounded up. */
const ITEM_FRAME_FIXED_BYTES_MAX = 128;
/** Bytes of a put/delete answer, rounded up. */
const WRITE_FRAME_BYTES_MAX = 64;

/** `{id: ` */
const HEAD = Uint8Array.from([...map16(3), ...ascii('id')]);
/** `, ok: true, result: {revision: ` */
const WRITE_RESULT = Uint8Array.from([...ascii('ok'), 0xc3, ...ascii('result'), ...map16(2), ...ascii('revision')]);
/** `, ok: true, result: {revision: ` for a delete (three fields). */
const DELETE_RESULT = Uint8Array.from([...ascii('ok'), 0xc3, ...ascii('result'), ...map16(3), ...ascii('revision')]);
const DELETED_KEY = Uint8Array.from(ascii('deleted'));
const TERM_KEY = Uint8Array.from(ascii('term'));
/** `, ok: true, result: {item: ` */
const GET_RESULT = Uint8Array.from([...ascii('ok'), 0xc3, ...ascii('result'), ...map16(1), ...ascii('item')]);
/** `{key: ` */
const ITEM_HEAD = Uint8Array.from([...map16(5), ...ascii('key')]);
const VALUE_KEY = Uint8Array.from(ascii('value'));
const CREATE_REVISION_KEY = Uint8Array.from(ascii('createRevision'));
const MOD_REVISION_KEY = Uint8Array.from(ascii('modRevision'));
const VERSION_KEY = Uint8Array.from(ascii('version'));

const FRAME_KEYS = ['id', 'ok', 'result'] as const;
const WRITE_KEYS = ['revision', 'term'] as const;
const DELETE_KEYS = ['revision', 'deleted', 'term'] as const;
const GET_KEYS = ['item'] as const;
const ITEM_KEYS = ['key', 'value', 'createRevision', 'modRevision', 'version'] as const;

let slab = new Uint8Array(SLAB_BYTES);
let used = 0;

/** True for a plain object (what msgpackr writes as a map). */
function isPlain(o: unknown): o is Record<string, unknown> {
  return typeof o === 'object' && o !== null && o.constructor === Object;
}

/** True when for-in yields exactly `keys`, in order, all own (the fields msgpackr would write). */
function hasExactKeys(o: object, keys: readonly string[]): boolean {
  let i = 0;
  for (const k in o) {
    if (k !== keys[i]) return false;
    i++;
  }
  return i === keys.length && Object.prototype.hasOwnProperty.call(o, keys[i - 1] as string);
}

/** True for bytes msgpackr writes as bin (a Uint8Array or a Node Buffer). */
function isBin(x: unknown): x is Uint8Array {
  return x instanceof Uint8Array && (x.constructor === Uint8Array || x.constructor.name === 'Buffer');
}

/**
 * The msgpack bytes of a usual successful answer (see the file comment), or undefined when this
 * encoder does not cover it or it would exceed `maxFrameBytes`. The result is a view of a shared
 * buffer that is never written again: callers must not write into it.
 */
export function fastEncodeResponse(frame: ClientResponse, maxFrameBytes: number): Uint8Array | undefined {
  if (!isPlain(frame) || frame.ok !== true || !isUint32(frame.id) || !hasExactKeys(frame, FRAME_KEYS)) return undefined;
  const r = frame.result;
  if (!isPlain(r)) return undefined;
  if (isUint32(r.revision)) {
    if (!isUint32(r.term)) return undefined;
    if (hasExactKeys(r, WRITE_KEYS)) return writeAnswer(frame.id, r.revision, undefined, r.term, maxFrameBytes);
    if (typeof r.deleted === 'boolean' && hasExactKeys(r, DELETE_KEYS)) {
      return writeAnswer(frame.id, r.revision, r.deleted, r.term, maxFrameBytes);
    }
    return undefined;
  }
  if (!hasExactKeys(r, GET_KEYS)) return undefined;
  const item = r.item;
  if (item === null) return getAnswer(frame.id, null, maxFrameBytes);
  if (!isPlain(item) || !hasExactKeys(item, ITEM_KEYS)) return undefined;
  return getAnswer(frame.id, item, maxFrameBytes);
}

/** Where the current answer is written: the slab, or a buffer of its own for a big one. */
let target = slab;

/** Room for `bytes` bytes: sets `target` and returns the position to write at. */
function reserve(bytes: number): number {
  if (bytes > SLAB_PART_BYTES_MAX) {
    target = new Uint8Array(bytes);
    return 0;
  }
  if (used + bytes > slab.length) {
    slab = new Uint8Array(SLAB_BYTES);
    used = 0;
  }
  target = slab;
  return used;
}

/** Hands out the bytes written into `target` from `start` to `end` (never written again). */
function finish(start: number, end: number): Uint8Array {
  if (target === slab) used = end;
  return target.subarray(start, end);
}

function writeAnswer(id: number, revision: number, deleted: boolean | undefined, term: number, maxFrameBytes: number): Uint8Array | undefined {
  if (WRITE_FRAME_BYTES_MAX > maxFrameBytes) return undefined;
  const start = reserve(WRITE_FRAME_BYTES_MAX);
  const b = target;
  let p = writeHead(b, start, id);
  const rest = deleted === undefined ? WRITE_RESULT : DELETE_RESULT;
  b.set(rest, p);
  p = writeUint(b, p + rest.length, revision);
  if (deleted !== undefined) {
    b.set(DELETED_KEY, p);
    p += DELETED_KEY.length;
    b[p++] = deleted ? 0xc3 : 0xc2;
  }
  b.set(TERM_KEY, p);
  p = writeUint(b, p + TERM_KEY.length, term);
  return finish(start, p);
}

/** The start of every direct answer at `start`: the map header and the id. Returns the position after it. */
function writeHead(b: Uint8Array, start: number, id: number): number {
  b.set(HEAD, start);
  return writeUint(b, start + HEAD.length, id);
}

function getAnswer(id: number, item: Record<string, unknown> | null, maxFrameBytes: number): Uint8Array | undefined {
  if (item === null) {
    if (ITEM_FRAME_FIXED_BYTES_MAX > maxFrameBytes) return undefined;
    const start = reserve(ITEM_FRAME_FIXED_BYTES_MAX);
    const b = target;
    let p = writeHead(b, start, id);
    b.set(GET_RESULT, p);
    p += GET_RESULT.length;
    b[p++] = 0xc0;
    return finish(start, p);
  }
  const { key, value, createRevision, modRevision, version } = item;
  if (!isBin(key) || !isBin(value) || !isUint32(createRevision) || !isUint32(modRevision) || !isUint32(version)) return undefined;
  const maxBytes = ITEM_FRAME_FIXED_BYTES_MAX + key.length + value.length;
  // Near the limit, let the generic encoder measure exactly (and refuse with its error).
  if (maxBytes > maxFrameBytes) return undefined;
  const start = reserve(maxBytes);
  const b = target;
  let p = writeHead(b, start, id);
  b.set(GET_RESULT, p);
  p += GET_RESULT.length;
  b.set(ITEM_HEAD, p);
  p = writeBin(b, p + ITEM_HEAD.length, key);
  b.set(VALUE_KEY, p);
  p = writeBin(b, p + VALUE_KEY.length, value);
  b.set(CREATE_REVISION_KEY, p);
  p = writeUint(b, p + CREATE_REVISION_KEY.length, createRevision);
  b.set(MOD_REVISION_KEY, p);
  p = writeUint(b, p + MOD_REVISION_KEY.length, modRevision);
  b.set(VERSION_KEY, p);
  p = writeUint(b, p + VERSION_KEY.length, version);
  return finish(start, p);
}
