// The Raft state machine (Ongaro & Ousterhout; Ongaro's thesis; etcd-io/raft's structure).
// Pure: no I/O, no clock, no ambient randomness. Inputs: tick(), step(msg), propose(). Outputs
// accumulate in `msgs`, `readStates` and the log's unstable tail; RawNode packages them as Ready.
import {
  CompactedError,
  NotLeaderError,
  ProposalDroppedError,
  SnapshotTemporarilyUnavailableError,
  assert,
  assertNever,
} from './errors.js';
import { RaftLog, entrySize } from './log.js';
import { ProgressTracker, type Progress } from './progress.js';
import { ReadOnly, decodeRound, encodeRound } from './readonly.js';
import { decodeConfChange } from './confchange.js';
import {
  ConfChangeType,
  EntryType,
  MessageType,
  type ConfChange,
  type ConfState,
  type Config,
  type Entry,
  type HardState,
  type Message,
  type NodeId,
  type ReadState,
  type Role,
  type Snapshot,
  type SoftState,
  type Status,
} from './types.js';

/** Vote/TimeoutNow context marking a campaign caused by leadership transfer (bypasses the lease). */
const CAMPAIGN_TRANSFER = new Uint8Array([0x74]);
/** Upper bound on ReadIndex requests queued on the leader. */
const MAX_PENDING_READS = 65_536;
const EMPTY = new Uint8Array(0);

type CampaignKind = 'preElection' | 'election' | 'transfer';

// TextEncoder/TextDecoder exist globally in Node and browsers; declared here so the core
// compiles without DOM or Node typings.
declare class TextEncoder {
  encode(s: string): Uint8Array;
}
declare class TextDecoder {
  decode(b: Uint8Array): string;
}
const textOf = (b: Uint8Array): string => new TextDecoder().decode(b);
const bytesOf = (s: string): Uint8Array => new TextEncoder().encode(s);

export function newMessage(fields: Partial<Message> & Pick<Message, 'type'>): Message {
  return {
    to: '',
    from: '',
    term: 0,
    logTerm: 0,
    index: 0,
    entries: [],
    commit: 0,
    reject: false,
    rejectHint: 0,
    ...fields,
  };
}

export class Raft {
  readonly id: NodeId;
  readonly cfg: Config;
  readonly log: RaftLog;
  readonly tracker: ProgressTracker;

  term = 0;
  vote: NodeId | null = null;
  lead: NodeId | null = null;
  role: Role = 'follower';

  msgs: Message[] = [];
  readStates: ReadState[] = [];

  /** Ticks since the last election timeout reset (followers: since hearing from the leader). */
  private electionElapsed = 0;
  private heartbeatElapsed = 0;
  private randomizedElectionTimeout = 0;

  leadTransferee: NodeId | null = null;
  /** Index of the latest conf change proposed by this leader; a new one waits until it is applied. */
  private pendingConfIndex = 0;
  /** Bytes of entries appended by this leader and not yet applied. */
  private uncommittedBytes = 0;
  private readonly readOnly = new ReadOnly(MAX_PENDING_READS);
  /** Peer messages ignored because no correct peer sends them (forged TimeoutNow, acks past the log). */
  ignoredMessages = 0;
  /** Times a follower rejected an index it had acknowledged (it lost acknowledged entries). */
  followerLogRegressions = 0;
  /** ReadIndex requests received before the leader committed an entry of its term. */
  private pendingReadIndexMessages: Message[] = [];
  /** A ReadIndex heartbeat round is owed (sent once per flush, for all reads so far). */
  private readIndexRoundPending = false;
  /** Proposals were appended since the last flush: replicate them in one append per follower. */
  private appendFlushPending = false;

  constructor(cfg: Config) {
    this.cfg = cfg;
    this.id = cfg.id;
    this.log = new RaftLog(cfg.storage, cfg.applied ?? 0);
    this.tracker = new ProgressTracker(cfg.maxInflightMessages, cfg.maxInflightBytes);
    const { hardState, confState } = cfg.storage.initialState();
    this.tracker.reset(confState, this.log.lastIndex() + 1);
    if (hardState.term > 0 || hardState.vote !== null || hardState.commit > 0) this.loadState(hardState);
    this.becomeFollower(this.term, null);
    this.cfg.logger?.info(
      { term: this.term, commit: this.log.committed, applied: this.log.applied, lastIndex: this.log.lastIndex() },
      'raft node started',
    );
  }

  private loadState(hs: HardState): void {
    assert(
      hs.commit >= this.log.committed && hs.commit <= this.log.lastIndex(),
      `hard state commit ${hs.commit} out of range [${this.log.committed}, ${this.log.lastIndex()}]`,
    );
    this.log.committed = hs.commit;
    this.term = hs.term;
    this.vote = hs.vote;
  }

