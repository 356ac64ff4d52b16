// Cheap, deterministic 32-bit hashes used by the invariant checkers to compare entries and log
// prefixes in O(1). Collisions are possible in principle (2^-32 per comparison) and would only
// hide a violation, never invent one.

const FNV_OFFSET = 0x811c9dc5;
const FNV_PRIME = 0x01000193;

/** FNV-1a over bytes, continuing from `h`. */
export function fnv1a(bytes: Uint8Array, h: number = FNV_OFFSET): number {
  let x = h >>> 0;
  for (let i = 0; i < bytes.length; i++) {
    x ^= bytes[i] as number;
    x = Math.imul(x, FNV_PRIME);
  }
  return x >>> 0;
}

/** Mixes one 32-bit word into `h` (murmur3-style finaliser). */
export function mixWord(h: number, word: number): number {
  let x = (h ^ Math.imul(word | 0, 0xcc9e2d51)) | 0;
  x = Math.imul((x << 13) | (x >>> 19), 5) + 0xe6546b64;
  x ^= x >>> 16;
  x = Math.imul(x, 0x85ebca6b);
  x ^= x >>> 13;
  return x >>> 0;
}

/** The digest of one log entry: its index, term, type and data. */
export function entryDigest(index: number, term: number, type: number, data: Uint8Array): number {
  let h = mixWord(FNV_OFFSET, index);
  h = mixWord(h, Math.floor(index / 4294967296));
  h = mixWord(h, term);
  h = mixWord(h, type);
  return fnv1a(data, h);
}

/**
 * Extends a log-prefix chain: `chain(i) = link(chain(i-1), digest(entry i))`. Two logs have equal
 * chains at index i exactly when (up to hash collisions) their first i entries are identical,
 * which makes the Log Matching check O(1) per entry.
 */
export function chainLink(prev: number, digest: number): number {
  return mixWord(mixWord(prev, digest), 0x5bd1e995);
}

/** The chain value of the empty log (index 0). */
export const EMPTY_CHAIN = 0;
