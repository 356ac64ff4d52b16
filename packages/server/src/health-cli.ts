// `quorumkv health`: asks every member of the cluster for its status (after etcd's `etcdctl
// endpoint health --cluster` and `endpoint status`) and says whether the whole cluster is healthy.
// The members come from the first endpoint that answers (its member list), or with
// --endpoints-only from --endpoints alone. The verdict is a pure function of the answers
// (`assessHealth`), so its rules are unit-tested without processes.
import type { ConnectionOptions } from 'node:tls';
import { fetchNode } from './node-fetch.js';
import { zoneWarnings } from './membership.js';

/** Default of --max-lag-entries: a member further behind the leader's commit index is unhealthy. */
export const HEALTH_MAX_LAG_ENTRIES_DEFAULT = 1000;
/** Default of --max-fsync-ms: a member whose recent synced-batch p99 is above it is unhealthy. */
export const HEALTH_MAX_FSYNC_MS_DEFAULT = 1000;

/** The fields of GET /v1/status that health reads (newer fields are optional). */
export interface StatusAnswer {
  id: string;
  role: string;
  term: number;
  leader: string | null;
  commitIndex: number;
  appliedIndex: number;
  zone: string | null;
  members: { id: string; address: string; voter: boolean; zone: string | null }[];
  storageShortfall?: { reason: string } | null;
  /** Why the node does not campaign (or vote): null normally. */
  votingSuspended?: 'identity' | 'storage' | null;
  votingSuspendedReason?: string | null;
  fsync?: { samples: number; p99Seconds: number | null; maxSeconds: number | null };
  warnings?: string[];
}

/** One member as health saw it. */
export interface MemberHealth {
  id: string;
  address: string;
  reachable: boolean;
  role: string | null;
  term: number | null;
  leader: string | null;
  appliedIndex: number | null;
  commitIndex: number | null;
  /** Entries the member's applied index is behind the leader's commit index (its own when no leader answered). */
  lagEntries: number | null;
  fsyncP99Seconds: number | null;
  zone: string | null;
  storageShortfall: string | null;
  /** `kind: reason` while the member's voting is suspended (see docs/server.md), else null. */
  votingSuspended: string | null;
  /** Why this member is unhealthy; empty when it is healthy. */
  problems: string[];
}

/** The verdict of `quorumkv health --json`. */
export interface ClusterHealth {
  healthy: boolean;
  /** The leader every reachable member agrees on, or null. */
  leader: string | null;
  term: number | null;
  /** Every reason the cluster is unhealthy (cluster-wide ones and each member's). */
  problems: string[];
  /** Things to know that do not make it unhealthy (e.g. a zone holding a quorum). */
  warnings: string[];
  members: MemberHealth[];
}

/** Thresholds of {@link assessHealth}. */
export interface HealthLimits {
  maxLagEntries: number;
  maxFsyncSeconds: number;
}

/** One probed member: its status, or why it could not be read. */
export type Probe = { id: string; address: string } & ({ status: StatusAnswer } | { error: string });

/** Judges the cluster from each member's answer. */
export function assessHealth(probes: Probe[], limits: HealthLimits): ClusterHealth {
  const answered = probes.flatMap((p) => ('status' in p ? [p.status] : []));
  const leaders = new Set(answered.map((s) => s.leader));
  const agreed = leaders.size === 1 ? [...leaders][0]! : null;
  const leaderStatus = answered.find((s) => s.id === agreed && s.role === 'leader');
  const problems: string[] = [];
  if (answered.length === 0) problems.push('no member answered');
  else if (leaders.size > 1) problems.push(`members disagree on the leader: ${answered.map((s) => `${s.id} says ${s.leader ?? '(none)'}`).join(', ')}`);
  else if (agreed === null) problems.push('the cluster has no leader');
  else if (!leaderStatus) problems.push(`the leader ${agreed} did not answer as leader`);
  const members = probes.map((p) => memberHealth(p, leaderStatus, limits));
  for (const m of members) problems.push(...m.problems.map((x) => `${m.id}: ${x}`));
  const warnings = [...new Set([...answered.flatMap((s) => s.warnings ?? []), ...reportedZoneWarnings(answered)])];
  return { healthy: problems.length === 0, leader: leaderStatus ? agreed : null, term: leaderStatus?.term ?? null, problems, warnings, members };
}

/**
 * Zone warnings from each voter's own `--zone` as it reports it (a node's own status knows only
 * the zones recorded in the membership and its own; asking every member sees them all).
 */
function reportedZoneWarnings(answered: StatusAnswer[]): string[] {
  const list = answered.find((s) => s.members.length > 0)?.members ?? [];
  const reported = new Map(answered.map((s) => [s.id, s.zone]));
  const voters = list.filter((m) => m.voter).map((m) => ({ id: m.id, address: m.address, zone: reported.get(m.id) ?? m.zone ?? undefined }));
  return zoneWarnings(voters, (v) => v.zone);
}

