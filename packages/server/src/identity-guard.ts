// The identity guard: who this node lets in, and what it records about who its peers are
// (docs/server.md, "Who a node is"). It owns the cluster id, the peers' incarnation pins, the
// founding promise and the leader's recording of incarnations in the membership; the node calls
// it from the transport's hello check, from founding probes, from applied membership changes and
// snapshot installs, and from the tick. The files themselves are identity.ts's.
import { ConfChangeType, MessageType, NotLeaderError as RaftNotLeaderError, ProposalDroppedError, type ConfChange, type Message } from '@quorumkv/raft';
import type { Member, Membership } from '@quorumkv/storage';
import type { PeerSpec } from './config.js';
import type { Logger } from './logger.js';
import type { IdentityFiles } from './host-world.js';
import type { Clock } from './world.js';
import { PeerPins, adoptClusterId, clusterIdOf, foundingPromised, recordFoundingPromise, shortIncarnation, writeClusterId } from './identity.js';
import { replaceProcedure, type FoundingAnswer } from './founding.js';
import { memberContext } from './membership.js';

/** How often the refusal of a peer's other incarnation is explained at length in the log, ms. */
const REFUSAL_EXPLAIN_EVERY_MS = 60_000;
/** How often the dropping of another incarnation's votes and acknowledgements is logged per peer, ms. */
const DROP_LOG_EVERY_MS = 10_000;
/**
 * What a peer may send under an incarnation this node does not know it as: a leader's traffic to
 * its followers, which a member that missed a replacement needs to learn the membership that
 * records the new incarnation (snapshots come on their own channel, under the same rule). A
 * vote, a vote request, an acknowledgement, a ReadIndex exchange or a TimeoutNow is never taken
 * from it (docs/server.md, "Who a node is").
 */
const LEADER_TRAFFIC: ReadonlySet<number> = new Set([MessageType.App, MessageType.Heartbeat]);
/** How often a leader retries recording members' incarnations in the membership, ms. */
const RECORD_INCARNATION_EVERY_MS = 100;

/** What the guard reads of the node, and the few things it asks the node to do. */
export interface IdentityHost {
  readonly id: string;
  /** This data directory's incarnation id. */
  readonly incarnation: string;
  /** --peers: the founding members (trusted for the cluster id while there is no membership). */
  readonly peers: readonly PeerSpec[];
  readonly log: Logger;
  readonly clock: Clock;
  readonly identity: IdentityFiles;
  members(): Membership;
  memberById(id: string): Member | undefined;
  /** The stored applied index (a first-contact pin records it). */
  appliedIndex(): number;
  isLeader(): boolean;
  /** The founding handshake has not decided yet (an empty data directory with the founding flag). */
  foundingPending(): boolean;
  /** The node has a membership or a log (a founding probe is answered "yes"). */
  founded(): boolean;
  proposeConfChange(cc: ConfChange): { index: number; term: number };
  /** Runs the host loop soon. */
  schedule(): void;
  /** Closes the peer's inbound connections (another incarnation is recorded for it now). */
  closeInbound(peer: string, reason: string): void;
}

/** The incarnation rule, the cluster id and the founding promise of one node. */
export class IdentityGuard {
  /** Derived from the founding membership; peers founded differently are refused. Null while joining. */
  clusterId: string | null;
  /** In the founding handshake, this node answered "not founded" to a founding peer (founding.ts). */
  private answeredNotFounded: boolean;
  private lastRecordAttemptMs = 0;
  /** When the refusal of each peer's other incarnation was last explained in the log. */
  private readonly refusalExplainedAtMs = new Map<string, number>();
  /** When dropped messages of each peer's other incarnation were last logged (bounded by the peers). */
  private readonly dropLoggedAtMs = new Map<string, number>();
  /** Messages dropped since start: their sender's incarnation is not the one this node knows. */
  droppedFromOtherIncarnation = 0;

  constructor(
    private readonly host: IdentityHost,
    /** The incarnations this node pinned for its peers. */
    readonly pins: PeerPins,
    clusterId: string | null,
  ) {
    this.clusterId = clusterId;
    this.answeredNotFounded = host.foundingPending() && foundingPromised(host.identity);
  }

  /** This node answered "not founded" to a founding peer: it founds rather than waits (founding.ts). */
  promisedToFound(): boolean {
    return this.answeredNotFounded;
  }

  /** This node founds the cluster with `voters`: its cluster id is theirs, written durably now. */
  found(voters: { id: string; context: string }[]): void {
    this.clusterId = clusterIdOf(voters);
    writeClusterId(this.host.identity, this.clusterId);
  }

