// Prometheus metrics (/metrics). One registry per node so that tests can run several nodes in one
// process without their metrics colliding.
import { ErrorCauses } from './availability.js';
import { CATCHUP_THROTTLE_STATES } from './catchup-throttle.js';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { PeerStats, TransportStats } from '@quorumkv/transport';
import type { StorageFaultCounts } from './storage-fault.js';

export class NodeMetrics {
  readonly registry = new Registry();
  readonly term = new Gauge({ name: 'qkv_raft_term', help: 'Current Raft term', registers: [this.registry] });
  readonly isLeader = new Gauge({ name: 'qkv_raft_is_leader', help: '1 when this node is the leader', registers: [this.registry] });
  readonly role = new Gauge({
    name: 'qkv_raft_role',
    help: 'Current role (1 for the active one)',
    labelNames: ['role'],
    registers: [this.registry],
  });
  readonly commitIndex = new Gauge({ name: 'qkv_raft_commit_index', help: 'Commit index', registers: [this.registry] });
  readonly appliedIndex = new Gauge({ name: 'qkv_raft_applied_index', help: 'Applied index', registers: [this.registry] });
  readonly leaderChanges = new Counter({ name: 'qkv_raft_leader_changes_total', help: 'Leader changes seen', registers: [this.registry] });
  readonly proposalsPending = new Gauge({ name: 'qkv_proposals_pending', help: 'Writes waiting for commit', registers: [this.registry] });
  readonly readsPending = new Gauge({ name: 'qkv_reads_pending', help: 'Linearizable reads waiting', registers: [this.registry] });
  readonly storageShortfall = new Gauge({
    name: 'qkv_storage_shortfall_entries',
    help: 'Entries this node acknowledged that its log no longer holds (0 normally; above 0 it neither votes nor serves reads)',
    registers: [this.registry],
  });
  readonly busyRejections = new Counter({
    name: 'qkv_busy_rejections_total',
    help: 'Requests refused with QKV_BUSY (load shedding)',
    labelNames: ['kind'],
    registers: [this.registry],
  });
  /** The last FSYNC_RECENT_SAMPLES synced batch durations, for `/v1/status` and `quorumkv health`. */
  readonly fsyncRecent = new RecentSamples(FSYNC_RECENT_SAMPLES);
  /** Synced batch durations since the catch-up throttle's last step (catchup-throttle-loop.ts drains it). */
  readonly fsyncStep = new RecentSamples(STEP_SAMPLES_MAX);
  /** Leader writes' propose → answer latencies since the throttle's last step (node.ts records them). */
  readonly commitStep = new RecentSamples(STEP_SAMPLES_MAX);
  readonly fsyncSeconds = withRecent(
    new Histogram({
      name: 'qkv_storage_fsync_seconds',
      help: 'Duration of synced log batches',
      buckets: [0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.5, 1],
      registers: [this.registry],
    }),
    [this.fsyncRecent, this.fsyncStep],
  );
  readonly applySeconds = new Histogram({
    name: 'qkv_storage_apply_seconds',
    help: 'Duration of apply batches',
    buckets: [0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.5, 1],
    registers: [this.registry],
  });
  readonly batchEntries = new Histogram({
    name: 'qkv_log_batch_entries',
    help: 'Entries per synced log batch (group commit)',
    buckets: [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096],
    registers: [this.registry],
  });
  readonly peerLag = new Gauge({
    name: 'qkv_peer_lag_entries',
    help: 'Leader only: entries a follower is behind',
    labelNames: ['peer'],
    registers: [this.registry],
  });
  readonly requests = new Counter({
    name: 'qkv_requests_total',
    help: 'Client requests by operation and outcome',
    labelNames: ['op', 'outcome'],
    registers: [this.registry],
  });
  readonly snapshotsSent = new Counter({ name: 'qkv_snapshots_sent_total', help: 'Snapshots sent', labelNames: ['outcome'], registers: [this.registry] });
  readonly snapshotBytesSent = new Counter({ name: 'qkv_snapshot_sent_bytes_total', help: 'Snapshot bytes sent', registers: [this.registry] });
  readonly snapshotSendSeconds = new Histogram({
    name: 'qkv_snapshot_send_seconds',
    help: 'Duration of snapshot transfers',
    buckets: [0.1, 0.5, 1, 2, 5, 10, 30, 60, 120, 300],
    registers: [this.registry],
  });
  readonly snapshotsInstalled = new Counter({ name: 'qkv_snapshots_installed_total', help: 'Snapshots installed', registers: [this.registry] });
  readonly peerMessagesRefused = new Counter({
    name: 'qkv_peer_messages_refused_total',
    help: 'Peer messages the core refused as impossible (QKV_BAD_MESSAGE); each closed its connection',
    registers: [this.registry],
  });