  /** See RawNode.bootstrap: appends the founding conf changes, commits and applies them to the tracker. */
  bootstrap(ents: Entry[]): void {
    this.becomeFollower(1, null);
    this.log.append(ents);
    this.log.committed = ents.length;
    for (const e of ents) this.applyConfChange(decodeConfChange(e.data));
  }

  hardState(): HardState {
    return { term: this.term, vote: this.vote, commit: this.log.committed };
  }

  softState(): SoftState {
    return { lead: this.lead, role: this.role };
  }

  /**
   * Set by the host while its storage holds less than it promised (RawNode.suspendVoting): the
   * node neither campaigns nor grants (pre-)votes, and still accepts appends to catch up.
   */
  votingSuspended = false;
  /**
   * Set by the host while this node must not stand for election (RawNode.suspendCampaigning): it
   * never campaigns, and still grants (pre-)votes — a voter that has not yet applied its own
   * promotion must answer, or the cluster can lose its quorum for good.
   */
  campaignSuspended = false;

  private promotable(): boolean {
    return this.tracker.voters.has(this.id) && !this.votingSuspended && !this.campaignSuspended;
  }

  private send(m: Partial<Message> & Pick<Message, 'type' | 'to'>): void {
    const msg = newMessage({ from: this.id, ...m });
    // Responses to (pre)votes carry the term they are for; other messages carry our term.
    if (msg.type !== MessageType.PreVote && msg.type !== MessageType.PreVoteResp && msg.type !== MessageType.VoteResp) {
      msg.term = this.term;
    }
    this.msgs.push(msg);
  }

  // ---------------------------------------------------------------------------------------------
  // Role changes: one place each.

  private reset(term: number): void {
    if (this.term !== term) {
      this.term = term;
      this.vote = null;
    }
    this.lead = null;
    this.electionElapsed = 0;
    this.heartbeatElapsed = 0;
    this.resetRandomizedElectionTimeout();
    this.leadTransferee = null;
    this.tracker.resetVotes();
    const next = this.log.lastIndex() + 1;
    for (const [id, pr] of this.tracker.progress) {
      const fresh = this.tracker.newProgress(next, pr.learner);
      if (id === this.id) fresh.match = this.log.lastIndex();
      this.tracker.progress.set(id, fresh);
    }
    this.pendingConfIndex = 0;
    this.uncommittedBytes = 0;
    this.readOnly.reset();
    this.readIndexRoundPending = false;
    this.appendFlushPending = false;
    this.pendingReadIndexMessages = [];
  }

  private resetRandomizedElectionTimeout(): void {
    this.randomizedElectionTimeout = this.cfg.electionTicks + this.cfg.random.int(this.cfg.electionTicks);
  }

  becomeFollower(term: number, lead: NodeId | null): void {
    const wasLeader = this.role === 'leader';
    this.reset(term);
    this.lead = lead;
    this.role = 'follower';
    if (wasLeader) this.cfg.logger?.info({ term }, 'stepped down from leader');
  }

  private becomePreCandidate(): void {
    assert(this.role !== 'leader', 'leader cannot become pre-candidate');
    // A pre-candidate changes neither term nor vote: a failed pre-election leaves no trace.
    this.tracker.resetVotes();
    this.lead = null;
    this.role = 'preCandidate';
  }

  private becomeCandidate(): void {
    assert(this.role !== 'leader', 'leader cannot become candidate');
    this.reset(this.term + 1);
    this.vote = this.id;
    this.role = 'candidate';
    this.cfg.logger?.info({ term: this.term }, 'became candidate');
  }

  private becomeLeader(): void {
    assert(this.role === 'candidate', `only a candidate can become leader (was ${this.role})`);
    this.reset(this.term);
    this.lead = this.id;
    this.role = 'leader';
    this.tracker.progress.get(this.id)?.becomeReplicate();
    // Conf changes wait until everything before this term's first entry is applied.
    this.pendingConfIndex = this.log.lastIndex();
    // The no-op of the new term: commits everything before it (§5.4.2, §8).
    this.appendEntries([{ term: 0, index: 0, type: EntryType.Normal, data: EMPTY }], true);
    this.cfg.logger?.info({ term: this.term, lastIndex: this.log.lastIndex() }, 'became leader');
  }

  // ---------------------------------------------------------------------------------------------
  // Time.

  tick(): void {
    if (this.role === 'leader') this.tickHeartbeat();
    else this.tickElection();
  }

  private tickElection(): void {
    this.electionElapsed++;
    if (this.promotable() && this.electionElapsed >= this.randomizedElectionTimeout) {
      this.electionElapsed = 0;
      this.hup(this.cfg.preVote ? 'preElection' : 'election');
    }
  }

  private tickHeartbeat(): void {
    this.heartbeatElapsed++;
    this.electionElapsed++;
    if (this.electionElapsed >= this.cfg.electionTicks) {
      this.electionElapsed = 0;
      if (this.cfg.checkQuorum) this.checkQuorum();
      // A transfer that did not finish within an election timeout is abandoned.
      if (this.role === 'leader' && this.leadTransferee !== null) this.leadTransferee = null;
    }
    if (this.role !== 'leader') return;
    if (this.heartbeatElapsed >= this.cfg.heartbeatTicks) {
      this.heartbeatElapsed = 0;
      this.bcastHeartbeat(undefined);
    }
  }

