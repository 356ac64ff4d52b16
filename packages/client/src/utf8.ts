// UTF-8 encoding of the keys and values callers pass as strings, without a new ArrayBuffer per
// string. `TextEncoder.encode` allocates one each time (measured on Node 20: ~0.8 µs for a
// 100-character string, the largest single cost of a put); short strings are instead encoded
// into a shared slab and handed out as views of it. Views never overlap and a slab is never
// written twice, so a view stays valid for as long as it is held (it keeps its slab alive).

import { toBytes, type BytesLike } from '@quorumkv/protocol';

/** Size of one slab, in bytes. */
const SLAB_BYTES = 64 * 1024;
/** Longest string encoded into a slab, in UTF-16 code units (at most 3 bytes each); longer ones get their own buffer. */
const SLAB_STRING_CHARS_MAX = 1024;

const encoder = new TextEncoder();
let slab = new Uint8Array(SLAB_BYTES);
let slabUsedBytes = 0;

/**
 * Same bytes as `toBytes` from @quorumkv/protocol (UTF-8, lone surrogates as U+FFFD; byte
 * arrays passed through; anything else an InvalidArgumentError naming `what`), but a short
 * string's bytes are a view into a shared slab. Callers must not write into the result.
 */
export function bytesOf(x: BytesLike, what: string): Uint8Array {
  if (typeof x !== 'string' || x.length > SLAB_STRING_CHARS_MAX) return toBytes(x, what);
  const maxBytes = x.length * 3;
  if (slabUsedBytes + maxBytes > SLAB_BYTES) {
    slab = new Uint8Array(SLAB_BYTES);
    slabUsedBytes = 0;
  }
  const start = slabUsedBytes;
  // The room given is enough for the whole string, so encodeInto never stops early.
  const { written } = encoder.encodeInto(x, slab.subarray(start, start + maxBytes));
  slabUsedBytes = start + written;
  return slab.subarray(start, slabUsedBytes);
}
