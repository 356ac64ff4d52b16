// Byte helpers shared by both ends (browser-safe: TextEncoder/TextDecoder only).

import { InvalidArgumentError } from './errors.js';

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** A key or value as callers pass it: a string (UTF-8 encoded) or raw bytes. */
export type BytesLike = string | Uint8Array;

/** UTF-8 encodes a string; passes bytes through. Throws {@link InvalidArgumentError} otherwise. */
export function toBytes(x: BytesLike, what = 'value'): Uint8Array {
  if (typeof x === 'string') return encoder.encode(x);
  if (x instanceof Uint8Array) return x;
  throw new InvalidArgumentError(`${what} must be a string or a Uint8Array`);
}

/** Decodes UTF-8 (invalid sequences become U+FFFD). */
export function utf8(bytes: Uint8Array): string {
  return decoder.decode(bytes);
}

type Latin1Slice = (this: Uint8Array, start: number, end: number) => string;
/** Node's Buffer latin1 decoder, called on plain bytes too (absent in browsers). */
const latin1Slice = (globalThis as { Buffer?: { prototype: { latin1Slice?: Latin1Slice } } }).Buffer?.prototype.latin1Slice;

/**
 * bytes[start, end) as a string when every byte is ASCII, else undefined. One string allocation
 * (building it a character at a time made ~1 KB of garbage per session id on the hot path).
 */
export function asciiString(bytes: Uint8Array, start: number, end: number): string | undefined {
  for (let i = start; i < end; i++) if ((bytes[i] as number) >= 0x80) return undefined;
  if (latin1Slice) return latin1Slice.call(bytes, start, end);
  return String.fromCharCode.apply(null, bytes.subarray(start, end) as unknown as number[]);
}

/** Lexicographic byte order: negative, zero or positive like `Array.prototype.sort` wants. */
export function compareBytes(a: Uint8Array, b: Uint8Array): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const d = (a[i] as number) - (b[i] as number);
    if (d !== 0) return d;
  }
  return a.length - b.length;
}

/**
 * The smallest key greater than every key with this prefix, or null when there is none
 * (empty prefix, or all 0xff bytes). Range [prefix, prefixEnd(prefix)) is "keys with prefix".
 */
export function prefixEnd(prefix: Uint8Array): Uint8Array | null {
  for (let i = prefix.length - 1; i >= 0; i--) {
    if (prefix[i] !== 0xff) {
      // Copy: on a Node Buffer, .slice() is a view and the increment would corrupt the caller's prefix.
      const end = Uint8Array.from(prefix.subarray(0, i + 1));
      end[i] = (end[i] as number) + 1;
      return end;
    }
  }
  return null;
}

/** The half-open key interval a range request covers: [startInclusive, endExclusive or +inf). */
export interface KeyInterval {
  startInclusive: Uint8Array;
  endExclusive: Uint8Array | null;
}

/**
 * The interval a range request reads, with its `after` cursor applied (keys strictly greater
 * than `after`). Pure; both the server and fakes use it so they agree.
 */
export function rangeInterval(args: {
  prefix?: Uint8Array;
  start?: Uint8Array;
  end?: Uint8Array;
  after?: Uint8Array;
}): KeyInterval {
  let startInclusive = args.prefix ?? args.start ?? new Uint8Array(0);
  const endExclusive = args.prefix ? prefixEnd(args.prefix) : (args.end ?? null);
  if (args.after) {
    // The smallest key strictly greater than `after` is `after` + 0x00.
    const next = new Uint8Array(args.after.length + 1);
    next.set(args.after);
    if (compareBytes(next, startInclusive) > 0) startInclusive = next;
  }
  return { startInclusive, endExclusive };
}

/** True when `key` lies in the interval. */
export function inInterval(key: Uint8Array, iv: KeyInterval): boolean {
  return compareBytes(key, iv.startInclusive) >= 0 && (iv.endExclusive === null || compareBytes(key, iv.endExclusive) < 0);
}