  /** Errors answered to clients, by API and cause (availability.ts). */
  readonly requestErrors = new Counter({
    name: 'qkv_request_errors_total',
    help: 'Errors answered to clients, by API (http, client) and cause (the error code without QKV_, lower case)',
    labelNames: ['api', 'cause'],
    registers: [this.registry],
  });
  private readonly causes = new ErrorCauses();

  /** Counts one error answered on `api` with the stable error `code` (e.g. QKV_NO_LEADER). */
  countError(api: 'http' | 'client', code: string): void {
    this.requestErrors.inc({ api, cause: this.causes.label(code) });
  }

  /**
   * `qkv_leaderless_seconds_total` (seconds this node spent without a known leader, the summed
   * failover time) and `qkv_uptime_seconds`, read when /metrics is scraped.
   */
  registerAvailability(read: () => { leaderlessSeconds: number; uptimeSeconds: number }): void {
    counterFrom(this.registry, {
      name: 'qkv_leaderless_seconds_total',
      help: 'Seconds this node spent without a known leader since it started (failover time, summed)',
      read: () => read().leaderlessSeconds,
    });
    new Gauge({
      name: 'qkv_uptime_seconds',
      help: 'Seconds since this node started',
      registers: [this.registry],
      collect() {
        this.set(read().uptimeSeconds);
      },
    });
  }

  constructor(defaultMetrics = true) {
    if (defaultMetrics) {
      collectDefaultMetrics({ register: this.registry });
      // prom-client types these as gauges with a `_total` suffix, which Prometheus reserves for
      // counters; the same numbers are in nodejs_active_handles / _requests / _resources.
      for (const name of NON_COUNTER_TOTALS) this.registry.removeSingleMetric(name);
    }
  }

  /**
   * Counters the Raft core keeps since start (ignored messages, follower log regressions), read
   * when /metrics is scraped. Both are also in /v1/status under `peerSafety`.
   */
  registerCore(read: () => { ignoredMessages: number; followerLogRegressions: number }): void {
    counterFrom(this.registry, {
      name: 'qkv_raft_ignored_messages_total',
      help: 'Peer messages the core ignored (TimeoutNow not from the leader, acks past the last index)',
      read: () => read().ignoredMessages,
    });
    counterFrom(this.registry, {
      name: 'qkv_raft_follower_log_regressions_total',
      help: 'Times a follower rejected an index it had acknowledged to this leader (it lost acknowledged entries)',
      read: () => read().followerLogRegressions,
    });
  }

  /**
   * `qkv_peer_messages_other_incarnation_total`: peer messages dropped because their sender's
   * incarnation is not the one this node knows it as (identity-guard.ts, admits), read when
   * /metrics is scraped. Also in /v1/status under `peerSafety`.
   */
  registerIdentity(dropped: () => number): void {
    counterFrom(this.registry, {
      name: 'qkv_peer_messages_other_incarnation_total',
      help: 'Peer messages dropped: votes, acknowledgements and the like from an incarnation this node does not know the peer as',
      read: dropped,
    });
  }

  /**
   * `qkv_zone_quorum_at_risk`: 1 while one zone holds a quorum of the voters (losing that zone
   * stops the cluster), read from `atRisk` when /metrics is scraped.
   */
  registerFailureDomains(atRisk: () => boolean): void {
    new Gauge({
      name: 'qkv_zone_quorum_at_risk',
      help: 'One zone holds a quorum of the voters: losing that zone stops the cluster (1) or not (0)',
      registers: [this.registry],
      collect() {
        this.set(atRisk() ? 1 : 0);
      },
    });
  }

  /**
   * The operator switches (ops-switches.ts) as gauges, 1 while on: `qkv_maintenance_mode` and
   * `qkv_snapshot_sends_paused`.
   */
  registerOpsSwitches(read: () => { maintenance: boolean; snapshotSendsPaused: boolean }): void {
    new Gauge({
      name: 'qkv_maintenance_mode',
      help: 'Maintenance mode: membership changes and automatic leader transfers are refused (1) or not (0)',
      registers: [this.registry],
      collect() {
        this.set(read().maintenance ? 1 : 0);
      },
    });
    new Gauge({
      name: 'qkv_snapshot_sends_paused',
      help: 'Catch-up snapshot sends are paused on this node (1) or not (0)',
      registers: [this.registry],
      collect() {
        this.set(read().snapshotSendsPaused ? 1 : 0);
      },
    });
  }

