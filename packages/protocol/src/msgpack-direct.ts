// The few msgpack primitives the direct frame encoders share (server answers in fast-response.ts,
// the client's put requests in @quorumkv/client's put-frame.ts). They write what msgpackr writes
// in plain-object mode, so direct frames are byte-identical to generic ones (each encoder's tests
// compare them). Browser-safe: plain Uint8Array only.

/** The bytes of a fixstr of ASCII `s` (fewer than 32 characters): header, then one byte per character. */
export function asciiFixstr(s: string): number[] {
  return [0xa0 | s.length, ...Array.from(s, (c) => c.charCodeAt(0))];
}

/** A map16 header for `n` entries (msgpackr writes every plain object with one). */
export function map16Header(n: number): number[] {
  return [0xde, n >>> 8, n & 0xff];
}

/** True for a number msgpackr writes as a uint of at most 32 bits (fixint, uint8/16/32). */
export function isUint32(n: unknown): n is number {
  return typeof n === 'number' && n >>> 0 === n;
}

/**
 * `n` (a uint32) behind the narrowest of three consecutive type bytes: `tag8` with 1 byte,
 * `tag8 + 1` with 2, `tag8 + 2` with 4 (big-endian). Returns the position after it.
 */
function writeTagged(b: Uint8Array, p: number, n: number, tag8: number): number {
  if (n < 0x100) {
    b[p++] = tag8;
    b[p++] = n;
  } else if (n < 0x10000) {
    b[p++] = tag8 + 1;
    b[p++] = n >>> 8;
    b[p++] = n & 0xff;
  } else {
    b[p++] = tag8 + 2;
    b[p++] = n >>> 24;
    b[p++] = (n >>> 16) & 0xff;
    b[p++] = (n >>> 8) & 0xff;
    b[p++] = n & 0xff;
  }
  return p;
}

/** A uint32 as msgpackr writes it at `p`: positive fixint below 0x80, else uint8/16/32. Returns the position after it. */
export function writeUint32(b: Uint8Array, p: number, n: number): number {
  if (n >= 0x80) return writeTagged(b, p, n, 0xcc);
  b[p] = n;
  return p + 1;
}

/** Bytes as bin8/bin16/bin32 at `p`. Returns the position after them. */
export function writeBin(b: Uint8Array, p: number, bytes: Uint8Array): number {
  p = writeTagged(b, p, bytes.length, 0xc4);
  b.set(bytes, p);
  return p + bytes.length;
}