  /** CheckQuorum: a leader that has not heard from a quorum in an election timeout steps down. */
  private checkQuorum(): void {
    if (!this.tracker.quorumActive(this.id)) {
      this.cfg.logger?.warn({ term: this.term }, 'stepping down: no quorum heard within an election timeout');
      this.becomeFollower(this.term, null);
      return;
    }
    for (const [id, pr] of this.tracker.progress) if (id !== this.id) pr.recentActive = false;
  }

  // ---------------------------------------------------------------------------------------------
  // Elections.

  campaignNow(): void {
    this.hup(this.cfg.preVote ? 'preElection' : 'election');
  }

  private hup(kind: CampaignKind): void {
    if (this.role === 'leader') return;
    if (!this.promotable()) return;
    // Membership must be current before campaigning: a conf change that is committed but not
    // applied could change who counts.
    if (this.hasUnappliedConfChanges()) {
      this.cfg.logger?.warn({ term: this.term }, 'not campaigning: committed conf changes are not applied yet');
      return;
    }
    this.campaign(kind);
  }

  private hasUnappliedConfChanges(): boolean {
    if (this.log.committed <= this.log.applied) return false;
    const lo = Math.max(this.log.applied + 1, this.log.firstIndex());
    if (lo > this.log.committed) return false;
    const ents = this.log.slice(lo, this.log.committed + 1, Number.MAX_SAFE_INTEGER);
    return ents.some((e) => e.type === EntryType.ConfChange);
  }

  private campaign(kind: CampaignKind): void {
    let voteType: MessageType;
    let term: number;
    if (kind === 'preElection') {
      this.becomePreCandidate();
      voteType = MessageType.PreVote;
      term = this.term + 1;
    } else {
      this.becomeCandidate();
      voteType = MessageType.Vote;
      term = this.term;
    }
    this.tracker.recordVote(this.id, true);
    if (this.tracker.tallyVotes().result === 'won') {
      // A single-voter cluster wins at once.
      if (kind === 'preElection') this.campaign('election');
      else this.becomeLeader();
      return;
    }
    const lastIndex = this.log.lastIndex();
    const lastTerm = this.log.lastTerm();
    for (const id of [...this.tracker.voters].sort()) {
      if (id === this.id) continue;
      this.msgs.push(
        newMessage({
          type: voteType,
          to: id,
          from: this.id,
          term,
          index: lastIndex,
          logTerm: lastTerm,
          ...(kind === 'transfer' ? { context: CAMPAIGN_TRANSFER } : {}),
        }),
      );
    }
  }

  private handleVoteRequest(m: Message): void {
    const isPre = m.type === MessageType.PreVote;
    const bug = this.cfg.plantedBug;
    // We can vote for m.from if we already did, if we have voted for nobody and know no leader,
    // or (pre-vote only) for a future term — never while voting is suspended.
    const canVote =
      !this.votingSuspended &&
      (bug === 'double-vote' || this.vote === m.from || (this.vote === null && this.lead === null) || (isPre && m.term > this.term));
    const upToDate = bug === 'no-log-check-vote' || this.log.isUpToDate(m.index, m.logTerm);
    const respType = isPre ? MessageType.PreVoteResp : MessageType.VoteResp;
    if (canVote && upToDate) {
      // The response carries the term of the request so the candidate counts it.
      this.send({ type: respType, to: m.from, term: m.term, reject: false });
      if (!isPre) {
        this.electionElapsed = 0;
        this.vote = m.from;
      }
    } else {
      this.send({ type: respType, to: m.from, term: this.term, reject: true });
    }
  }

  // ---------------------------------------------------------------------------------------------
  // Step: the single entry point for messages.

  step(m: Message): void {
    // Before the term rules: a TimeoutNow of a later term would otherwise move our term first.
    if (m.type === MessageType.TimeoutNow && !this.acceptTimeoutNow(m)) return;
    if (!this.stepTerm(m)) return;
    switch (m.type) {
      case MessageType.Hup:
        this.hup(this.cfg.preVote ? 'preElection' : 'election');
        return;
      case MessageType.Vote:
      case MessageType.PreVote:
        this.handleVoteRequest(m);
        return;
    }
    switch (this.role) {
      case 'leader':
        this.stepLeader(m);
        return;
      case 'candidate':
      case 'preCandidate':
        this.stepCandidate(m);
        return;
      case 'follower':
        this.stepFollower(m);
        return;
      default:
        assertNever(this.role);
    }
  }

