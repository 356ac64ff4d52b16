// msgpack framing for the client protocol. Encoding refuses frames over the limit; decoding
// never trusts a frame: msgpack errors, trailing bytes, extension types and shape violations all
// become a ProtocolError (never an exception of another kind, never a crash).

import { Packr, Unpackr } from 'msgpackr';
import { InvalidArgumentError, ProtocolError, TooLargeError } from './errors.js';
import { fastDecodeRequest } from './fast-request.js';
import { fastEncodeResponse } from './fast-response.js';
import { asciiFixstr as ascii, isUint32, map16Header as map16, writeUint32 } from './msgpack-direct.js';
import { validateRequest, validateResponse, type ValidatedRequest } from './validate.js';
import type { ClientRequest, ClientResponse, Limits, WatchResult } from './wire.js';

// Plain msgpack only: no records, no structured clone, maps decode to plain objects, 64-bit ints
// to numbers (validation then rejects anything that is not a safe integer).
const packr = new Packr({ useRecords: false, moreTypes: false, encodeUndefinedAsNil: true });
const unpackr = new Unpackr({ useRecords: false, mapsAsObjects: true, int64AsType: 'number' });

/**
 * Encodes one frame. Throws {@link TooLargeError} when the encoding exceeds `maxFrameBytes`
 * (nothing is sent then).
 */
export function encodeFrame(frame: ClientRequest | ClientResponse, maxFrameBytes: number): Uint8Array {
  // The usual answers (put/delete/get results) are written directly, byte for byte the same.
  if ((frame as ClientResponse).ok === true) {
    const fast = fastEncodeResponse(frame as ClientResponse, maxFrameBytes);
    if (fast !== undefined) return fast;
  }
  const bytes: Uint8Array = packr.pack(frame);
  if (bytes.length > maxFrameBytes) {
    throw new TooLargeError(`frame of ${bytes.length} bytes exceeds the limit of ${maxFrameBytes}`, maxFrameBytes);
  }
  return bytes;
}

/** Encoded `events` of watch frames, by array: a batch shared by many watchers is packed once. */
const watchEventsBytes = new WeakMap<readonly unknown[], Uint8Array>();
/** `{id: ` */
const WATCH_HEAD = Uint8Array.from([...map16(3), ...ascii('id')]);
/** `, ok: true, result: {events: ` */
const WATCH_RESULT_HEAD = Uint8Array.from([...ascii('ok'), 0xc3, ...ascii('result'), ...map16(3), ...ascii('events')]);
const REVISION_KEY = Uint8Array.from(ascii('revision'));
const COMPACTED_REVISION_KEY = Uint8Array.from(ascii('compactedRevision'));
/** Bytes of a watch frame besides its events, rounded up. */
const WATCH_FRAME_FIXED_BYTES_MAX = 96;

/**
 * Encodes a watch stream frame `{ id, ok: true, result }` (the same value encodeFrame writes). Its
 * `events` array is packed once and reused for every frame that carries the same array: the node's
 * hub hands one array to all the watchers a batch reaches alike. Throws TooLargeError over the limit.
 */
export function encodeWatchFrame(id: number, result: WatchResult, maxFrameBytes: number): Uint8Array {
  if (!isUint32(id) || !isUint32(result.revision) || !isUint32(result.compactedRevision)) return encodeFrame({ id, ok: true, result }, maxFrameBytes);
  let events = watchEventsBytes.get(result.events);
  if (events === undefined) {
    events = packr.pack(result.events) as Uint8Array;
    watchEventsBytes.set(result.events, events);
  }
  const b = new Uint8Array(events.length + WATCH_FRAME_FIXED_BYTES_MAX);
  b.set(WATCH_HEAD, 0);
  let p = writeUint32(b, WATCH_HEAD.length, id);
  b.set(WATCH_RESULT_HEAD, p);
  p += WATCH_RESULT_HEAD.length;
  b.set(events, p);
  p += events.length;
  b.set(REVISION_KEY, p);
  p = writeUint32(b, p + REVISION_KEY.length, result.revision);
  b.set(COMPACTED_REVISION_KEY, p);
  p = writeUint32(b, p + COMPACTED_REVISION_KEY.length, result.compactedRevision);
  if (p > maxFrameBytes) throw new TooLargeError(`frame of ${p} bytes exceeds the limit of ${maxFrameBytes}`, maxFrameBytes);
  return b.subarray(0, p);
}

/**
 * Decodes one msgpack value from a whole frame, refusing oversized frames, undecodable bytes and
 * trailing garbage with {@link ProtocolError} (or {@link TooLargeError} for size).
 */
export function decodeMsgpack(bytes: Uint8Array, maxFrameBytes: number): unknown {
  if (bytes.length > maxFrameBytes) {
    throw new TooLargeError(`frame of ${bytes.length} bytes exceeds the limit of ${maxFrameBytes}`, maxFrameBytes);
  }
  if (bytes.length === 0) throw new ProtocolError('empty frame');
  try {
    return unpackr.unpack(bytes) as unknown;
  } catch (e) {
    throw new ProtocolError(`undecodable frame: ${e instanceof Error ? e.message : String(e)}`, { cause: e });
  }
}

/**
 * Decodes and validates a request frame (server side). Throws {@link ProtocolError} /
 * {@link TooLargeError} for a frame the server cannot answer (close the connection); returns
 * `{ ok: false, id, error }` for a well-framed request with bad arguments (answer it).
 */
export function decodeRequestFrame(bytes: Uint8Array, limits: Limits): ValidatedRequest {
  // The usual valid put/get/delete frames are read directly (fast-request.ts); the rest, and every
  // invalid frame, go through msgpackr + validateRequest.
  return fastDecodeRequest(bytes, limits) ?? validateRequest(decodeMsgpack(bytes, limits.maxFrameBytes), limits);
}

/**
 * Decodes and validates a response envelope (client side). The `result` is still `unknown`:
 * check it with `validateResult(op, result, limits)` once the id tells the operation.
 * Throws {@link ProtocolError} on anything malformed.
 */
export function decodeResponseFrame(bytes: Uint8Array, maxFrameBytes: number): ClientResponse<unknown> {
  const value = decodeMsgpack(bytes, maxFrameBytes);
  try {
    return validateResponse(value);
  } catch (e) {
    if (e instanceof InvalidArgumentError) throw new ProtocolError(e.message, { cause: e });
    throw e;
  }
}