  /**
   * The transport's check of an authenticated raft/snapshot hello, BEFORE any message of that
   * connection is accepted: the incarnation rule, then the cluster id adoption. Returns the
   * refusal reason (the close reason), or null to accept.
   *
   * A connection of another incarnation than the known one is accepted all the same (and
   * explained in the log), but `admits` lets only leader traffic through from it: this node may
   * have missed that member's replacement, and the new incarnation's appends are how it learns
   * the membership that records it. Only a failure to pin refuses the connection.
   */
  checkHello(peer: string, incarnation: string, clusterId: string): string | null {
    const verdict = this.checkIncarnation(peer, incarnation);
    if (verdict.kind === 'known') this.adoptClusterIdFrom(peer, clusterId);
    return verdict.kind === 'unpinnable' ? verdict.reason : null;
  }

  /**
   * The incarnation rule for one message: a message of the incarnation this node knows the peer
   * as (or of a peer seen for the first time, pinned now) is taken; one of another incarnation
   * only if it is leader traffic (LEADER_TRAFFIC) — never its votes or acknowledgements, so an
   * amnesiac member is never counted under its old identity. Dropped messages are counted and
   * logged at most once per DROP_LOG_EVERY_MS per peer.
   */
  admits(m: Message, incarnation: string): boolean {
    const verdict = this.checkIncarnation(m.from, incarnation);
    if (verdict.kind === 'known' || (verdict.kind === 'other' && LEADER_TRAFFIC.has(m.type))) return true;
    this.droppedFromOtherIncarnation++;
    const nowMs = this.host.clock.nowMs();
    if (nowMs - (this.dropLoggedAtMs.get(m.from) ?? -Infinity) >= DROP_LOG_EVERY_MS) {
      this.dropLoggedAtMs.set(m.from, nowMs);
      this.host.log.warn(
        { peer: m.from, type: m.type, incarnation, dropped: this.droppedFromOtherIncarnation },
        'dropped a message of another incarnation than the one this node knows (only its leader traffic is taken)',
      );
    }
    return false;
  }

  /**
   * The incarnation rule: the incarnation recorded in the replicated membership wins; else this
   * node's pin; a member seen for the first time is pinned durably now (`known`). Another
   * incarnation is `other` (explained in the log at most once per REFUSAL_EXPLAIN_EVERY_MS per
   * peer); a first contact that could not be pinned is `unpinnable`.
   */
  private checkIncarnation(peer: string, incarnation: string): IncarnationVerdict {
    const h = this.host;
    const recorded = h.memberById(peer)?.incarnation;
    const known = recorded ?? this.pins.get(peer);
    if (known === undefined) {
      try {
        this.pins.pin(peer, incarnation, h.appliedIndex());
      } catch (e) {
        // Not pinned, not accepted: the peer redials, and the disk may have recovered by then.
        h.log.error({ peer, err: (e as Error).message }, 'could not pin the incarnation of a peer; refusing its connection');
        return { kind: 'unpinnable', reason: `${peer}: this node could not record its incarnation; retry later` };
      }
      h.log.info({ peer, incarnation }, 'pinned the incarnation of a peer (first contact)');
      return { kind: 'known' };
    }
    if (known === incarnation) return { kind: 'known' };
    const nowMs = h.clock.nowMs();
    if (nowMs - (this.refusalExplainedAtMs.get(peer) ?? -Infinity) < REFUSAL_EXPLAIN_EVERY_MS) return { kind: 'other' };
    this.refusalExplainedAtMs.set(peer, nowMs);
    const address = h.memberById(peer)?.address ?? h.peers.find((p) => p.id === peer)?.address ?? 'HOST:PORT';
    h.log.warn(
      { peer, incarnation, known, source: recorded !== undefined ? 'membership' : 'pin' },
      `refused ${peer}'s votes and acknowledgements: it is incarnation ${shortIncarnation(incarnation)}, this node knows it as ` +
        `${shortIncarnation(known)} (it lost its data directory, or is an impostor — or was replaced while this node was away, ` +
        `in which case its appends as leader bring the membership that records it); ` +
        replaceProcedure(peer, address),
    );
    return { kind: 'other' };
  }

