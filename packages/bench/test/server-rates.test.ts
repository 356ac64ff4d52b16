import { describe, expect, it } from 'vitest';
import { histogramCounters } from '../src/cluster.js';
import { serverRates } from '../src/load.js';

describe('server counters', () => {
  it('reads _sum and _count of the histograms from a Prometheus exposition', () => {
    const text = [
      'qkv_storage_fsync_seconds_bucket{le="0.001"} 5',
      'qkv_storage_fsync_seconds_sum 0.5',
      'qkv_storage_fsync_seconds_count 100',
      'qkv_log_batch_entries_sum 800',
      'qkv_log_batch_entries_count 100',
    ].join('\n');
    expect(histogramCounters(text, { fsync: 'qkv_storage_fsync_seconds', batch: 'qkv_log_batch_entries' })).toEqual({
      fsyncSum: 0.5, fsyncCount: 100, batchSum: 800, batchCount: 100,
    });
  });

  it('turns two samples into fsyncs/s, mean fsync ms and entries per batch, null where unknown', () => {
    const a = { n1: { fsyncSum: 1, fsyncCount: 100, batchSum: 100, batchCount: 100 }, n2: {} };
    const b = { n1: { fsyncSum: 3, fsyncCount: 1100, batchSum: 8100, batchCount: 1100 }, n2: {} };
    expect(serverRates(a, b, 10)).toEqual({
      n1: { fsyncsPerSec: 100, fsyncMeanMs: 2, batchMeanEntries: 8 },
      n2: { fsyncsPerSec: null, fsyncMeanMs: null, batchMeanEntries: null },
    });
  });
});