  /**
   * `qkv_storage_writable` (1; the stand-in of storage-fault.ts serves 0 while the node is stopped
   * on a failed write) and `qkv_storage_faults_total{kind}`, counted across restarts in the process.
   */
  registerStorageFaults(counts: StorageFaultCounts): void {
    new Gauge({
      name: 'qkv_storage_writable',
      help: '1 while the node can persist; 0 while it is stopped on a failed disk write',
      registers: [this.registry],
      collect() {
        this.set(counts.current ? 0 : 1);
      },
    });
    new Counter({
      name: 'qkv_storage_faults_total',
      help: 'Failed disk writes that stopped the node, by kind',
      labelNames: ['kind'],
      registers: [this.registry],
      collect() {
        this.reset();
        for (const kind of ['disk-full', 'io'] as const) this.inc({ kind }, counts.faults[kind]);
      },
    });
  }

  /**
   * `qkv_catchup_rate_bytes_per_second` (the rate catch-up snapshot sends are held to now; 0 =
   * unlimited) and `qkv_catchup_throttle_state` (1 for the adaptive throttle's current state).
   */
  registerCatchupThrottle(read: () => { effectiveBytesPerSec: number; mode: string; state?: string }): void {
    new Gauge({
      name: 'qkv_catchup_rate_bytes_per_second',
      help: 'Rate catch-up snapshot sends are held to now, bytes per second (0 = unlimited)',
      registers: [this.registry],
      collect() {
        this.set(read().effectiveBytesPerSec);
      },
    });
    new Gauge({
      name: 'qkv_catchup_throttle_state',
      help: 'Adaptive catch-up throttle state (1 for the current one; all 0 with --catchup-throttle fixed)',
      labelNames: ['state'],
      registers: [this.registry],
      collect() {
        const now = read().state;
        for (const s of CATCHUP_THROTTLE_STATES) this.set({ state: s }, s === now ? 1 : 0);
      },
    });
  }

  /**
   * `qkv_data_dir_free_bytes` and `qkv_data_dir_capacity_bytes`: the file system holding the data
   * directory, read (statfs) when /metrics is scraped; absent when it cannot be read.
   */
  registerDisk(read: () => { freeBytes: number; capacityBytes: number } | undefined): void {
    const gauge = (name: string, help: string, pick: (v: { freeBytes: number; capacityBytes: number }) => number) =>
      new Gauge({
        name,
        help,
        registers: [this.registry],
        collect() {
          const v = read();
          if (v) this.set(pick(v));
          else this.reset();
        },
      });
    gauge('qkv_data_dir_free_bytes', 'Bytes available to this node on the file system of its data directory', (v) => v.freeBytes);
    gauge('qkv_data_dir_capacity_bytes', 'Size in bytes of the file system of its data directory', (v) => v.capacityBytes);
  }

  /** Admission gauges (src/admission.ts), read when /metrics is scraped. */
  registerAdmission(read: () => { rangeBytes: number; requestBytes: number; connections: number }): void {
    const gauge = (name: string, help: string, pick: (v: ReturnType<typeof read>) => number) =>
      new Gauge({
        name,
        help,
        registers: [this.registry],
        collect() {
          this.set(pick(read()));
        },
      });
    gauge('qkv_range_in_flight_bytes', 'Bytes of rows ranges hold (budget: --max-range-bytes-in-flight)', (v) => v.rangeBytes);
    gauge('qkv_buffered_request_bytes', 'Bytes of request bodies and frames held (budget: --max-buffered-request-bytes)', (v) => v.requestBytes);
    gauge('qkv_connections', 'Open connections on the node port (limit: --max-connections)', (v) => v.connections);
  }

  /** The watch hub's state, read when /metrics is scraped (watch-hub.ts). */
  registerWatches(read: () => { waiting: number; windowChanges: number; windowBytes: number; historyReads: number }): void {
    const gauge = (name: string, help: string, pick: (v: ReturnType<typeof read>) => number) =>
      new Gauge({
        name,
        help,
        registers: [this.registry],
        collect() {
          this.set(pick(read()));
        },
      });
    gauge('qkv_watchers_waiting', 'Watch requests waiting for changes (limit: --max-watchers)', (v) => v.waiting);
    gauge('qkv_watch_window_changes', 'Recent key changes held in memory for watchers in step (limit: --watch-window-changes)', (v) => v.windowChanges);
    gauge('qkv_watch_window_bytes', 'Bytes of the recent key changes held for watchers', (v) => v.windowBytes);
    counterFrom(this.registry, { name: 'qkv_watch_history_reads_total', help: 'Watch answers read from history (watchers behind the in-memory window)', read: () => read().historyReads });
  }

