// Membership records: who is in the cluster, at which address, in which zone. The core knows
// only ids; addresses and zones travel in a conf change's context and are stored with the
// applied membership.
import { ConfChangeType, type ConfChange } from '@quorumkv/raft';
import type { Member, Membership } from '@quorumkv/storage';
import type { PeerSpec } from './config.js';
import { isIncarnation, shortIncarnation } from './identity.js';

export function membershipFromPeers(peers: PeerSpec[]): Membership {
  return { voters: peers.map((p) => ({ id: p.id, address: p.address })), learners: [] };
}

/**
 * The context string of a conf change that adds `address` (and `zone`), or records the member's
 * `incarnation` (a conf change of the member's current kind, which changes nothing else).
 */
export function memberContext(address: string, zone?: string, incarnation?: string): string {
  return JSON.stringify({ address, ...(zone ? { zone } : {}), ...(incarnation ? { incarnation } : {}) });
}

/** Zone labels: what `--zone` and `member add --zone` accept for recording. */
export const ZONE_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

/**
 * The conf change that records `zone` for member `id`: one of the member's current kind (voter or
 * learner), which changes nothing else (its recorded incarnation is kept). Undefined when `id` is
 * not a member.
 */
export function zoneRecordChange(m: Membership, id: string, zone: string): ConfChange | undefined {
  const voter = m.voters.find((x) => x.id === id);
  const member = voter ?? m.learners.find((x) => x.id === id);
  if (!member) return undefined;
  return { type: voter ? ConfChangeType.AddNode : ConfChangeType.AddLearner, nodeId: id, context: memberContext(member.address, zone) };
}

export function parseMemberContext(ctx: string): { address?: string; zone?: string; incarnation?: string } | undefined {
  try {
    const v = JSON.parse(ctx) as unknown;
    if (typeof v !== 'object' || v === null) return undefined;
    const o = v as Record<string, unknown>;
    return {
      ...(typeof o.address === 'string' ? { address: o.address } : {}),
      ...(typeof o.zone === 'string' ? { zone: o.zone } : {}),
      ...(isIncarnation(o.incarnation) ? { incarnation: o.incarnation } : {}),
    };
  } catch {
    return undefined;
  }
}

/**
 * The failure-domain warnings of a node's current membership: a member's zone is the one recorded
 * with it, or for this node without a recorded zone its own `--zone`. Shown in `/v1/status`, the
 * client's status, `quorumkv status`/`health`, and as the metric `qkv_zone_quorum_at_risk`.
 */
export function failureDomainWarnings(membership: Membership, self: { id: string; zone: string | undefined }): string[] {
  return zoneWarnings(membership.voters, (v) => zoneOfMember(v, self));
}

/** A member's zone: the recorded one, else (for this node only) its own `--zone`. */
export function zoneOfMember(m: Pick<Member, 'id' | 'zone'>, self: { id: string; zone: string | undefined }): string | undefined {
  return m.zone ?? (m.id === self.id ? self.zone : undefined);
}

/** Operator warnings about failure domains: one zone holding a quorum of voters. */
export function zoneWarnings(voters: Member[], zoneOf: (m: Member) => string | undefined): string[] {
  const quorum = Math.floor(voters.length / 2) + 1;
  const byZone = new Map<string, number>();
  for (const v of voters) {
    const z = zoneOf(v);
    if (z) byZone.set(z, (byZone.get(z) ?? 0) + 1);
  }
  const out: string[] = [];
  for (const [z, n] of byZone) {
    if (n >= quorum && voters.length > 1) out.push(`zone "${z}" holds ${n} of ${voters.length} voters, a quorum: losing that zone stops the cluster`);
  }
  return out;
}

/**
 * Why `cc` may not be proposed, or null: it makes `cc.nodeId` a voter (adds it, or promotes a
 * learner) while `m` records no incarnation for it and the change carries none. A voter is only
 * ever made under a known incarnation, so the record precedes (or comes with) the promotion in
 * the log and a new voter has applied its own record by the time it applies its promotion: there
 * is no moment in which it is a voter that may not campaign for want of its record. A change of
 * an existing voter (recording its incarnation or zone) is not refused.
 */
