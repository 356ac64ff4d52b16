// Byte-level helpers shared by every store: msgpack, fixed-width integers, key ranges.
import { Packr } from 'msgpackr';

/** One msgpack codec for everything on disk: plain maps, no record extension, 64-bit ints as numbers. */
const packr = new Packr({ useRecords: false, mapsAsObjects: true, int64AsType: 'number', moreTypes: false });

/** Encodes a plain value with msgpack. */
export function pack(value: unknown): Uint8Array {
  return packr.pack(value);
}

/** Decodes msgpack; throws on malformed or trailing bytes (callers turn that into a typed error). */
export function unpack(bytes: Uint8Array): unknown {
  return packr.unpack(bytes);
}

/** `n` as 8 bytes big-endian (n must be a non-negative safe integer). */
export function u64be(n: number): Uint8Array {
  const out = new Uint8Array(8);
  writeU64be(out, 0, n);
  return out;
}

/** Writes `n` (a non-negative safe integer) as 8 bytes big-endian at `offset` (no BigInt: hot path). */
export function writeU64be(out: Uint8Array, offset: number, n: number): void {
  const hi = Math.floor(n / 0x1_0000_0000);
  const lo = n >>> 0;
  out[offset] = hi >>> 24;
  out[offset + 1] = (hi >>> 16) & 0xff;
  out[offset + 2] = (hi >>> 8) & 0xff;
  out[offset + 3] = hi & 0xff;
  out[offset + 4] = lo >>> 24;
  out[offset + 5] = (lo >>> 16) & 0xff;
  out[offset + 6] = (lo >>> 8) & 0xff;
  out[offset + 7] = lo & 0xff;
}

/** Reads 8 bytes big-endian at `offset`; returns undefined if the number is not a safe integer. */
export function readU64be(bytes: Uint8Array, offset = 0): number | undefined {
  if (bytes.length < offset + 8) return undefined;
  const hi = ((bytes[offset]! << 24) | (bytes[offset + 1]! << 16) | (bytes[offset + 2]! << 8) | bytes[offset + 3]!) >>> 0;
  const lo = ((bytes[offset + 4]! << 24) | (bytes[offset + 5]! << 16) | (bytes[offset + 6]! << 8) | bytes[offset + 7]!) >>> 0;
  if (hi > 0x1f_ffff) return undefined; // above 2^53 - 1
  return hi * 0x1_0000_0000 + lo;
}

/** `n` as 4 bytes big-endian. */
export function u32be(n: number): Uint8Array {
  // Byte writes, not a DataView: `.buffer` of a small on-heap array makes V8 move it off the heap.
  return Uint8Array.of(n >>> 24, (n >>> 16) & 0xff, (n >>> 8) & 0xff, n & 0xff);
}

/** Concatenates byte arrays. */
export function concat(...parts: Uint8Array[]): Uint8Array {
  return concatAll(parts);
}

/** Concatenates a list of byte arrays (no argument-count limit, unlike spreading). */
export function concatAll(parts: readonly Uint8Array[]): Uint8Array {
  let length = 0;
  for (const p of parts) length += p.length;
  const out = new Uint8Array(length);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/** Byte-wise equality. */
export function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** Byte-wise comparison (the order LevelDB uses). */
export function compareBytes(a: Uint8Array, b: Uint8Array): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const d = (a[i] as number) - (b[i] as number);
    if (d !== 0) return d;
  }
  return a.length - b.length;
}

/** The smallest key greater than every key starting with `prefix`; undefined if there is none (all 0xff). */
export function prefixUpperBound(prefix: Uint8Array): Uint8Array | undefined {
  for (let i = prefix.length - 1; i >= 0; i--) {
    if (prefix[i] !== 0xff) {
      // A copy even when `prefix` is a Buffer (a frame's key): Buffer#slice is a view, and the
      // increment below would change the caller's prefix.
      const out = Uint8Array.prototype.slice.call(prefix, 0, i + 1);
      out[i] = (out[i] as number) + 1;
      return out;
    }
  }
  return undefined;
}

/** A plain `Uint8Array` view (msgpackr and LevelDB hand back Buffers; tests compare plain arrays). */
export function plainBytes(b: Uint8Array): Uint8Array {
  return new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
}

const textEncoder = new TextEncoder();
/** UTF-8 bytes of a string. */
export function utf8(s: string): Uint8Array {
  return textEncoder.encode(s);
}

/** True for a non-negative safe integer. */
export function isIndex(n: unknown): n is number {
  return typeof n === 'number' && Number.isSafeInteger(n) && n >= 0;
}

/** True for a plain object (not an array, not null). */
export function isRecord(x: unknown): x is Record<string, unknown> {
  return typeof x === 'object' && x !== null && !Array.isArray(x) && !(x instanceof Uint8Array);
}

type Latin1Slice = (this: Uint8Array, start: number, end: number) => string;
/** Buffer's own latin1 decoder, called on any bytes directly: no Buffer view object per call. */
const latin1Slice: Latin1Slice =
  (Buffer.prototype as unknown as { latin1Slice?: Latin1Slice }).latin1Slice ??
  function (this: Uint8Array, start: number, end: number): string {
    return Buffer.from(this.buffer, this.byteOffset + start, end - start).toString('latin1');
  };

/** bytes[start, end) (default: all) as a latin1 string: one character per byte, one allocation. */
export function latin1(bytes: Uint8Array, start = 0, end = bytes.byteLength): string {
  return latin1Slice.call(bytes, start, end);
}