  /**
   * TimeoutNow makes this node campaign at once, bypassing the lease that protects a healthy
   * leader: only the leader of our current term may ask for it (it does so to hand leadership
   * over). From anyone else it is ignored, so no peer can force leader changes.
   */
  private acceptTimeoutNow(m: Message): boolean {
    if (this.role === 'follower' && m.term === this.term && this.lead !== null && m.from === this.lead) return true;
    // Not worth a warning: a stale one (the term rules drop it anyway), or a repeat that finds
    // this node already campaigning (a leader sends one per acknowledgement of a caught-up target).
    if (m.term < this.term || (m.term === this.term && (this.role === 'candidate' || this.role === 'preCandidate'))) return false;
    this.ignoredMessages++;
    this.cfg.logger?.warn(
      { term: this.term, from: m.from, msgTerm: m.term, lead: this.lead },
      'ignoring TimeoutNow that is not from the leader of the current term',
    );
    return false;
  }

  /** Applies the term rules common to every role. Returns false when m must be ignored. */
  private stepTerm(m: Message): boolean {
    if (m.term === 0) return true; // local message
    if (m.term > this.term) {
      if (m.type === MessageType.Vote || m.type === MessageType.PreVote) {
        const force = m.context !== undefined && m.context.length === 1 && m.context[0] === CAMPAIGN_TRANSFER[0];
        const inLease = this.cfg.checkQuorum && this.lead !== null && this.electionElapsed < this.cfg.electionTicks;
        // Within a leader lease we ignore disruptive candidates (thesis §4.2.3).
        if (!force && inLease) return false;
      }
      if (m.type === MessageType.PreVote) {
        // Never change our term on a pre-vote request.
      } else if (m.type === MessageType.PreVoteResp && !m.reject) {
        // A granted pre-vote for a future term: the term moves when the real election starts.
      } else if (m.type === MessageType.App || m.type === MessageType.Heartbeat || m.type === MessageType.Snap) {
        this.becomeFollower(m.term, m.from);
      } else {
        this.becomeFollower(m.term, null);
      }
      return true;
    }
    if (m.term < this.term) {
      if ((this.cfg.checkQuorum || this.cfg.preVote) && (m.type === MessageType.Heartbeat || m.type === MessageType.App)) {
        // A stale leader (e.g. healed from a partition) learns our term and steps down. Without
        // this, with PreVote on, it could keep sending to a cluster that ignores it forever.
        this.send({ type: MessageType.AppResp, to: m.from });
      } else if (m.type === MessageType.PreVote) {
        this.send({ type: MessageType.PreVoteResp, to: m.from, term: this.term, reject: true });
      }
      return false;
    }
    return true;
  }

  private stepLeader(m: Message): void {
    switch (m.type) {
      case MessageType.Beat:
        this.bcastHeartbeat(undefined);
        return;
      case MessageType.CheckQuorum:
        this.checkQuorum();
        return;
      case MessageType.ReadIndex:
        this.leaderReadIndex(m);
        return;
      case MessageType.TransferLeader:
        // A local request names the transferee in `from` (as in etcd); one forwarded by a
        // follower names it in `context`, because `from` must be the sender on the wire.
        this.leaderTransfer(m.context && m.context.length > 0 ? textOf(m.context) : m.from);
        return;
    }
    const pr = this.tracker.progress.get(m.from);
    if (!pr) return;
    switch (m.type) {
      case MessageType.AppResp:
        this.leaderAppResp(m, pr);
        return;
      case MessageType.HeartbeatResp:
        this.leaderHeartbeatResp(m, pr);
        return;
      case MessageType.SnapStatus:
        if (pr.state !== 'snapshot') return;
        if (m.reject) pr.pendingSnapshot = 0;
        pr.becomeProbe();
        // Wait for a heartbeat response before probing again (the follower may still be installing).
        pr.probeSent = true;
        return;
      case MessageType.Unreachable:
        if (pr.state === 'replicate') pr.becomeProbe();
        return;
    }
  }

  private leaderAppResp(m: Message, pr: Progress): void {
    if (m.index > this.log.lastIndex()) {
      // This leader never sent that index: believing it would send from past the end of the log.
      this.ignoredMessages++;
      this.cfg.logger?.warn(
        { term: this.term, from: m.from, index: m.index, lastIndex: this.log.lastIndex(), reject: m.reject },
        'ignoring append response beyond the last index',
      );
      return;
    }
    pr.recentActive = true;
    if (m.reject) {
      this.leaderAppReject(m, pr);
      return;
    }
    const wasPaused = pr.isPaused();
    if (!pr.maybeUpdate(m.index)) return; // a stale ack
    if (pr.state === 'probe') pr.becomeReplicate();
    else if (pr.state === 'snapshot' && pr.match >= pr.pendingSnapshot) {
      pr.becomeProbe();
      pr.becomeReplicate();
    } else if (pr.state === 'replicate') pr.inflights.freeLE(m.index);

    if (this.maybeCommit()) {
      this.releasePendingReadIndexMessages();
      this.bcastAppend();
    } else if (wasPaused) {
      this.sendAppend(m.from);
    }
    // Keep the pipeline full: send until the window is full or nothing is left.
    while (this.maybeSendAppend(m.from, false)) {
      /* loop */
    }
    if (m.from === this.leadTransferee && pr.match === this.log.lastIndex()) {
      this.cfg.logger?.info({ term: this.term, to: m.from }, 'transferee caught up; sending TimeoutNow');
      this.send({ type: MessageType.TimeoutNow, to: m.from });
    }
  }

