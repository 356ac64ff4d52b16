import { describe, expect, it } from 'vitest';
import { BUCKET_COUNT, Histogram, bucketOf, bucketRange } from '../src/histogram.js';

describe('histogram buckets', () => {
  it('maps every value into a bucket whose range contains it, within 1.6 % relative width', () => {
    for (const v of [0, 1, 127, 128, 129, 255, 256, 1000, 4095, 65_537, 1_000_000, 123_456_789, 2 ** 36]) {
      const i = bucketOf(v);
      expect(i).toBeGreaterThanOrEqual(0);
      expect(i).toBeLessThan(BUCKET_COUNT);
      const { lowUs, highUs } = bucketRange(i);
      expect(lowUs).toBeLessThanOrEqual(v);
      expect(highUs).toBeGreaterThanOrEqual(v);
      if (v >= 128) expect((highUs - lowUs + 1) / lowUs).toBeLessThanOrEqual(1 / 64);
    }
  });

  it('is monotonic and its ranges tile the number line without holes', () => {
    let prevHigh = -1;
    for (let i = 0; i < BUCKET_COUNT; i++) {
      const { lowUs, highUs } = bucketRange(i);
      expect(lowUs).toBe(prevHigh + 1);
      expect(bucketOf(lowUs)).toBe(i);
      expect(bucketOf(highUs)).toBe(i);
      prevHigh = highUs;
    }
  });

  it('clamps huge and negative values instead of failing', () => {
    expect(bucketOf(1e30)).toBe(BUCKET_COUNT - 1);
    expect(bucketOf(-5)).toBe(0);
  });
});

describe('Histogram', () => {
  it('reports percentiles within bucket precision of the exact ones', () => {
    const h = new Histogram();
    for (let i = 1; i <= 10_000; i++) h.recordMs(i / 10); // 0.1 .. 1000 ms uniformly
    const s = h.summary();
    expect(s.count).toBe(10_000);
    expect(s.p50Ms!).toBeCloseTo(500, -1);
    expect(Math.abs(s.p99Ms! - 990) / 990).toBeLessThan(0.01);
    expect(Math.abs(s.p999Ms! - 999) / 999).toBeLessThan(0.01);
    expect(s.maxMs).toBe(1000);
    expect(s.meanMs!).toBeCloseTo(500.05, 1);
  });

  it('merges snapshots from several processes into the same result as one histogram', () => {
    const whole = new Histogram();
    const parts = [new Histogram(), new Histogram(), new Histogram()];
    for (let i = 0; i < 3000; i++) {
      const v = ((i * 7919) % 997) / 3;
      whole.recordMs(v);
      parts[i % 3]!.recordMs(v);
    }
    const merged = new Histogram();
    for (const p of parts) merged.merge(structuredClone(p.snapshot()));
    expect(merged.summary()).toEqual(whole.summary());
  });

  it('gives nulls when empty and rejects a corrupt snapshot', () => {
    expect(new Histogram().summary()).toEqual({ count: 0, meanMs: null, p50Ms: null, p90Ms: null, p99Ms: null, p999Ms: null, maxMs: null });
    const h = new Histogram();
    expect(() => h.merge({ pairs: [[BUCKET_COUNT, 1]], count: 1, sumUs: 1, minUs: 1, maxUs: 1 })).toThrow(/bad bucket/);
  });
});
