// RawNode: the host's handle on the core. Inputs go in (tick, step, propose, readIndex); outputs
// come out as one Ready at a time. A new Ready is not handed out before the previous is advanced.
import { validateConfig } from './config.js';
import { encodeConfChange } from './confchange.js';
import { ConfigError, NotLeaderError, assert } from './errors.js';
import { Raft, newMessage } from './raft.js';
import { checkPeerMessage } from './validate.js';
import {
  ConfChangeType,
  EntryType,
  MessageType,
  type ConfChange,
  type ConfState,
  type Config,
  type HardState,
  type Message,
  type NodeId,
  type Ready,
  type SoftState,
  type Status,
} from './types.js';

const LOCAL_ONLY = new Set<number>([
  MessageType.Hup,
  MessageType.Beat,
  MessageType.Prop,
  MessageType.CheckQuorum,
  MessageType.Unreachable,
  MessageType.SnapStatus,
]);

const RESPONSES = new Set<number>([
  MessageType.AppResp,
  MessageType.VoteResp,
  MessageType.PreVoteResp,
  MessageType.HeartbeatResp,
]);

function sameHardState(a: HardState, b: HardState): boolean {
  return a.term === b.term && a.vote === b.vote && a.commit === b.commit;
}

export class RawNode {
  /** Exposed for white-box tests and the simulation; hosts use the methods below. */
  readonly raft: Raft;
  private prevHardState: HardState;
  private prevSoftState: SoftState;
  private pending: Ready | undefined;

  /** Validates the config and restores from `config.storage`. Throws ConfigError on bad input. */
  constructor(config: Config) {
    validateConfig(config);
    this.raft = new Raft(config);
    this.prevHardState = this.raft.hardState();
    this.prevSoftState = this.raft.softState();
  }

  /**
   * Starts a brand-new cluster member with the initial membership written INTO THE LOG, as
   * entries 1..N of term 1 (one AddNode conf change per voter, committed), as etcd does. Every
   * founding member must bootstrap with the same list. A node that joins later starts empty (no
   * bootstrap) and learns the whole membership by replicating those entries or from a snapshot —
   * with membership only in local configuration it would know only the changes after its join.
   * The host applies the entries from the first Ready like any committed conf change.
   * Throws if the storage is not empty.
   */
  bootstrap(voters: { id: NodeId; context?: string }[]): void {
    const r = this.raft;
    if (r.log.lastIndex() !== 0 || r.term !== 0 || r.tracker.voters.size > 0 || r.tracker.learners.size > 0) {
      throw new ConfigError('bootstrap needs an empty log and an empty membership (this node already has state)');
    }
    if (voters.length === 0) throw new ConfigError('bootstrap needs at least one voter');
    const ids = new Set(voters.map((v) => v.id));
    if (ids.size !== voters.length) throw new ConfigError('bootstrap: duplicate voter id');
    r.bootstrap(
      voters.map((v, i) => ({
        term: 1,
        index: i + 1,
        type: EntryType.ConfChange,
        data: encodeConfChange({ type: ConfChangeType.AddNode, nodeId: v.id, ...(v.context !== undefined ? { context: v.context } : {}) }),
      })),
    );
  }

  /** Advances logical time by one tick (election and heartbeat timers count ticks). */
  tick(): void {
    this.raft.tick();
  }

  /**
   * Suspends (true) or resumes (false) voting: while suspended the node never campaigns (not on
   * its election timeout, `campaign()` or TimeoutNow) and rejects every vote and pre-vote request;
   * it still accepts appends and snapshots. For a host whose storage holds less than it promised
   * (a log shorter than what it acknowledged): its vote would rest on a log it no longer has.
   */
  suspendVoting(suspended: boolean): void {
    this.raft.votingSuspended = suspended;
  }

  /**
   * Suspends (true) or resumes (false) campaigning only: while suspended the node never campaigns
   * (not on its election timeout, `campaign()` or TimeoutNow) but still answers vote and pre-vote
   * requests as usual. For a host that cannot tell yet whether the membership it applied is its
   * own (a node replaying the log under an old membership): standing for election there could
   * make it leader of a configuration long gone, while its vote is counted only by candidates
   * whose configuration names it.
   */
  suspendCampaigning(suspended: boolean): void {
    this.raft.campaignSuspended = suspended;
  }

  /** Starts an election now (a pre-election first when preVote is on). */
  campaign(): void {
    this.raft.campaignNow();
  }

  /**
   * Feeds a message from a peer. Local-only message types and responses from nodes outside the
   * configuration are ignored: the network must not be able to forge local events.
   * @throws BadMessageError when no correct peer could have sent `m` (see validate.ts). The core
   *   is then unchanged; the host should drop the message and close the connection it came on.
   */
  step(m: Message): void {
    if (LOCAL_ONLY.has(m.type)) return;
    // Term 0 means "local" to the core. Only requests a follower forwards to its leader travel
    // with term 0; anything else with term 0 from the wire would skip every term check.
    if (m.term === 0 && m.type !== MessageType.ReadIndex && m.type !== MessageType.TransferLeader) return;
    if (RESPONSES.has(m.type) && !this.raft.tracker.progress.has(m.from)) return;
    checkPeerMessage(this.raft, m);
    this.raft.step(m);
  }