  private leaderAppReject(m: Message, pr: Progress): void {
    const hint = this.log.findConflictByTerm(m.rejectHint, m.rejectHintTerm ?? 0);
    if (pr.state === 'probe' && m.index === pr.next - 1 && m.index <= pr.match) {
      this.followerLostEntries(m, pr, hint.index);
      return;
    }
    if (pr.maybeDecrTo(m.index, hint.index)) {
      if (pr.state === 'replicate') pr.becomeProbe();
      this.sendAppend(m.from);
    }
  }

  /**
   * The follower rejected our probe at an index it had acknowledged: it lost entries it promised
   * to keep (a disk that dropped its tail). Before, the probe was repeated at the same index
   * forever and the follower stayed behind for good. Now it is reported and repaired from the
   * follower's hint.
   *
   * Safety of lowering match: `match` only feeds tracker.committed(), and log.committed never
   * decreases (RaftLog.commitTo ignores lower values), so a lower match can delay a future commit
   * but never undo one. Whatever that follower lost and had counted towards a commit is a fault
   * the core cannot repair; saying so loudly is the most it can do.
   */
  private followerLostEntries(m: Message, pr: Progress, hintIndex: number): void {
    this.followerLogRegressions++;
    const next = Math.max(1, Math.min(m.index, hintIndex + 1));
    this.cfg.logger?.warn(
      { term: this.term, from: m.from, rejected: m.index, match: pr.match, resendFrom: next },
      'follower rejected an index it had acknowledged: it lost acknowledged entries; resending from its hint',
    );
    pr.match = next - 1;
    pr.next = next;
    pr.probeSent = false;
    this.sendAppend(m.from);
  }

  private leaderHeartbeatResp(m: Message, pr: Progress): void {
    pr.recentActive = true;
    pr.probeSent = false;
    // The follower is alive but the window is full: acknowledgements were probably lost. Free one
    // slot so replication restarts; a gap makes the follower reject and the leader probe again.
    if (pr.state === 'replicate' && pr.inflights.full()) pr.inflights.freeFirstOne();
    if (pr.match < this.log.lastIndex()) this.sendAppend(m.from);
    const round = decodeRound(m.context);
    if (round === undefined) return;
    const acks = this.readOnly.recvAck(m.from, round);
    if (!acks) return;
    let voterAcks = 0;
    for (const id of acks) if (this.tracker.voters.has(id)) voterAcks++;
    if (voterAcks < this.tracker.quorum()) return;
    for (const rs of this.readOnly.advance(round)) this.answerRead(rs.req, rs.index);
  }

  private answerRead(req: Message, index: number): void {
    if (req.from === this.id || req.from === '') {
      this.readStates.push({ index, requestCtx: req.context ?? EMPTY });
    } else {
      this.send({ type: MessageType.ReadIndexResp, to: req.from, index, ...(req.context ? { context: req.context } : {}) });
    }
  }

  private leaderReadIndex(m: Message): void {
    if (this.tracker.isSingleton() || this.cfg.plantedBug === 'stale-read') {
      this.answerRead(m, this.log.committed);
      return;
    }
    // Until the leader commits an entry of its term it does not know the latest commit index.
    if (!this.committedEntryInCurrentTerm()) {
      if (this.pendingReadIndexMessages.length < MAX_PENDING_READS) this.pendingReadIndexMessages.push(m);
      return;
    }
    this.registerRead(m);
  }

  private registerRead(m: Message): void {
    if (this.readOnly.addRequest(this.log.committed, m)) this.readIndexRoundPending = true;
  }

  private committedEntryInCurrentTerm(): boolean {
    return this.log.zeroTermOnOutOfBounds(this.log.committed) === this.term;
  }

  private releasePendingReadIndexMessages(): void {
    if (this.pendingReadIndexMessages.length === 0 || !this.committedEntryInCurrentTerm()) return;
    const msgs = this.pendingReadIndexMessages;
    this.pendingReadIndexMessages = [];
    for (const m of msgs) this.registerRead(m);
  }

  /** True when a flush owes messages (a ReadIndex round or appends for new proposals). */
  flushPending(): boolean {
    return this.readIndexRoundPending || this.appendFlushPending;
  }

  /** Sends one heartbeat round for all reads registered since the last one. */
  flushReadIndex(): void {
    if (!this.readIndexRoundPending) return;
    this.readIndexRoundPending = false;
    if (this.role !== 'leader') return;
    const round = this.readOnly.startRound(this.id);
    if (round !== undefined) this.bcastHeartbeat(encodeRound(round));
  }

