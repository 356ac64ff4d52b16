// Prometheus metrics (/metrics). One registry per node so that tests can run several nodes in one
// process without their metrics colliding.
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { PeerStats, TransportStats } from '@quorumkv/transport';

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
  readonly fsyncSeconds = new Histogram({
    name: 'qkv_storage_fsync_seconds',
    help: 'Duration of synced log batches',
    buckets: [0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.5, 1],
    registers: [this.registry],
  });
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
  readonly snapshotBytesSent = new Counter({ name: 'qkv_snapshot_bytes_sent_total', help: 'Snapshot bytes sent', registers: [this.registry] });
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
  readonly peerMessagesIgnored = new Gauge({
    name: 'qkv_raft_ignored_messages',
    help: 'Peer messages the core ignored since start (TimeoutNow not from the leader, acks past the last index)',
    registers: [this.registry],
  });
  readonly followerLogRegressions = new Gauge({
    name: 'qkv_raft_follower_log_regressions',
    help: 'Times since start a follower rejected an index it had acknowledged to this leader (it lost acknowledged entries)',
    registers: [this.registry],
  });

  constructor(defaultMetrics = true) {
    if (defaultMetrics) collectDefaultMetrics({ register: this.registry });
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
    gauge('qkv_range_bytes_in_flight', 'Bytes of rows ranges hold (budget: --max-range-bytes-in-flight)', (v) => v.rangeBytes);
    gauge('qkv_buffered_request_bytes', 'Bytes of request bodies and frames held (budget: --max-buffered-request-bytes)', (v) => v.requestBytes);
    gauge('qkv_connections', 'Open connections on the node port (limit: --max-connections)', (v) => v.connections);
  }

  /** Per-peer transport gauges, read from the transport when /metrics is scraped. */
  registerTransport(stats: () => TransportStats): void {
    const perPeer = (name: string, help: string, pick: (p: PeerStats) => number) =>
      new Gauge({
        name,
        help,
        labelNames: ['peer'],
        registers: [this.registry],
        collect() {
          this.reset();
          for (const [peer, p] of Object.entries(stats().peers)) this.set({ peer }, pick(p));
        },
      });
    perPeer('qkv_peer_connected', 'Outbound link to the peer is open', (p) => (p.connected ? 1 : 0));
    perPeer('qkv_peer_queued_messages', 'Messages waiting in the outbound queue', (p) => p.queuedMessages);
    perPeer('qkv_peer_queued_bytes', 'Bytes waiting in the outbound queue', (p) => p.queuedBytes);
    perPeer('qkv_peer_dropped_messages', 'Messages dropped (queue full, disconnected, too large)', (p) => p.droppedQueueFull + p.droppedDisconnected + p.droppedTooLarge);
    perPeer('qkv_peer_reconnects', 'Reconnects of the outbound link', (p) => p.reconnects);
    perPeer('qkv_peer_sent_messages', 'Raft messages sent to the peer (counter)', (p) => p.sentMessages);
    perPeer('qkv_peer_sent_frames', 'Frames (socket writes) sent to the peer (counter)', (p) => p.sentFrames);
    perPeer('qkv_peer_sent_bytes', 'Frame bytes sent to the peer (counter)', (p) => p.sentBytes);
    perPeer('qkv_peer_rtt_ms', 'Last ping round trip (ms)', (p) => p.rttMs ?? -1);
    new Gauge({
      name: 'qkv_peer_refused_connections',
      help: 'Inbound peer connections refused at the handshake',
      registers: [this.registry],
      collect() {
        this.set(stats().refusedConnections);
      },
    });
  }
}