  /**
   * Per-peer transport metrics, read from the transport when /metrics is scraped: the queue and
   * link state as gauges, the transport's since-start tallies as counters.
   */
  registerTransport(stats: () => TransportStats): void {
    const perPeer = (name: string, help: string, pick: (p: PeerStats) => number | null) =>
      new Gauge({
        name,
        help,
        labelNames: ['peer'],
        registers: [this.registry],
        collect() {
          this.reset();
          for (const [peer, p] of Object.entries(stats().peers)) {
            const v = pick(p);
            if (v !== null) this.set({ peer }, v);
          }
        },
      });
    const perPeerCounter = (name: string, help: string, pick: (p: PeerStats) => number) =>
      new Counter({
        name,
        help,
        labelNames: ['peer'],
        registers: [this.registry],
        collect() {
          this.reset();
          for (const [peer, p] of Object.entries(stats().peers)) this.inc({ peer }, pick(p));
        },
      });
    perPeer('qkv_peer_connected', 'Outbound link to the peer is open', (p) => (p.connected ? 1 : 0));
    perPeer('qkv_peer_queued_messages', 'Messages waiting in the outbound queue', (p) => p.queuedMessages);
    perPeer('qkv_peer_queued_bytes', 'Bytes waiting in the outbound queue', (p) => p.queuedBytes);
    // No sample for a peer that has not answered a ping yet (there is no round trip to report).
    perPeer('qkv_peer_rtt_seconds', 'Last ping round trip to the peer', (p) => (p.rttMs === null ? null : p.rttMs / 1000));
    perPeerCounter('qkv_peer_dropped_messages_total', 'Messages dropped (queue full, disconnected, too large)', (p) => p.droppedQueueFull + p.droppedDisconnected + p.droppedTooLarge);
    perPeerCounter('qkv_peer_reconnects_total', 'Reconnects of the outbound link', (p) => p.reconnects);
    perPeerCounter('qkv_peer_sent_messages_total', 'Raft messages sent to the peer', (p) => p.sentMessages);
    perPeerCounter('qkv_peer_sent_frames_total', 'Frames (socket writes) sent to the peer', (p) => p.sentFrames);
    perPeerCounter('qkv_peer_sent_bytes_total', 'Frame bytes sent to the peer', (p) => p.sentBytes);
    counterFrom(this.registry, {
      name: 'qkv_peer_refused_connections_total',
      help: 'Inbound peer connections refused at the handshake',
      read: () => stats().refusedConnections,
    });
  }
}

/** prom-client default metrics that are gauges named like counters (removed, see the constructor). */
const NON_COUNTER_TOTALS = ['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total'];

/**
 * A counter whose value is a since-start tally kept elsewhere, read when /metrics is scraped.
 * (prom-client counters only go up; reset-then-inc publishes the tally as it is.)
 */
function counterFrom(registry: Registry, o: { name: string; help: string; read: () => number }): Counter {
  return new Counter({
    name: o.name,
    help: o.help,
    registers: [registry],
    collect() {
      this.reset();
      this.inc(o.read());
    },
  });
}

/** How many recent synced-batch durations `/v1/status` summarises (its `fsync` field). */
export const FSYNC_RECENT_SAMPLES = 512;

/**
 * Samples one step of the catch-up throttle holds at most (the newest win): far more than one
 * step sees at the measured write rates, so the p99 is over every sample of the step.
 */
export const STEP_SAMPLES_MAX = 4096;

/** A fixed-size ring of the most recent samples (seconds) with a nearest-rank quantile. */
export class RecentSamples {
  private readonly ring: Float64Array;
  private next = 0;
  private filled = 0;

  constructor(readonly capacity: number) {
    this.ring = new Float64Array(capacity);
  }

  add(v: number): void {
    this.ring[this.next] = v;
    this.next = (this.next + 1) % this.capacity;
    this.filled = Math.min(this.filled + 1, this.capacity);
  }

  /** The p99 of the samples held (null while empty), then forgets them: one step's p99. */
  takeP99(): number | null {
    const p99 = this.summary().p99Seconds;
    this.next = 0;
    this.filled = 0;
    return p99;
  }

  /** Count, p99 and max of the samples held (null quantiles while empty). */
  summary(): { samples: number; p99Seconds: number | null; maxSeconds: number | null } {
    if (this.filled === 0) return { samples: 0, p99Seconds: null, maxSeconds: null };
    const sorted = Array.from(this.ring.subarray(0, this.filled)).sort((a, b) => a - b);
    const rank = Math.ceil(0.99 * sorted.length) - 1;
    return { samples: sorted.length, p99Seconds: sorted[rank]!, maxSeconds: sorted[sorted.length - 1]! };
  }
}

/** Makes an unlabelled histogram's `observe(v)` also record `v` in each of `recent`. */
function withRecent(h: Histogram, recent: RecentSamples[]): Histogram {
  const observe = h.observe.bind(h) as (v: number) => void;
  h.observe = ((v: number) => {
    for (const r of recent) r.add(v);
    observe(v);
  }) as Histogram['observe'];
  return h;
}
