// What the status page polls: `GET /v1/events` (this node's leader changes over the last hour and
// its request tallies) and `GET /v1/cluster` (every member's status and events, asked by this node
// with a short timeout and bounded concurrency, judged by the same rules as `quorumkv health`).
// The page only ever talks to the node it was loaded from (same origin, no CORS).
import type { ConnectionOptions } from 'node:tls';
import { fetchNode } from './node-fetch.js';
import type { QuorumKvNode } from './node.js';
import { assessHealth, errorText, fetchStatus, HEALTH_MAX_FSYNC_MS_DEFAULT, HEALTH_MAX_LAG_ENTRIES_DEFAULT, type ClusterHealth, type Probe, type StatusAnswer } from './health-cli.js';
import { LEADER_HISTORY_WINDOW_MS, type LeaderChangeEvent } from './leader-history.js';

/** How long the fan-out waits for one member before calling it unreachable. */
export const CLUSTER_PROBE_TIMEOUT_MS = 1000;
/** Most member requests one fan-out has in flight at once. */
export const CLUSTER_PROBE_CONCURRENCY = 8;

/** `GET /v1/events` of one node. */
export interface NodeEvents {
  id: string;
  nowMs: number;
  /** Leader changes this node saw in the last hour, oldest first (a bounded ring: see `droppedLeaderChanges`). */
  leaderChanges: LeaderChangeEvent[];
  droppedLeaderChanges: number;
  /** Since-start request tallies by operation: answered ok, and failed (any error code). */
  requests: Record<string, { ok: number; failed: number }>;
  /** Since-start apply batches: count and total seconds (the page turns deltas into a mean). */
  apply: { count: number; sumSeconds: number };
}

/** One member in `GET /v1/cluster`. */
export interface MemberView {
  id: string;
  address: string;
  status: StatusAnswer | null;
  events: NodeEvents | null;
  error: string | null;
}

/** `GET /v1/cluster`. */
export interface ClusterView {
  from: string;
  nowMs: number;
  health: ClusterHealth;
  members: MemberView[];
}

/** The node's own events and tallies. */
export async function nodeEvents(node: QuorumKvNode): Promise<NodeEvents> {
  const now = Date.now();
  const requests: NodeEvents['requests'] = {};
  for (const v of (await node.metrics.requests.get()).values) {
    const op = String(v.labels.op ?? 'any');
    const slot = (requests[op] ??= { ok: 0, failed: 0 });
    if (v.labels.outcome === 'ok') slot.ok += v.value;
    else slot.failed += v.value;
  }
  const apply = { count: 0, sumSeconds: 0 };
  for (const v of (await node.metrics.applySeconds.get()).values) {
    if (v.metricName === 'qkv_storage_apply_seconds_count') apply.count = v.value;
    if (v.metricName === 'qkv_storage_apply_seconds_sum') apply.sumSeconds = v.value;
  }
  return {
    id: node.id,
    nowMs: now,
    leaderChanges: node.leaderHistory.since(now, LEADER_HISTORY_WINDOW_MS),
    droppedLeaderChanges: node.leaderHistory.dropped,
    requests,
    apply,
  };
}

/** Runs `fn` over `items` with at most `limit` calls in flight; results in input order. */
export async function mapBounded<T, R>(items: T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const out = new Array<R>(items.length);
  let next = 0;
  const worker = async () => {
    for (let i = next++; i < items.length; i = next++) out[i] = await fn(items[i]!);
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return out;
}

/**
 * Builds {@link ClusterView}s for one node. Concurrent callers share the fan-out in flight, so
 * however many pages poll a node, it has at most one fan-out (and CLUSTER_PROBE_CONCURRENCY
 * member requests) running at a time.
 */
export class ClusterViewer {
  private inFlight: Promise<ClusterView> | undefined;

  constructor(
    private readonly node: QuorumKvNode,
    private readonly ownStatus: () => StatusAnswer,
    /** TLS options of a request to a member (its peer identity), undefined on a plaintext cluster. */
    private readonly tlsFor: (peerId: string) => ConnectionOptions | undefined = () => undefined,
  ) {}

  view(): Promise<ClusterView> {
    this.inFlight ??= this.build().finally(() => (this.inFlight = undefined));
    return this.inFlight;
  }

  private async build(): Promise<ClusterView> {
    const m = this.node.membership();
    const targets = [...m.voters, ...m.learners].map((v) => ({ id: v.id, address: v.address })).sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
    const members = await mapBounded(targets, CLUSTER_PROBE_CONCURRENCY, (t) => this.probe(t));
    const probes: Probe[] = members.map((v) => (v.status ? { id: v.id, address: v.address, status: v.status } : { id: v.id, address: v.address, error: v.error ?? 'no answer' }));
    const health = assessHealth(probes, { maxLagEntries: HEALTH_MAX_LAG_ENTRIES_DEFAULT, maxFsyncSeconds: HEALTH_MAX_FSYNC_MS_DEFAULT / 1000 });
    return { from: this.node.id, nowMs: Date.now(), health, members };
  }

  /** One member's status and events: this node's own without a request, the others' over HTTP. */
  private async probe(t: { id: string; address: string }): Promise<MemberView> {
    if (t.id === this.node.id) return { ...t, status: this.ownStatus(), events: await nodeEvents(this.node), error: null };
    try {
      const [status, events] = await Promise.all([
        fetchStatus(t.address, CLUSTER_PROBE_TIMEOUT_MS, this.tlsFor(t.id)),
        fetchEvents(t.address, this.tlsFor(t.id)).catch(() => null), // an older node has no /v1/events
      ]);
      return { ...t, status, events, error: null };
    } catch (e) {
      return { ...t, status: null, events: null, error: errorText(e) };
    }
  }
}

async function fetchEvents(address: string, tls: ConnectionOptions | undefined): Promise<NodeEvents> {
  const r = await fetchNode(address, '/v1/events', { signal: AbortSignal.timeout(CLUSTER_PROBE_TIMEOUT_MS) }, tls);
  if (!r.ok) throw new Error(`HTTP ${r.status}`);
  return (await r.json()) as NodeEvents;
}
