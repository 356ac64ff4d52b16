// A direct encoder for the most frequent frame, `put`, writing the very bytes that the protocol's
// msgpack encoder (msgpackr, plain-object mode) writes for the same request, about three times
// faster (measured on Node 20: ~1.1 µs -> ~0.35 µs per 100-byte put, ~10% of the client's CPU
// per put). It covers the usual case only (ASCII session id, 32-bit counters, a frame of at most
// FAST_FRAME_BYTES_MAX) and returns undefined for anything else, which then goes through
// `encodeFrame` as before. test/internals.test.ts compares its output with msgpackr's byte for
// byte over many random puts, including every header size on either side of its limits.

import { asciiFixstr as ascii, isUint32, map16Header, writeBin, writeUint32 as writeUint, type SessionRef } from '@quorumkv/protocol';

/** Largest frame this encoder writes, in bytes; larger puts go through the generic encoder. */
const FAST_FRAME_BYTES_MAX = 16 * 1024;
/** Size of one output slab, in bytes (a slab is never rewound, see below). */
const SLAB_BYTES = 256 * 1024;
/** Bytes of a put frame besides its key, value and session id (map headers, keys, numbers). */
const PUT_FRAME_FIXED_BYTES_MAX = 96;

// The frame is a map of six entries, in this order: op, key, value, session {id, seq, ackedBelow},
// id, timeoutMs. msgpackr writes every map with a map16 header (0xde + 2-byte size) and short
// strings as fixstr.
const HEAD = Uint8Array.from([...map16Header(6), ...ascii('op'), ...ascii('put'), ...ascii('key')]);
const VALUE_KEY = Uint8Array.from(ascii('value'));
const SESSION_HEAD = Uint8Array.from([...ascii('session'), ...map16Header(3), ...ascii('id')]);
const SEQ_KEY = Uint8Array.from(ascii('seq'));
const ACKED_BELOW_KEY = Uint8Array.from(ascii('ackedBelow'));
const ID_KEY = Uint8Array.from(ascii('id'));
const TIMEOUT_KEY = Uint8Array.from(ascii('timeoutMs'));

// Frames are written one after another into a slab and handed out as views of it. A slab is
// never written twice: a frame may still sit in the socket's queue (corked until the end of the
// turn) when the next one is encoded.
let slab = new Uint8Array(SLAB_BYTES);
let used = 0;

/**
 * The msgpack bytes of `{ op: 'put', key, value, session, id, timeoutMs }` (fields in that order,
 * session fields in the order id, seq, ackedBelow), or undefined when this encoder does not
 * cover the request. The result is a view of a shared buffer: callers must not write into it.
 */
export function encodePutFrame(
  key: Uint8Array,
  value: Uint8Array,
  session: SessionRef,
  id: number,
  timeoutMs: number,
): Uint8Array | undefined {
  const sid = session.id;
  const maxBytes = PUT_FRAME_FIXED_BYTES_MAX + key.length + value.length + sid.length;
  if (maxBytes > FAST_FRAME_BYTES_MAX || sid.length > 0xff) return undefined;
  if (!isUint32(session.seq) || !isUint32(session.ackedBelow) || !isUint32(id) || !isUint32(timeoutMs)) return undefined;
  for (let i = 0; i < sid.length; i++) if (sid.charCodeAt(i) >= 0x80) return undefined;
  if (used + maxBytes > SLAB_BYTES) {
    slab = new Uint8Array(SLAB_BYTES);
    used = 0;
  }
  const buf = slab;
  const start = used;
  let p = start;
  buf.set(HEAD, p);
  p = writeBin(buf, p + HEAD.length, key);
  buf.set(VALUE_KEY, p);
  p = writeBin(buf, p + VALUE_KEY.length, value);
  buf.set(SESSION_HEAD, p);
  p += SESSION_HEAD.length;
  // Strings of fewer than 32 characters are fixstr, else (up to 255) str8; ASCII: one byte each.
  if (sid.length < 0x20) buf[p++] = 0xa0 | sid.length;
  else {
    buf[p++] = 0xd9;
    buf[p++] = sid.length;
  }
  for (let i = 0; i < sid.length; i++) buf[p++] = sid.charCodeAt(i);
  buf.set(SEQ_KEY, p);
  p = writeUint(buf, p + SEQ_KEY.length, session.seq);
  buf.set(ACKED_BELOW_KEY, p);
  p = writeUint(buf, p + ACKED_BELOW_KEY.length, session.ackedBelow);
  buf.set(ID_KEY, p);
  p = writeUint(buf, p + ID_KEY.length, id);
  buf.set(TIMEOUT_KEY, p);
  p = writeUint(buf, p + TIMEOUT_KEY.length, timeoutMs);
  used = p;
  return buf.subarray(start, p);
}
