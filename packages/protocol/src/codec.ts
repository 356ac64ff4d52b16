// msgpack framing for the client protocol. Encoding refuses frames over the limit; decoding
// never trusts a frame: msgpack errors, trailing bytes, extension types and shape violations all
// become a ProtocolError (never an exception of another kind, never a crash).

import { Packr, Unpackr } from 'msgpackr';
import { InvalidArgumentError, ProtocolError, TooLargeError } from './errors.js';
import { fastDecodeRequest } from './fast-request.js';
import { fastEncodeResponse } from './fast-response.js';
import { validateRequest, validateResponse, type ValidatedRequest } from './validate.js';
import type { ClientRequest, ClientResponse, Limits } from './wire.js';

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
