// The storage tests' seeded randomness: xorshift32, uniform in [0, 1). The stored-bytes golden
// digests were taken with exactly this sequence (seed 42), so it must not change.

/** A deterministic [0, 1) source from a 32-bit seed (0 is taken as 1). */
export function prng(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return (x >>> 0) / 0x1_0000_0000;
  };
}
