// A small seeded PRNG for deterministic simulation. The generator is sfc32 (Chris Doty-Humphrey's
// "small fast chaotic" generator, 128 bits of state, passes PractRand/BigCrush), seeded by
// splitmix32 so that neighbouring seeds (1, 2, 3, …) give unrelated streams.
import type { RandomSource } from '@quorumkv/raft';

const TWO_POW_32 = 4294967296;

/** One step of splitmix32: turns any 32-bit value into a well-mixed 32-bit value. */
export function splitmix32(x: number): number {
  let z = (x + 0x9e3779b9) | 0;
  z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
  z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
  return (z ^ (z >>> 16)) >>> 0;
}

/**
 * A seeded pseudo-random source (sfc32). Implements the core's `RandomSource`, plus the helpers
 * a simulation needs. The same seed always gives the same sequence.
 *
 * @example
 *   const rng = new Prng(42);
 *   rng.int(6);          // 0..5
 *   rng.chance(0.1);     // true about one time in ten
 *   const child = rng.fork(7); // an independent stream, stable under changes to the parent's use
 */
export class Prng implements RandomSource {
  private a: number;
  private b: number;
  private c: number;
  private d: number;
  private readonly seedLo: number;
  private readonly seedHi: number;

  /** `seed` is any integer; only its low 32 bits (and, for larger seeds, the high bits) are used. */
  constructor(seed: number) {
    const lo = seed >>> 0;
    const hi = Math.floor(seed / TWO_POW_32) >>> 0;
    this.seedLo = lo;
    this.seedHi = hi;
    this.a = splitmix32(lo);
    this.b = splitmix32(this.a ^ hi);
    this.c = splitmix32(this.b + 1);
    this.d = 1;
    // Discard the first outputs: sfc32's authors recommend a short warm-up.
    for (let i = 0; i < 12; i++) this.nextUint32();
  }

  /** A uniform 32-bit unsigned integer. */
  nextUint32(): number {
    const t = (((this.a + this.b) | 0) + this.d) | 0;
    this.d = (this.d + 1) | 0;
    this.a = this.b ^ (this.b >>> 9);
    this.b = (this.c + (this.c << 3)) | 0;
    this.c = (this.c << 21) | (this.c >>> 11);
    this.c = (this.c + t) | 0;
    return t >>> 0;
  }

  /** A uniform float in [0, 1). */
  float(): number {
    return this.nextUint32() / TWO_POW_32;
  }

  /** A uniform integer in [0, n). `n` must be a positive integer ≤ 2^32. */
  int(n: number): number {
    if (!Number.isInteger(n) || n <= 0 || n > TWO_POW_32) throw new RangeError(`Prng.int: bad bound ${n}`);
    return Math.floor(this.float() * n);
  }

  /** A uniform integer in [lo, hi] (both inclusive). */
  range(lo: number, hi: number): number {
    return lo + this.int(hi - lo + 1);
  }

  /** True with probability `p` (0 never, 1 always). */
  chance(p: number): boolean {
    return p > 0 && this.float() < p;
  }

  /** A uniformly chosen element; throws on an empty array. */
  pick<T>(items: readonly T[]): T {
    if (items.length === 0) throw new RangeError('Prng.pick: empty array');
    return items[this.int(items.length)] as T;
  }

  /** Shuffles `items` in place (Fisher–Yates) and returns it. */
  shuffle<T>(items: T[]): T[] {
    for (let i = items.length - 1; i > 0; i--) {
      const j = this.int(i + 1);
      const tmp = items[i] as T;
      items[i] = items[j] as T;
      items[j] = tmp;
    }
    return items;
  }

  /**
   * An independent generator derived from this one's seed and `label` (not from its current
   * state, so it does not matter when it is called): giving each concern (network, each node,
   * workload) its own fork keeps a change in one from reshuffling the others.
   */
  fork(label: number): Prng {
    const lo = splitmix32(this.seedLo ^ splitmix32(label));
    const hi = splitmix32(this.seedHi ^ splitmix32(lo + label)) & 0x1fffff; // stay below 2^53
    return new Prng(lo + TWO_POW_32 * hi);
  }
}

/**
 * mulberry32: a tiny seeded generator, uniform in [0, 1). For tests (jitter sources, generated
 * inputs) whose printed seeds replay this exact sequence; simulations use {@link Prng}.
 */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / TWO_POW_32;
  };
}

/**
 * xorshift32, uniform in [0, 1); seed 0 is taken as 1. The storage stored-bytes golden digests were
 * taken with exactly this sequence (seed 42), so it must not change.
 */
export function xorshift32(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return (x >>> 0) / TWO_POW_32;
  };
}