  /**
   * A node without a cluster id (replicated into while founding, or added with `member add`)
   * adopts the one in the accepted hello of a member of its applied membership — or, while it has
   * none, of a peer named in --peers — so that from then on its handshakes compare cluster ids.
   * A failed write is logged and retried at the next such hello; the connection is accepted.
   */
  private adoptClusterIdFrom(peer: string, offered: string): void {
    if (this.clusterId !== null) return;
    const h = this.host;
    const members = h.members();
    const noMembership = members.voters.length + members.learners.length === 0;
    const trusted = h.memberById(peer) !== undefined || (noMembership && h.peers.some((p) => p.id === peer));
    try {
      const adopted = adoptClusterId(h.identity, this.clusterId, offered, trusted);
      if (adopted === null) return;
      this.clusterId = adopted;
      h.log.info({ clusterId: adopted, from: peer }, 'adopted the cluster id from the hello of a member');
    } catch (e) {
      h.log.error({ peer, err: (e as Error).message }, 'could not record the cluster id; will retry at the next hello');
    }
  }

  /** The answer to a founding probe from `peer` (founding.ts). */
  foundingAnswer(peer: string): FoundingAnswer {
    const h = this.host;
    // An empty node waiting to be added belongs to a cluster it has not heard from yet: it knows
    // nothing (counting it towards a founding majority could re-found around a lost member).
    const founded = h.foundingPending() ? 'no' : h.founded() ? 'yes' : 'waiting';
    // A "no" may be counted by the asker: from now on this node founds rather than waits
    // (founding.ts), also after a restart. Written before the answer leaves.
    if (founded === 'no' && !this.answeredNotFounded) {
      recordFoundingPromise(h.identity);
      this.answeredNotFounded = true;
    }
    return {
      founded,
      member: h.memberById(peer) !== undefined,
      incarnation: h.memberById(peer)?.incarnation ?? this.pins.get(peer) ?? null,
      self: h.incarnation,
    };
  }

  /** An applied membership change: a removal clears its pin; a recorded incarnation becomes the pin (and drops any other). */
  onMembershipChange(cc: ConfChange, index: number): void {
    const h = this.host;
    if (cc.type === ConfChangeType.RemoveNode) {
      if (this.pins.clear(cc.nodeId, index)) h.log.info({ peer: cc.nodeId, index }, 'removed member: its incarnation pin is cleared');
      return;
    }
    const recorded = h.memberById(cc.nodeId)?.incarnation;
    if (recorded === undefined || cc.nodeId === h.id) return;
    const pinned = this.pins.get(cc.nodeId);
    if (pinned === recorded) return;
    this.pins.pin(cc.nodeId, recorded, index);
    if (pinned !== undefined) {
      h.log.warn({ peer: cc.nodeId, recorded, pinned }, 'the membership records another incarnation than this node pinned; following the membership');
      h.closeInbound(cc.nodeId, 'incarnation recorded in the membership differs');
    }
  }

  /**
   * After a snapshot install: every incarnation recorded in its membership becomes a pin, and
   * the pins of ids that are no longer members are cleared (their removal is inside the snapshot).
   */
  onSnapshotInstalled(index: number): void {
    const h = this.host;
    const members = h.members();
    for (const m of [...members.voters, ...members.learners]) {
      if (m.incarnation !== undefined && m.id !== h.id) this.pins.pin(m.id, m.incarnation, index);
    }
    for (const id of this.pins.ids()) if (!h.memberById(id)) this.pins.clear(id, index);
  }

  /**
   * Leader only, each tick: records in the replicated membership the incarnation of one member
   * that has none yet (its own, or the one pinned at first contact), as a conf change of the
   * member's current kind carrying the incarnation in its context. One at a time, retried every
   * RECORD_INCARNATION_EVERY_MS (the core takes one conf change at a time).
   */
  recordIncarnations(nowMs: number): void {
    const h = this.host;
    if (!h.isLeader() || nowMs - this.lastRecordAttemptMs < RECORD_INCARNATION_EVERY_MS) return;
    this.lastRecordAttemptMs = nowMs;
    const members = h.members();
    const voters = new Set(members.voters.map((m) => m.id));
    for (const m of [...members.voters, ...members.learners]) {
      if (m.incarnation !== undefined) continue;
      const incarnation = m.id === h.id ? h.incarnation : this.pins.get(m.id);
      if (incarnation === undefined) continue;
      const type = voters.has(m.id) ? ConfChangeType.AddNode : ConfChangeType.AddLearner;
      try {
        const at = h.proposeConfChange({ type, nodeId: m.id, context: memberContext(m.address, m.zone, incarnation) });
        h.log.info({ term: at.term, index: at.index, peer: m.id, incarnation }, 'proposed recording a member incarnation');
        h.schedule();
      } catch (e) {
        if (!(e instanceof ProposalDroppedError) && !(e instanceof RaftNotLeaderError)) throw e;
      }
      return;
    }
  }
}

/** How a peer's incarnation compares with the one this node knows it as (checkIncarnation). */
type IncarnationVerdict = { kind: 'known' } | { kind: 'other' } | { kind: 'unpinnable'; reason: string };