  private leaderTransfer(target: NodeId): void {
    const pr = this.tracker.progress.get(target);
    if (!pr || pr.learner) {
      this.cfg.logger?.warn({ term: this.term, to: target }, 'ignoring leadership transfer to a non-voter');
      return;
    }
    if (this.leadTransferee === target) return;
    if (target === this.id) return;
    this.leadTransferee = target;
    this.electionElapsed = 0;
    this.cfg.logger?.info({ term: this.term, to: target }, 'transferring leadership');
    if (pr.match === this.log.lastIndex()) this.send({ type: MessageType.TimeoutNow, to: target });
    else this.sendAppend(target);
  }

  private stepCandidate(m: Message): void {
    const myRespType = this.role === 'preCandidate' ? MessageType.PreVoteResp : MessageType.VoteResp;
    switch (m.type) {
      case MessageType.App:
        this.becomeFollower(m.term, m.from);
        this.handleAppendEntries(m);
        return;
      case MessageType.Heartbeat:
        this.becomeFollower(m.term, m.from);
        this.handleHeartbeat(m);
        return;
      case MessageType.Snap:
        this.becomeFollower(m.term, m.from);
        this.handleSnapshot(m);
        return;
      case myRespType: {
        this.tracker.recordVote(m.from, !m.reject);
        const { result } = this.tracker.tallyVotes();
        if (result === 'won') {
          if (this.role === 'preCandidate') this.campaign('election');
          else {
            this.becomeLeader();
            this.bcastAppend();
          }
        } else if (result === 'lost') {
          this.becomeFollower(this.term, null);
        }
        return;
      }
    }
  }

  private stepFollower(m: Message): void {
    switch (m.type) {
      case MessageType.App:
        this.electionElapsed = 0;
        this.lead = m.from;
        this.handleAppendEntries(m);
        return;
      case MessageType.Heartbeat:
        this.electionElapsed = 0;
        this.lead = m.from;
        this.handleHeartbeat(m);
        return;
      case MessageType.Snap:
        this.electionElapsed = 0;
        this.lead = m.from;
        this.handleSnapshot(m);
        return;
      case MessageType.TransferLeader:
        if (this.lead !== null) {
          const target = m.context && m.context.length > 0 ? m.context : bytesOf(m.from);
          this.msgs.push({ ...m, from: this.id, to: this.lead, term: 0, context: target });
        }
        return;
      case MessageType.TimeoutNow:
        this.cfg.logger?.info({ term: this.term, from: m.from }, 'received TimeoutNow; campaigning');
        this.hup('transfer');
        return;
      case MessageType.ReadIndex:
        // Only this node's own requests are forwarded: one a peer forwarded here (it took us for
        // the leader) would leave with that peer's id as `from`, which the receiving transport
        // refuses as a forgery. The requester times out and asks again.
        if (this.lead !== null && m.from === this.id) this.msgs.push({ ...m, to: this.lead, term: 0 });
        return;
      case MessageType.ReadIndexResp:
        this.readStates.push({ index: m.index, requestCtx: m.context ?? EMPTY });
        return;
    }
  }

  // ---------------------------------------------------------------------------------------------
  // Follower side of replication.

  private handleAppendEntries(m: Message): void {
    if (m.index < this.log.committed) {
      this.send({ type: MessageType.AppResp, to: m.from, index: this.log.committed });
      return;
    }
    const lastNew = this.log.maybeAppend(m.index, m.logTerm, m.commit, m.entries);
    if (lastNew !== undefined) {
      this.send({ type: MessageType.AppResp, to: m.from, index: lastNew });
      return;
    }
    // Reject with a hint: the last index <= min(m.index, lastIndex) whose term <= m.logTerm.
    const hint = this.log.findConflictByTerm(Math.min(m.index, this.log.lastIndex()), m.logTerm);
    this.send({
      type: MessageType.AppResp,
      to: m.from,
      index: m.index,
      reject: true,
      rejectHint: hint.index,
      rejectHintTerm: hint.term,
    });
  }

  private handleHeartbeat(m: Message): void {
    // The leader sends min(match, commit), so this never passes our log.
    this.log.commitTo(Math.min(m.commit, this.log.lastIndex()));
    this.send({ type: MessageType.HeartbeatResp, to: m.from, ...(m.context ? { context: m.context } : {}) });
  }

  private handleSnapshot(m: Message): void {
    const s = m.snapshot;
    if (!s) return;
    if (this.restore(s)) {
      this.cfg.logger?.info({ term: this.term, index: s.metadata.index }, 'restored snapshot');
      this.send({ type: MessageType.AppResp, to: m.from, index: this.log.lastIndex() });
    } else {
      this.send({ type: MessageType.AppResp, to: m.from, index: this.log.committed });
    }
  }

