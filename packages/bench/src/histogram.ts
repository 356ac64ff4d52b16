// A mergeable latency histogram with bounded memory: log-linear buckets (HDR style) over integer
// microseconds, relative error below 1 % (64 sub-buckets per power of two). Workers in separate
// processes each fill one; the coordinator merges the sparse snapshots they send.

/** Values below this are counted exactly (one bucket per microsecond). */
const LINEAR_LIMIT_US = 128;
/** Sub-buckets per power of two above LINEAR_LIMIT_US. */
const SUB_BUCKETS = 64;
/** Largest power of two tracked; larger values are clamped (2^36 µs ≈ 19 hours). */
const MAX_EXPONENT = 36;
/** Number of buckets: the linear range, then SUB_BUCKETS per power of two from 2^7 up. */
export const BUCKET_COUNT = LINEAR_LIMIT_US + (MAX_EXPONENT - 7 + 1) * SUB_BUCKETS;
const MAX_VALUE_US = 2 ** (MAX_EXPONENT + 1) - 1;

/** The bucket index of a value in microseconds (pure). */
export function bucketOf(valueUs: number): number {
  const v = Math.min(MAX_VALUE_US, Math.max(0, Math.floor(valueUs)));
  if (v < LINEAR_LIMIT_US) return v;
  const bitLength = Math.floor(Math.log2(v)) + 1; // >= 8
  const shift = bitLength - 7; // top 7 bits kept: value >> shift is in [64, 127]
  const top = Math.floor(v / 2 ** shift);
  return LINEAR_LIMIT_US + (shift - 1) * SUB_BUCKETS + (top - SUB_BUCKETS);
}

/** The smallest and largest microsecond value that falls into bucket `index` (pure). */
export function bucketRange(index: number): { lowUs: number; highUs: number } {
  if (index < LINEAR_LIMIT_US) return { lowUs: index, highUs: index };
  const rel = index - LINEAR_LIMIT_US;
  const shift = Math.floor(rel / SUB_BUCKETS) + 1;
  const top = (rel % SUB_BUCKETS) + SUB_BUCKETS;
  const lowUs = top * 2 ** shift;
  return { lowUs, highUs: lowUs + 2 ** shift - 1 };
}

/** A serialisable, sparse form of a histogram: [bucket, count] pairs plus exact extremes. */
export interface HistogramSnapshot {
  pairs: Array<[number, number]>;
  count: number;
  sumUs: number;
  minUs: number;
  maxUs: number;
}

/** Percentiles and extremes in milliseconds. Null fields when nothing was recorded. */
export interface LatencySummary {
  count: number;
  meanMs: number | null;
  p50Ms: number | null;
  p90Ms: number | null;
  p99Ms: number | null;
  p999Ms: number | null;
  maxMs: number | null;
}

/** A latency histogram. `record` is O(1) and allocation-free. */
export class Histogram {
  private readonly counts = new Float64Array(BUCKET_COUNT);
  private count = 0;
  private sumUs = 0;
  private minUs = Number.POSITIVE_INFINITY;
  private maxUs = 0;

  /** Records one latency in milliseconds (fractions kept to the microsecond). */
  recordMs(latencyMs: number): void {
    const us = Math.max(0, Math.round(latencyMs * 1000));
    this.counts[bucketOf(us)]! += 1;
    this.count += 1;
    this.sumUs += us;
    if (us < this.minUs) this.minUs = us;
    if (us > this.maxUs) this.maxUs = us;
  }

  /** Number of recorded values. */
  get total(): number {
    return this.count;
  }

  /** Adds every value of `s` to this histogram. */
  merge(s: HistogramSnapshot): void {
    for (const [index, n] of s.pairs) {
      if (!Number.isInteger(index) || index < 0 || index >= BUCKET_COUNT || !(n >= 0)) {
        throw new Error(`histogram snapshot has a bad bucket [${index}, ${n}]`);
      }
      this.counts[index]! += n;
    }
    this.count += s.count;
    this.sumUs += s.sumUs;
    if (s.count > 0) {
      this.minUs = Math.min(this.minUs, s.minUs);
      this.maxUs = Math.max(this.maxUs, s.maxUs);
    }
  }

  /** The sparse form, to send to another process. */
  snapshot(): HistogramSnapshot {
    const pairs: Array<[number, number]> = [];
    for (let i = 0; i < BUCKET_COUNT; i++) if (this.counts[i]! > 0) pairs.push([i, this.counts[i]!]);
    return { pairs, count: this.count, sumUs: this.sumUs, minUs: this.count ? this.minUs : 0, maxUs: this.maxUs };
  }

  /**
   * The value at quantile `q` (0 < q <= 1) in ms: the middle of the bucket holding the
   * ceil(q·count)-th smallest value, clamped to the exact min and max. Null when empty.
   */
  quantileMs(q: number): number | null {
    if (this.count === 0) return null;
    const rank = Math.max(1, Math.ceil(q * this.count));
    let seen = 0;
    for (let i = 0; i < BUCKET_COUNT; i++) {
      seen += this.counts[i]!;
      if (seen >= rank) {
        const { lowUs, highUs } = bucketRange(i);
        const midUs = Math.min(this.maxUs, Math.max(this.minUs, (lowUs + highUs) / 2));
        return midUs / 1000;
      }
    }
    return this.maxUs / 1000;
  }

  /** p50/p90/p99/p99.9/max/mean in ms, rounded to microseconds. */
  summary(): LatencySummary {
    const r = (x: number | null): number | null => (x === null ? null : Math.round(x * 1000) / 1000);
    return {
      count: this.count,
      meanMs: this.count ? r(this.sumUs / this.count / 1000) : null,
      p50Ms: r(this.quantileMs(0.5)),
      p90Ms: r(this.quantileMs(0.9)),
      p99Ms: r(this.quantileMs(0.99)),
      p999Ms: r(this.quantileMs(0.999)),
      maxMs: this.count ? r(this.maxUs / 1000) : null,
    };
  }
}