function memberHealth(p: Probe, leader: StatusAnswer | undefined, limits: HealthLimits): MemberHealth {
  if (!('status' in p)) {
    return {
      id: p.id, address: p.address, reachable: false, role: null, term: null, leader: null, appliedIndex: null, commitIndex: null,
      lagEntries: null, fsyncP99Seconds: null, zone: null, storageShortfall: null, votingSuspended: null, problems: [`unreachable (${p.error})`],
    };
  }
  const s = p.status;
  const lagEntries = Math.max(0, (leader ?? s).commitIndex - s.appliedIndex);
  const fsyncP99Seconds = s.fsync?.p99Seconds ?? null;
  const storageShortfall = s.storageShortfall?.reason ?? null;
  const votingSuspended = s.votingSuspended ? `${s.votingSuspended}: ${s.votingSuspendedReason ?? 'no reason given'}` : null;
  const problems: string[] = [];
  if (storageShortfall) problems.push(`storage shortfall: ${storageShortfall}`);
  // A storage suspension is the shortfall above, said once.
  if (votingSuspended && !(s.votingSuspended === 'storage' && storageShortfall)) problems.push(`voting suspended (${votingSuspended})`);
  if (lagEntries > limits.maxLagEntries) problems.push(`${lagEntries} entries behind (limit ${limits.maxLagEntries})`);
  if (fsyncP99Seconds !== null && fsyncP99Seconds > limits.maxFsyncSeconds) {
    problems.push(`fsync p99 ${formatSeconds(fsyncP99Seconds)} (limit ${formatSeconds(limits.maxFsyncSeconds)})`);
  }
  return {
    id: s.id, address: p.address, reachable: true, role: s.role, term: s.term, leader: s.leader, appliedIndex: s.appliedIndex, commitIndex: s.commitIndex,
    lagEntries, fsyncP99Seconds, zone: s.zone, storageShortfall, votingSuspended, problems,
  };
}

/** `1.2ms`, `0.35s`: a duration in seconds for the table. */
export function formatSeconds(s: number): string {
  return s < 1 ? `${(s * 1000).toFixed(s < 0.01 ? 2 : 1)}ms` : `${s.toFixed(2)}s`;
}

/** The human table of `quorumkv health`. */
export function formatHealth(h: ClusterHealth): string {
  const head = ['MEMBER', 'ADDRESS', 'REACHABLE', 'ROLE', 'TERM', 'LEADER', 'APPLIED', 'COMMIT', 'LAG', 'FSYNC-P99', 'ZONE', 'PROBLEMS'];
  const rows = h.members.map((m) => [
    m.id, m.address, m.reachable ? 'yes' : 'NO', m.role ?? '-', String(m.term ?? '-'), m.leader ?? '-', String(m.appliedIndex ?? '-'), String(m.commitIndex ?? '-'),
    String(m.lagEntries ?? '-'), m.fsyncP99Seconds === null ? '-' : formatSeconds(m.fsyncP99Seconds), m.zone ?? '-', m.problems.join('; ') || '-',
  ]);
  const widths = head.map((_, i) => Math.max(...[head, ...rows].map((r) => r[i]!.length)));
  const line = (r: string[]) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join('  ');
  const verdict = h.healthy ? `cluster is healthy: leader ${h.leader}, term ${h.term}` : `cluster is UNHEALTHY:\n${h.problems.map((p) => `  - ${p}`).join('\n')}`;
  const warnings = h.warnings.map((w) => `warning: ${w}`);
  return [line(head), ...rows.map(line), '', verdict, ...warnings].join('\n');
}

/** GET /v1/status of one endpoint (throws on a network error, a timeout or a non-200 answer). */
export async function fetchStatus(address: string, timeoutMs: number, tls?: ConnectionOptions): Promise<StatusAnswer> {
  const r = await fetchNode(address, '/v1/status', { signal: AbortSignal.timeout(timeoutMs) }, tls);
  if (!r.ok) throw new Error(`HTTP ${r.status}`);
  return (await r.json()) as StatusAnswer;
}

/** A short reason for a failed status request (an errno code, "timed out" or the message). */
export const errorText = (e: unknown) => {
  const err = e as Error & { code?: string; cause?: { code?: string } };
  return err.cause?.code ?? err.code ?? (err.name === 'TimeoutError' ? 'timed out' : err.message);
};

/**
 * Probes the cluster: the members of the first of `endpoints` that answers (or, with
 * `endpointsOnly`, the endpoints themselves), each asked for its status at once.
 */
export async function probeCluster(o: { endpoints: string[]; timeoutMs: number; endpointsOnly: boolean; tls?: ConnectionOptions | undefined }): Promise<Probe[]> {
  let targets = o.endpoints.map((address) => ({ id: address, address }));
  if (!o.endpointsOnly) {
    for (const ep of o.endpoints) {
      const s = await fetchStatus(ep, o.timeoutMs, o.tls).catch(() => undefined);
      if (s) {
        targets = s.members.map((m) => ({ id: m.id, address: m.address }));
        break;
      }
    }
  }
  return Promise.all(
    targets.map(async (t): Promise<Probe> => {
      try {
        const status = await fetchStatus(t.address, o.timeoutMs, o.tls);
        return { id: status.id, address: t.address, status };
      } catch (e) {
        return { ...t, error: errorText(e) };
      }
    }),
  );
}