  /** Installs a snapshot unless we already have its content. Returns true when it was installed. */
  private restore(s: Snapshot): boolean {
    const { index, term } = s.metadata;
    if (index <= this.log.committed) return false;
    if (this.log.matchTerm(index, term)) {
      // We have the entry: just fast-forward the commit index.
      this.log.commitTo(index);
      return false;
    }
    this.log.restore(s);
    this.tracker.reset(s.metadata.confState, this.log.lastIndex() + 1);
    const self = this.tracker.progress.get(this.id);
    if (self) self.match = this.log.lastIndex();
    return true;
  }

  // ---------------------------------------------------------------------------------------------
  // Leader side of replication.

  /** Appends entries as leader; returns the index of the last one. `force` skips the size limit. */
  private appendEntries(ents: Entry[], force = false): number {
    let bytes = 0;
    for (const e of ents) bytes += entrySize(e);
    if (!force && this.uncommittedBytes > 0 && this.uncommittedBytes + bytes > this.cfg.maxUncommittedBytes) {
      throw new ProposalDroppedError(`over the uncommitted-bytes limit (${this.cfg.maxUncommittedBytes})`);
    }
    this.uncommittedBytes += bytes;
    let li = this.log.lastIndex();
    for (const e of ents) {
      e.term = this.term;
      e.index = ++li;
    }
    li = this.log.append(ents);
    this.tracker.progress.get(this.id)?.maybeUpdate(li);
    this.maybeCommit();
    return li;
  }

  /** Releases the budget of applied entries (the leader's uncommitted-bytes limit). */
  reduceUncommittedBytes(ents: Entry[]): void {
    if (this.uncommittedBytes === 0) return;
    let bytes = 0;
    for (const e of ents) bytes += entrySize(e);
    this.uncommittedBytes = Math.max(0, this.uncommittedBytes - bytes);
  }

  private maybeCommit(): boolean {
    return this.log.maybeCommit(this.tracker.committed(), this.term, this.cfg.plantedBug === 'commit-previous-term');
  }

  private sendAppend(to: NodeId): void {
    this.maybeSendAppend(to, true);
  }

  /** Sends entries (or a snapshot) to `to` unless its progress is paused. Returns true if sent. */
  private maybeSendAppend(to: NodeId, sendIfEmpty: boolean): boolean {
    const pr = this.tracker.progress.get(to);
    if (!pr || to === this.id || pr.isPaused()) return false;
    let prevTerm: number;
    let ents: Entry[];
    try {
      prevTerm = this.log.term(pr.next - 1);
      ents = this.log.entriesFrom(pr.next, this.cfg.maxBytesPerAppend);
    } catch (e) {
      if (e instanceof CompactedError) return this.maybeSendSnapshot(to, pr);
      throw e;
    }
    if (ents.length === 0 && !sendIfEmpty) return false;
    let bytes = 0;
    for (const e of ents) bytes += entrySize(e);
    this.send({
      type: MessageType.App,
      to,
      index: pr.next - 1,
      logTerm: prevTerm,
      entries: ents,
      commit: this.log.committed,
    });
    pr.sentEntries(ents.length > 0 ? ents[ents.length - 1]!.index : pr.next - 1, ents.length, bytes);
    return true;
  }

  private maybeSendSnapshot(to: NodeId, pr: Progress): boolean {
    // A follower we have not heard from may be down; do not waste a snapshot on it.
    if (!pr.recentActive) return false;
    let snap: Snapshot;
    try {
      snap = this.log.snapshot();
    } catch (e) {
      if (e instanceof SnapshotTemporarilyUnavailableError) return false;
      throw e;
    }
    assert(snap.metadata.index > 0, 'need a non-empty snapshot');
    pr.becomeSnapshot(snap.metadata.index);
    this.cfg.logger?.info({ term: this.term, to, index: snap.metadata.index }, 'sending snapshot');
    this.send({ type: MessageType.Snap, to, snapshot: snap });
    return true;
  }

  private bcastAppend(): void {
    for (const id of this.tracker.progress.keys()) if (id !== this.id) this.sendAppend(id);
  }

  private bcastHeartbeat(ctx: Uint8Array | undefined): void {
    // Plain heartbeats carry the newest waiting round, so a lost round is confirmed by the next beat.
    const pending = this.readOnly.newestPendingRound();
    const c = ctx ?? (pending !== undefined ? encodeRound(pending) : undefined);
    for (const [id, pr] of this.tracker.progress) {
      if (id === this.id) continue;
      this.send({
        type: MessageType.Heartbeat,
        to: id,
        commit: Math.min(pr.match, this.log.committed),
        ...(c ? { context: c } : {}),
      });
    }
  }

  // ---------------------------------------------------------------------------------------------
  // Proposals and membership.