  /** Proposes a command. Leader only: throws NotLeaderError elsewhere, ProposalDroppedError when refused. */
  propose(data: Uint8Array): { index: number; term: number } {
    return this.raft.propose(data);
  }

  /** Proposes a membership change; only one may be pending at a time. */
  proposeConfChange(cc: ConfChange): { index: number; term: number } {
    return this.raft.proposeConfChange(cc, encodeConfChange(cc));
  }

  /** Call when applying a committed ConfChange entry; persist the result with the applied index. */
  applyConfChange(cc: ConfChange): ConfState {
    return this.raft.applyConfChange(cc);
  }

  /**
   * Requests a linearizable read. The answer arrives as a Ready.readStates entry with the same
   * ctx (unique per request); serve the read once applied >= its index. Reads may be lost with
   * messages, so hosts time them out. Throws NotLeaderError when no leader is known.
   */
  readIndex(ctx: Uint8Array): void {
    if (this.raft.role !== 'leader' && this.raft.lead === null) {
      throw new NotLeaderError(null);
    }
    this.raft.step(newMessage({ type: MessageType.ReadIndex, from: this.raft.id, to: this.raft.id, context: ctx }));
  }

  /** Asks the leader to hand leadership to `to` (it must be a voter). */
  transferLeader(to: NodeId): void {
    this.raft.step(newMessage({ type: MessageType.TransferLeader, from: to, to: this.raft.id }));
  }

  reportUnreachable(id: NodeId): void {
    this.raft.reportUnreachable(id);
  }

  reportSnapshot(id: NodeId, ok: boolean): void {
    this.raft.reportSnapshot(id, ok);
  }

  hasReady(): boolean {
    if (this.pending) return false;
    const r = this.raft;
    if (r.flushPending()) return true;
    const ss = r.softState();
    if (ss.lead !== this.prevSoftState.lead || ss.role !== this.prevSoftState.role) return true;
    const hs = r.hardState();
    if (!sameHardState(hs, this.prevHardState)) return true;
    if (r.log.unstable.snapshot) return true;
    return r.msgs.length > 0 || r.log.unstableEntries().length > 0 || r.readStates.length > 0 || r.log.hasNextCommittedEntries();
  }

  /** What the host must do now. Call advance(rd) when done; no new Ready is produced before. */
  ready(): Ready {
    assert(!this.pending, 'ready() called again before advance()');
    const r = this.raft;
    r.flushAppends();
    r.flushReadIndex();
    const hs = r.hardState();
    const ss = r.softState();
    const entries = r.log.unstableEntries().slice();
    const rd: Ready = {
      entries,
      committedEntries: r.log.nextCommittedEntries(r.cfg.maxCommittedBytesPerReady),
      messages: r.msgs,
      readStates: r.readStates,
      mustSync: false,
    };
    if (ss.lead !== this.prevSoftState.lead || ss.role !== this.prevSoftState.role) {
      rd.softState = ss;
      this.prevSoftState = ss;
    }
    if (!sameHardState(hs, this.prevHardState)) {
      rd.hardState = hs;
      rd.mustSync = entries.length > 0 || hs.term !== this.prevHardState.term || hs.vote !== this.prevHardState.vote;
      this.prevHardState = hs;
    } else if (entries.length > 0) {
      rd.mustSync = true;
    }
    if (r.log.unstable.snapshot) {
      rd.snapshot = r.log.unstable.snapshot;
      rd.mustSync = true;
    }
    r.msgs = [];
    r.readStates = [];
    this.pending = rd;
    return rd;
  }

  /** The host has persisted, sent and applied everything in rd. */
  advance(rd: Ready): void {
    assert(rd === this.pending, 'advance() must be given the Ready returned by ready()');
    this.pending = undefined;
    const log = this.raft.log;
    if (rd.snapshot) {
      log.unstable.stableSnapTo(rd.snapshot.metadata.index);
      if (rd.snapshot.metadata.index > log.applied) log.applied = rd.snapshot.metadata.index;
    }
    const last = rd.entries[rd.entries.length - 1];
    if (last) log.unstable.stableTo(last.index, last.term);
    const lastApplied = rd.committedEntries[rd.committedEntries.length - 1];
    if (lastApplied) {
      log.appliedTo(lastApplied.index);
      if (this.raft.role === 'leader') this.raft.reduceUncommittedBytes(rd.committedEntries);
    }
  }

  status(): Status {
    return this.raft.status();
  }
}
