import { describe, expect, it } from 'vitest';
import { promCounter } from '../src/cluster.js';
import { median, workloadOptions } from '../src/compare.js';
import { UsageError, parseCompareOptions, parseFailoverOptions, parseRunOptions } from '../src/options.js';
import { ratio, table } from '../src/report.js';
import { clientsForRank, keyOf } from '../src/workload.js';

describe('options', () => {
  it('has the issue defaults and prefills only for reads', () => {
    const o = parseRunOptions([]);
    expect(o).toMatchObject({ target: 'quorumkv', clients: 64, seconds: 10, valueSize: 256, keys: 10_000, op: 'put', consistency: 'linearizable', procs: 1, prefill: false });
    expect(parseRunOptions(['--op', 'get']).prefill).toBe(true);
    expect(parseRunOptions(['--op', 'get', '--no-prefill']).prefill).toBe(false);
  });

  it('rejects bad values with a usage error that names the flag', () => {
    expect(() => parseRunOptions(['--clients', '0'])).toThrow(UsageError);
    expect(() => parseRunOptions(['--op', 'scan'])).toThrow(/--op/);
    expect(() => parseRunOptions(['--procs', '17'])).toThrow(/--procs/);
    expect(() => parseRunOptions(['--read-ratio', '1.5'])).toThrow(/read-ratio/);
    expect(() => parseRunOptions(['--bogus'])).toThrow(UsageError);
    expect(() => parseCompareOptions(['--endpoints', 'a:1'])).toThrow(/endpoints/);
  });

  it('gives failover its own defaults: 16 clients, 10 rounds, short op timeout', () => {
    const f = parseFailoverOptions([]);
    expect(f).toMatchObject({ clients: 16, rounds: 10, opTimeoutMs: 1000, errorBackoffMs: 10, soak: false, prefill: false });
    expect(parseFailoverOptions(['--soak']).clients).toBe(64);
  });

  it('compare switches only target and op per workload', () => {
    const base = parseCompareOptions(['--clients', '32']);
    expect(workloadOptions(base, 'get', 'etcd')).toMatchObject({ target: 'etcd', op: 'get', prefill: true, clients: 32 });
    expect(workloadOptions(base, 'put', 'quorumkv')).toMatchObject({ target: 'quorumkv', op: 'put', prefill: false });
    // A transfer compares existing keys: the keys are written first.
    expect(workloadOptions(base, 'txn', 'etcd')).toMatchObject({ target: 'etcd', op: 'txn', prefill: true });
    expect(() => parseRunOptions(['--op', 'txn', '--keys', '1'])).toThrow(/at least 2/);
  });
});

describe('helpers', () => {
  it('splits clients over processes without losing any', () => {
    const split = [0, 1, 2].map((r) => clientsForRank(64, 3, r));
    expect(split).toEqual([22, 21, 21]);
    expect(split.reduce((a, b) => a + b)).toBe(64);
  });

  it('formats keys, medians, ratios and tables', () => {
    expect(keyOf('bench/', 42)).toBe('bench/0000000042');
    expect(median([3, 1, null, 2])).toBe(2);
    expect(ratio(300, 100)).toBe('3.00×');
    expect(ratio(1, 0)).toBeNull();
    expect(table(['a', 'b'], [[1, null]])).toBe('| a | b |\n| --- | --- |\n| 1 | – |');
  });

  it('sums a Prometheus counter over its label sets and ignores similar names', () => {
    const text = [
      '# HELP qkv_raft_leader_changes_total Leader changes seen',
      '# TYPE qkv_raft_leader_changes_total counter',
      'qkv_raft_leader_changes_total 3',
      'qkv_raft_leader_changes_total_other 100',
      'etcd_server_leader_changes_seen_total{a="b"} 2',
      'etcd_server_leader_changes_seen_total{a="c"} 1',
    ].join('\n');
    expect(promCounter(text, 'qkv_raft_leader_changes_total')).toBe(3);
    expect(promCounter(text, 'etcd_server_leader_changes_seen_total')).toBe(3);
    expect(promCounter(text, 'missing_total')).toBeNull();
  });
});
