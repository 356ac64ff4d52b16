// The node's metrics follow the Prometheus naming conventions that dashboards and `promtool check
// metrics` rely on: counters (and only counters) end in `_total`; durations are in seconds and
// sizes in bytes, with the unit as the last word; the transport's since-start tallies are counters,
// not gauges. The real-process twin (test/cluster/health.test.ts) runs promtool on a live node.
import { describe, expect, it } from 'vitest';
import type { PeerStats, TransportStats } from '@quorumkv/transport';
import { NodeMetrics, RecentSamples } from '../src/metrics.js';

/** Name words that are abbreviated or non-base units (Prometheus wants seconds and bytes). */
const NON_BASE_UNIT_WORDS = ['ms', 'us', 'ns', 'sec', 'secs', 'millis', 'milliseconds', 'microseconds', 'nanoseconds', 'minutes', 'hours', 'kb', 'mb', 'gb', 'kib', 'mib', 'gib', 'percent'];
/** Base units that, when a name has one, must be its last word (before `_total`). */
const BASE_UNIT_WORDS = ['seconds', 'bytes'];

function peer(over: Partial<PeerStats> = {}): PeerStats {
  return {
    address: '127.0.0.1:1', state: 'open', connected: true, inboundConnected: true, queuedMessages: 0, queuedBytes: 0, unflushedBytes: 0,
    sentMessages: 0, sentFrames: 0, sentBytes: 0, droppedQueueFull: 0, droppedDisconnected: 0, droppedTooLarge: 0, reconnects: 0,
    rttMs: null, receivedMessages: 0, receivedFrames: 0, receivedBytes: 0, ...over,
  } as PeerStats;
}

/** A registry with every scrape-time hook the server registers, fed from `stats`. */
function fullMetrics(stats: () => TransportStats): NodeMetrics {
  const m = new NodeMetrics();
  m.registerTransport(stats);
  m.registerAdmission(() => ({ rangeBytes: 1, requestBytes: 2, connections: 3 }));
  m.registerCore(() => ({ ignoredMessages: 4, followerLogRegressions: 5 }));
  m.registerFailureDomains(() => true);
  m.registerWatches(() => ({ waiting: 1, windowChanges: 2, windowBytes: 3, historyReads: 4 }));
  m.registerStorageFaults({ faults: { 'disk-full': 1, io: 0 }, current: undefined });
  return m;
}

/** Why `name` (of `type`) breaks a convention, or undefined. */
function namingProblem(name: string, type: string, help: string): string | undefined {
  if (!/^[a-z_][a-z0-9_]*$/.test(name)) return 'not snake_case';
  if (!help.trim()) return 'no help text';
  const isCounter = type === 'counter';
  if (isCounter !== name.endsWith('_total')) return isCounter ? 'a counter without _total' : `a ${type} named like a counter (_total)`;
  const words = name.replace(/_total$/, '').split('_');
  const bad = words.find((w) => NON_BASE_UNIT_WORDS.includes(w));
  if (bad) return `non-base unit "${bad}" (use seconds or bytes)`;
  const unitAt = words.findIndex((w) => BASE_UNIT_WORDS.includes(w));
  if (unitAt >= 0 && unitAt !== words.length - 1) return `unit "${words[unitAt]}" is not the last word`;
  return undefined;
}

describe('metric names', () => {
  it('every metric the node registers follows the naming conventions', async () => {
    const m = fullMetrics(() => ({ peers: { n2: peer({ rttMs: 2 }) }, refusedConnections: 0 }) as unknown as TransportStats);
    const families = await m.registry.getMetricsAsJSON();
    expect(families.length).toBeGreaterThan(30);
    const problems = families.map((f) => [f.name, namingProblem(f.name, String(f.type), f.help)]).filter(([, p]) => p !== undefined);
    expect(problems).toEqual([]);
  });

  it('the transport tallies are counters with the transport values, and the round trip is in seconds', async () => {
    const stats = { peers: { n2: peer({ sentMessages: 7, sentFrames: 5, sentBytes: 900, reconnects: 2, droppedQueueFull: 1, droppedTooLarge: 1, rttMs: 1.5 }), n3: peer() }, refusedConnections: 3 };
    const m = fullMetrics(() => stats as unknown as TransportStats);
    const byName = new Map((await m.registry.getMetricsAsJSON()).map((f) => [f.name, f]));
    const sample = (name: string, peerId?: string) => {
      const f = byName.get(name);
      expect(f, name).toBeDefined();
      return { type: String(f!.type), value: f!.values.find((v) => peerId === undefined || v.labels.peer === peerId)?.value };
    };
    expect(sample('qkv_peer_sent_messages_total', 'n2')).toEqual({ type: 'counter', value: 7 });
    expect(sample('qkv_peer_sent_frames_total', 'n2')).toEqual({ type: 'counter', value: 5 });
    expect(sample('qkv_peer_sent_bytes_total', 'n2')).toEqual({ type: 'counter', value: 900 });
    expect(sample('qkv_peer_reconnects_total', 'n2')).toEqual({ type: 'counter', value: 2 });
    expect(sample('qkv_peer_dropped_messages_total', 'n2')).toEqual({ type: 'counter', value: 2 });
    expect(sample('qkv_peer_refused_connections_total')).toEqual({ type: 'counter', value: 3 });
    expect(sample('qkv_raft_ignored_messages_total')).toEqual({ type: 'counter', value: 4 });
    expect(sample('qkv_raft_follower_log_regressions_total')).toEqual({ type: 'counter', value: 5 });
    expect(sample('qkv_peer_rtt_seconds', 'n2')).toEqual({ type: 'gauge', value: 0.0015 });
    // A peer that never answered a ping has no round trip (no -1 sentinel in a seconds gauge).
    expect(sample('qkv_peer_rtt_seconds', 'n3').value).toBeUndefined();
    expect(sample('qkv_zone_quorum_at_risk')).toEqual({ type: 'gauge', value: 1 });
    // Scraped twice, counters report the tally again rather than adding it up.
    await m.registry.metrics();
    expect((await m.registry.getSingleMetric('qkv_peer_sent_messages_total')!.get()).values.find((v) => v.labels.peer === 'n2')?.value).toBe(7);
  });
});

describe('RecentSamples', () => {
  it('keeps the last N samples and reports their p99 and max', () => {
    const r = new RecentSamples(100);
    expect(r.summary()).toEqual({ samples: 0, p99Seconds: null, maxSeconds: null });
    for (let i = 1; i <= 100; i++) r.add(i / 1000);
    expect(r.summary()).toEqual({ samples: 100, p99Seconds: 0.099, maxSeconds: 0.1 });
    for (let i = 0; i < 100; i++) r.add(0.001); // the slow samples age out
    expect(r.summary()).toEqual({ samples: 100, p99Seconds: 0.001, maxSeconds: 0.001 });
  });
});