  propose(data: Uint8Array): { index: number; term: number } {
    this.checkCanPropose();
    const index = this.appendEntries([{ term: 0, index: 0, type: EntryType.Normal, data }]);
    // Replication is deferred to the next flush (RawNode.ready): all proposals of one turn of the
    // host loop travel in one append message per follower instead of one message each.
    this.appendFlushPending = true;
    return { index, term: this.term };
  }

  /** Sends the appends owed for proposals since the last flush. */
  flushAppends(): void {
    if (!this.appendFlushPending) return;
    this.appendFlushPending = false;
    if (this.role !== 'leader') return;
    for (const id of this.tracker.progress.keys()) {
      if (id !== this.id) this.maybeSendAppend(id, false);
    }
  }

  proposeConfChange(cc: ConfChange, data: Uint8Array): { index: number; term: number } {
    this.checkCanPropose();
    if (this.pendingConfIndex > this.log.applied) {
      throw new ProposalDroppedError('a configuration change is pending; one at a time');
    }
    const isVoter = this.tracker.voters.has(cc.nodeId);
    if (cc.type === ConfChangeType.AddLearner && isVoter) {
      throw new ProposalDroppedError(`${cc.nodeId} is a voter; demoting to learner is not supported`);
    }
    if (cc.type === ConfChangeType.RemoveNode && isVoter && this.tracker.voters.size === 1) {
      throw new ProposalDroppedError('cannot remove the last voter');
    }
    const index = this.appendEntries([{ term: 0, index: 0, type: EntryType.ConfChange, data }]);
    this.pendingConfIndex = index;
    this.bcastAppend();
    return { index, term: this.term };
  }

  private checkCanPropose(): void {
    if (this.role !== 'leader') throw new NotLeaderError(this.lead);
    if (!this.tracker.progress.has(this.id)) throw new ProposalDroppedError('this node was removed from the cluster');
    if (this.leadTransferee !== null) throw new ProposalDroppedError('leadership transfer in progress');
  }

  /** Applies a committed conf change to the membership; returns the new ConfState. */
  applyConfChange(cc: ConfChange): ConfState {
    const t = this.tracker;
    const next = this.log.lastIndex() + 1;
    switch (cc.type) {
      case ConfChangeType.AddNode: {
        const pr = t.progress.get(cc.nodeId);
        if (pr) pr.learner = false;
        else t.progress.set(cc.nodeId, t.newProgress(next, false));
        t.learners.delete(cc.nodeId);
        t.voters.add(cc.nodeId);
        break;
      }
      case ConfChangeType.AddLearner:
        if (!t.voters.has(cc.nodeId)) {
          if (!t.progress.has(cc.nodeId)) t.progress.set(cc.nodeId, t.newProgress(next, true));
          t.learners.add(cc.nodeId);
        }
        break;
      case ConfChangeType.RemoveNode:
        t.voters.delete(cc.nodeId);
        t.learners.delete(cc.nodeId);
        t.progress.delete(cc.nodeId);
        break;
      default:
        assertNever(cc.type);
    }
    // New progress entries should be recently active so that a snapshot can be sent at once.
    const added = t.progress.get(cc.nodeId);
    if (added && cc.type !== ConfChangeType.RemoveNode) added.recentActive = true;
    if (this.role === 'leader') this.afterLeaderConfChange(cc);
    return t.confState();
  }

  private afterLeaderConfChange(cc: ConfChange): void {
    if (!this.tracker.voters.has(this.id)) {
      // Removed (or never a voter): step down and let the rest elect a leader.
      this.cfg.logger?.info({ term: this.term }, 'leader removed from the configuration; stepping down');
      this.becomeFollower(this.term, null);
      return;
    }
    if (cc.type === ConfChangeType.RemoveNode && this.leadTransferee === cc.nodeId) this.leadTransferee = null;
    // Fewer voters may mean more is committed now.
    if (this.maybeCommit()) this.bcastAppend();
    else for (const id of this.tracker.progress.keys()) this.maybeSendAppend(id, false);
  }

  status(): Status {
    const progress: Status['progress'] = {};
    if (this.role === 'leader') {
      for (const [id, pr] of this.tracker.progress) progress[id] = pr.toStatus();
    }
    return {
      id: this.id,
      hardState: this.hardState(),
      softState: this.softState(),
      applied: this.log.applied,
      lastIndex: this.log.lastIndex(),
      confState: this.tracker.confState(),
      ...(this.role === 'leader' ? { progress } : {}),
      leadTransferee: this.leadTransferee,
      ignoredMessages: this.ignoredMessages,
      followerLogRegressions: this.followerLogRegressions,
    };
  }

  // ---------------------------------------------------------------------------------------------
  // Host reports.

  reportUnreachable(id: NodeId): void {
    this.step(newMessage({ type: MessageType.Unreachable, from: id, to: this.id }));
  }

  reportSnapshot(id: NodeId, ok: boolean): void {
    this.step(newMessage({ type: MessageType.SnapStatus, from: id, to: this.id, reject: !ok }));
  }
}

export { decodeConfChange };