export function unrecordedVoterChange(m: Membership, cc: ConfChange): string | null {
  if (cc.type !== ConfChangeType.AddNode || m.voters.some((v) => v.id === cc.nodeId)) return null;
  const recorded = m.learners.find((l) => l.id === cc.nodeId)?.incarnation;
  if (recorded !== undefined || (cc.context && parseMemberContext(cc.context)?.incarnation !== undefined)) return null;
  return `${cc.nodeId}'s incarnation is not recorded yet (it has not connected to the leader): it becomes a voter only under a known incarnation`;
}

/**
 * Why a node may not campaign now: `identity` while the membership it has applied does not show
 * it is this data directory's seat (docs/server.md, "Who may vote"), `storage` while its log is
 * short of its high-water mark (docs/storage.md). Identity is named when both hold: it is the one
 * an operator acts on. Only a storage shortfall also refuses (pre-)vote requests.
 */
export interface VotingSuspension {
  kind: 'identity' | 'storage';
  /** One sentence for operators (/v1/status and the log). */
  reason: string;
  /**
   * True while the log is short of what this node acknowledged: its vote would rest on entries it
   * no longer has. A node suspended for identity alone still answers vote requests: its vote
   * counts only for candidates whose membership names it a voter under this incarnation, and a
   * voter that has not applied its own promotion yet must answer them (a cluster whose leader
   * died in that moment would otherwise have no quorum for good).
   */
  refusesVotes: boolean;
}

/** What the voting decision rests on; every field is the node's current, applied view. */
export interface VotingFacts {
  selfId: string;
  /** This data directory's incarnation id. */
  incarnation: string;
  /** The membership applied so far (replaying a log, an old one). */
  members: Membership;
  /** This data directory founded the cluster (identity.ts, ORIGIN). */
  foundedHere: boolean;
  /** This data directory is a founding member's first incarnation, replicated into (identity.ts, ORIGIN). */
  foundingMember: boolean;
  /** The ids of the founding membership (--peers), for `foundingMember`. */
  foundingVoters: readonly string[];
  /** The storage shortfall's reason, or null when the log reaches its high-water mark. */
  storageShortfall: string | null;
}

/**
 * The one place that decides whether a node may campaign and vote: null when it may, else why
 * not. A node campaigns only when the applied membership names it as a voter AND either records
 * this data directory's incarnation for it, or records none and this directory founded the
 * cluster. A node replaying the log from index 1 (a replacement, any node added empty) passes
 * through memberships that name its id as a voter — after the first founding entry, as the only
 * one — and must not elect itself on them.
 */
export function votingSuspension(f: VotingFacts): VotingSuspension | null {
  const identity = identityReason(f);
  const refusesVotes = f.storageShortfall !== null;
  if (identity !== null) return { kind: 'identity', reason: identity, refusesVotes };
  if (f.storageShortfall !== null) return { kind: 'storage', reason: f.storageShortfall, refusesVotes };
  return null;
}

const UNTIL_RECORDED = 'not voting until the membership records this incarnation as a voter';

function identityReason(f: VotingFacts): string | null {
  const self = f.members.voters.find((m) => m.id === f.selfId);
  if (self === undefined) {
    if (f.members.learners.some((m) => m.id === f.selfId)) return `${f.selfId} is a learner in the applied membership`;
    if (f.members.voters.length + f.members.learners.length === 0) return 'no membership applied yet (waiting to be added or replicated to)';
    return `the applied membership does not name ${f.selfId}`;
  }
  const mine = shortIncarnation(f.incarnation);
  if (self.incarnation !== undefined && self.incarnation !== f.incarnation) {
    return (
      `the applied membership records ${f.selfId} as incarnation ${shortIncarnation(self.incarnation)}, this data directory is ${mine} ` +
      `(it is replaying an old membership); ${UNTIL_RECORDED}`
    );
  }
  // A founding member replicated into may campaign once the whole founding membership is applied:
  // before that (entry 1 of the founding entries names one voter) it could elect itself on a
  // membership smaller than the cluster's. Without this, a cluster whose leader died before
  // recording that member's incarnation could be left with no electable node (the member holding
  // the longest log is the only one that can win).
  const foundingComplete = f.foundingMember && f.foundingVoters.length > 0 && f.foundingVoters.every((id) => f.members.voters.some((v) => v.id === id));
  if (self.incarnation === undefined && !f.foundedHere && !foundingComplete) {
    return (
      `the applied membership names ${f.selfId} as a voter with no incarnation recorded, and this data directory (${mine}) did not found the cluster ` +
      `(it is replaying an old membership); ${UNTIL_RECORDED}`
    );
  }
  return null;
}
