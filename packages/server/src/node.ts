// A quorumkv node: the public QuorumKvNode facade and the wiring of the host's rooms, each in its
// own file (docs/server.md, "The host loop"):
//
//   ready-loop.ts      one Ready: send / persist / apply in the order the rules allow
//   apply-pipeline.ts  committed entries to the state machine, in order, behind the log write
//   write-waiters.ts   writers waiting for their entry's result
//   read-index.ts      linearizable reads (one ReadIndex request per turn)
//   log-compactor.ts   log compaction at the loop's compaction point (compaction.ts decides when)
//   founding.ts, identity.ts, membership.ts   who a node is, who may vote
//
// Writers are answered when their entry's result is computed (the batch's LevelDB write may still
// be queued: committed entries re-apply identically after a crash); reads when the applied index
// — advanced once the batch is written — reaches theirs.
//
// Everything that can pile up has a named maximum (config.ts); past it, writes are refused at
// once with QKV_BUSY rather than queued.
import {
  BadMessageError,
  MessageType,
  MemoryStorage,
  NotLeaderError as RaftNotLeaderError,
  ProposalDroppedError,
  RawNode,
  decodeConfChange,
  type ConfChange,
  type Entry,
  type HardState,
  type Message,
  type Ready,
  type Role,
} from '@quorumkv/raft';
import {
  encodeCommandAt,
  type ApplyItem,
  type Command,
  type KeyValue,
  type Member,
  type Membership,
  type NodeStore,
  type RangePage,
  type RangePageOptions,
  type ReadOptions,
  type RangeRequest,
} from '@quorumkv/storage';
import {
  BusyError,
  IndeterminateError,
  InvalidArgumentError,
  NoLeaderError,
  NotLeaderError,
  TimeoutError,
  UnavailableError,
  type LeaderHint,
} from '@quorumkv/protocol';
import { confStateOf } from './compaction.js';
import { LogCompactor } from './log-compactor.js';
import { historyCompactTarget } from './history-retention.js';
import type { ServeConfig } from './config.js';
import type { Logger } from './logger.js';
import type { NodeMetrics } from './metrics.js';
import { LeaderHistory } from './leader-history.js';
import { memberContext, membershipFromPeers, parseMemberContext, unrecordedVoterChange, votingSuspension, type VotingSuspension } from './membership.js';
import { recordOrigin } from './identity.js';
import { decideFounding } from './founding.js';
import { sleepOn, type NodeWorld, type PeerLink } from './host-world.js';
import { ReadIndexBatcher, type Deadline } from './read-index.js';
import { ApplyPipeline } from './apply-pipeline.js';
import { handleReady, type ReadyEffects } from './ready-loop.js';
import { WriteWaiters, type WriteResult } from './write-waiters.js';
import { hostAssert } from './host-assert.js';
import { IdentityGuard, type IdentityHost } from './identity-guard.js';
import { restoreNode, type RestoredNode } from './node-bootstrap.js';
import { OpsSwitches } from './ops-switches.js';
import { LeaderlessTime } from './availability.js';
import type { Clock, TimerHandle } from './world.js';

/** How long a `busy` client is told to wait before retrying. */
const BUSY_RETRY_AFTER_MS = 50;
/** A node is "ready" (GET /ready) when applied is within this many entries of commit. */
export const READY_MAX_APPLY_LAG = 1000;

export type { WriteResult } from './write-waiters.js';

export interface NodeStatusView {
  id: string;
  role: Role | 'learner';
  term: number;
  leader: string | null;
  commitIndex: number;
  appliedIndex: number;
  lastIndex: number;
  /** First log index still held (entries before it are compacted into a snapshot). */
  firstIndex: number;
  appliedHash: string;
  zone: string | undefined;
  voter: boolean;
  /**
   * Set while the log ends before the last index this node made durable and acknowledged (its
   * high-water mark): it then neither votes nor serves reads until the leader re-sends the rest.
   */
  storageShortfall: StorageShortfall | null;
  /**
   * Why this node does not campaign now (membership.ts, votingSuspension), or null; for `storage`
   * it refuses vote requests too.
   */
  votingSuspended: VotingSuspension['kind'] | null;
  votingSuspendedReason: string | null;
}

/** The node's log holds less than it promised its peers (see docs/storage.md, "High-water mark"). */
export interface StorageShortfall {
  lastIndex: number;
  markIndex: number;
  /** One sentence for operators (/ready, /v1/status, the log, read errors). */
  reason: string;
}

export class QuorumKvNode {
  readonly id: string;
  readonly cfg: ServeConfig;
  readonly log: Logger;
  readonly metrics: NodeMetrics;
  readonly store: NodeStore;
  readonly mem: MemoryStorage;
  readonly raw: RawNode;
  readonly transport: PeerLink;
  /** Time and timers (host-world.ts): the only clock the host reads. */
  readonly clock: Clock;
  private readonly world: NodeWorld;

  private role: Role = 'follower';
  private leader: string | null = null;
  private members: Membership;
  /** The current hard state: its term and vote are on disk; its commit may be ahead of the disk's. */
  private persisted: HardState;
  private readonly lastContactMs = new Map<string, number>();

  /** This data directory's incarnation id (identity.ts). */
  readonly incarnation: string;
  /** Who is let in: incarnation pins, the cluster id, the founding promise (identity-guard.ts). */
  private readonly identityGuard: IdentityGuard;
  /** Set by open(): an empty data directory with the founding flag; found() decides before start(). */
  foundingPending = false;
  /** start() ran: peer messages reach the core only from then on. */
  private started = false;
  /**
   * This node has a membership (founded, restored, or replicated to). Until then it is an empty
   * node waiting to be added and drops vote requests: an empty node's vote could elect a leader
   * that lacks writes it acknowledged before losing its disk (docs/server.md, "Who a node is").
   */
  private hasMembership: boolean;

  /** Test-only slow disk (jepsen-lite): added to every synced write. Changed at run time by the harness. */
  faultFsyncDelayMs = 0;

  private loopScheduled = false;
  private inTurn = false;
  private stopped = false;
  /** A retention compact this leader proposed is not answered yet (one at a time). */
  private compactProposed = false;
  private ticker: TimerHandle | undefined;
  private fatalError: Error | undefined;
  /** Set while the log is short of the high-water mark (voting suspended, reads refused). */
  private shortfall: StorageShortfall | null = null;
  /** This data directory founded the cluster (identity.ts, ORIGIN); set by open() and found(). */
  private foundedHere = false;
  /** A founding member replicated into (identity.ts, Origin.foundingMember). */
  private foundingMember = false;
  /** The voting decision in force (updateVoting); null while this node may vote. */
  private votingHold: VotingSuspension | null = null;
  /** Peer messages the core refused (BadMessageError) since start; see onPeerMessage. */
  peerMessagesRefused = 0;

  /** Committed entries to the state machine, behind the log write (apply-pipeline.ts). */
  private readonly applying: ApplyPipeline;
  private readonly readyEffects: ReadyEffects;
  /** Writers waiting for their entry's result (write-waiters.ts). */
  private readonly writes = new WriteWaiters();
  /** Linearizable reads: one ReadIndex request per turn (read-index.ts). */
  private readonly reads: ReadIndexBatcher;

  /** Called for leader-emitted snapshot messages and installs (set by the snapshot module). */
  snapshotHooks: SnapshotHooks | undefined;
  /** Receives snapshot-channel connections (set by the snapshot module). */
  snapshotAcceptor: ((peer: string, ws: import('ws').WebSocket) => void) | undefined;
  /** Snapshot transfers in flight, for /v1/status (set by the snapshot module). */
  snapshotStatus: (() => unknown) | undefined;
  /** The catch-up throttle's mode, rate and state, for /v1/status (set by server.ts). */
  catchupThrottleView: (() => unknown) | undefined;
  /** The operator's maintenance and snapshot-pause switches (ops-switches.ts; persisted by server.ts). */
  opsSwitches = new OpsSwitches();
  /** The leader changes this node saw, bounded (leader-history.ts), for /v1/events and the status page. */
  readonly leaderHistory = new LeaderHistory();
  /** Seconds without a known leader, for `qkv_leaderless_seconds_total` (availability.ts). */
  readonly leaderless: LeaderlessTime;

  /** Log compaction at the loop's compaction point (log-compactor.ts). */
  private readonly compactor: LogCompactor;

  private constructor(args: RestoredNode & { cfg: ServeConfig; log: Logger; metrics: NodeMetrics; world: NodeWorld }) {
    this.id = args.cfg.id;
    this.world = args.world;
    // A batch unanswered for half an election timeout is submitted again (its request or answer
    // may have been lost with a message: a peer link being replaced, a partition that healed).
    this.reads = new ReadIndexBatcher({
      resubmitAfterMs: (args.cfg.electionTicks * args.cfg.tickMs) / 2,
      serveBeforeApplied: args.world.plant === 'read-before-applied',
    });
    this.clock = args.world.clock;
    this.leaderless = new LeaderlessTime(this.clock.nowMs());
    this.cfg = args.cfg;
    this.log = args.log;
    this.metrics = args.metrics;
    this.store = args.store;
    this.mem = args.mem;
    this.raw = args.raw;
    this.members = args.members;
    this.persisted = args.persisted;
    this.incarnation = args.incarnation;
    this.foundingPending = args.foundingPending;
    this.identityGuard = new IdentityGuard(this.identityHost(), args.pins, args.clusterId);
    const cs = args.raw.status().confState;
    this.hasMembership = cs.voters.length + cs.learners.length > 0;
    this.faultFsyncDelayMs = args.cfg.faultFsyncDelayMs;
    this.compactor = new LogCompactor(
      {
        mem: args.mem,
        compactOnDisk: (compactTo) => this.store.log.compact(compactTo),
        heldIndex: () => this.snapshotHooks?.heldIndex() ?? null,
        confState: () => confStateOf(this.members),
        elapsedMs: () => this.world.elapsedMs(),
        log: args.log,
        schedule: () => this.schedule(),
      },
      args.cfg,
      { snapshotIndex: args.mem.snapshot().metadata.index, appliedIndex: args.store.kv.appliedIndex() },
    );
    this.applying = new ApplyPipeline({
      kv: args.store.kv,
      elapsedMs: () => this.world.elapsedMs(),
      confChange: (e) => this.confChangeItem(e),
      onComputed: (entries, results) => {
        for (let i = 0; i < entries.length; i++) this.writes.settle(entries[i]!.index, entries[i]!.term, results[i]!);
      },
      onWritten: (batch) => this.onApplyWritten(batch),
      onFatal: (e) => this.fatal(e),
    });
    this.readyEffects = this.makeReadyEffects();
    this.transport = args.world.peers({
      incarnation: this.incarnation,
      clusterId: () => this.identityGuard.clusterId,
      checkIncarnation: (peer, inc, cluster) => this.identityGuard.checkHello(peer, inc, cluster),
      onProbe: (peer) => this.identityGuard.foundingAnswer(peer),
      onMessage: (m, incarnation) => this.onPeerMessage(m, incarnation),
      onPeerDown: (peer) => {
        this.raw.reportUnreachable(peer);
        this.schedule();
      },
    });
    this.transport.setPeers(this.peerAddresses());
  }

  /**
   * Restores the core from the world's store and identity files (node-production.ts opens the
   * production world: openProductionNode). Call found() (a founding node) and start() next.
   */
  static async open(cfg: ServeConfig, log: Logger, metrics: NodeMetrics, world: NodeWorld): Promise<QuorumKvNode> {
    try {
      const parts = await restoreNode(cfg, log, world);
      const node = new QuorumKvNode({ cfg, log, metrics, world, ...parts });
      node.foundedHere = parts.origin?.foundedHere ?? false;
      node.foundingMember = parts.origin?.foundingMember ?? false;
      node.checkShortfall();
      return node;
    } catch (e) {
      await world.store.close().catch(() => undefined);
      throw e;
    }
  }

  /**
   * The founding handshake of an empty data directory started with the founding flag (call once
   * the node listens, so founding peers can probe each other): founds the cluster — writes the
   * founding entries — or starts empty to be replicated to. Throws FoundingRefusedError when a
   * founded peer knows this member under another incarnation.
   */
  async found(): Promise<void> {
    if (!this.foundingPending) return;
    const self = this.cfg.peers.find((p) => p.id === this.id)!;
    const decision = await decideFounding({
      self,
      incarnation: this.incarnation,
      peers: this.cfg.peers,
      probe: (peer) => this.transport.probe(peer.id, peer.address),
      committed: () => this.identityGuard.promisedToFound(),
      log: this.log,
      isStopped: () => this.stopped,
      clock: this.clock,
    });
    // Pin the partners whose "not founded" answers counted, before this node answers probes as
    // founded (nothing below awaits): their first connection meets the pin.
    if (decision.kind === 'found') for (const p of decision.partners) this.identityGuard.pins.pin(p.id, p.incarnation, 0);
    this.foundingPending = false;
    // Durable before the founding entries (or the leader's) can reach the log.
    const foundingMember = decision.kind === 'join' && decision.member;
    recordOrigin(this.world.identity, decision.kind === 'found', foundingMember);
    this.foundedHere = decision.kind === 'found';
    this.foundingMember = foundingMember;
    if (decision.kind === 'join') {
      this.transport.setPeers(this.peerAddresses());
      return;
    }
    // A founding member writes the initial membership into its log (entries 1..N).
    // The entries must be byte-identical on every founding member: only shared facts go in.
    // The cluster id is a hash of exactly those facts, so members started with different
    // --peers refuse each other instead of silently writing different logs.
    const voters = this.cfg.peers.map((p) => ({ id: p.id, context: memberContext(p.address) }));
    this.identityGuard.found(voters);
    this.raw.bootstrap(voters);
    // The founding membership, at once: probes are answered with it, and applying entries 1..N
    // (each an AddNode of a member already here) changes nothing, so no peer link is dropped
    // and redialled in between.
    this.members = membershipFromPeers(this.cfg.peers);
    this.hasMembership = true;
    this.updateVoting();
    this.transport.setPeers(this.peerAddresses());
    this.log.info({ voters: this.cfg.peers.map((p) => p.id), incarnation: this.incarnation }, 'founded a new cluster (bootstrapped the founding membership)');
  }

  start(): void {
    if (this.foundingPending) throw new Error('start() before found(): the founding handshake has not run');
    this.started = true;
    this.armTicker();
    this.schedule();
  }

  /** One tick every cfg.tickMs; re-armed before the tick runs, so a failing tick does not stop them. */
  private armTicker(): void {
    this.ticker = this.clock.setTimer(this.cfg.tickMs, () => {
      this.ticker = undefined;
      if (this.stopped) return;
      this.armTicker();
      this.onTick();
    });
  }

  // -----------------------------------------------------------------------------------------
  // Inputs.

  private onTick(): void {
    if (this.stopped) return;
    this.raw.tick();
    const nowMs = this.clock.nowMs();
    this.identityGuard.recordIncarnations(nowMs);
    this.expireWaiters(nowMs);
    this.refreshGauges();
    this.retainHistory();
    this.schedule();
  }

  /** The leader proposes a compact when history exceeds `historyRetainRevisions` (history-retention.ts). */
  private retainHistory(): void {
    if (this.role !== 'leader' || this.compactProposed) return;
    const a = this.store.kv.applied();
    const revision = historyCompactTarget(a.revision, a.compactedRevision, this.cfg.historyRetainRevisions);
    if (revision === undefined) return;
    this.compactProposed = true;
    // Through a promise: write() may throw at once (not writable), which must not escape the tick.
    Promise.resolve()
      .then(() => this.write({ op: 'compact', revision }, { deadlineMs: this.clock.nowMs() + this.cfg.requestTimeoutMs }))
      .catch((err: unknown) => this.log.warn({ err, revision }, 'history retention: the compact was not applied; retried on a later tick'))
      .finally(() => {
        this.compactProposed = false;
      });
  }

  private refreshGauges(): void {
    const m = this.metrics;
    const st = this.raw.status();
    m.term.set(st.hardState.term);
    m.commitIndex.set(st.hardState.commit);
    m.appliedIndex.set(this.store.kv.appliedIndex());
    m.isLeader.set(this.role === 'leader' ? 1 : 0);
    for (const r of ['follower', 'preCandidate', 'candidate', 'leader'] as const) m.role.set({ role: r }, this.role === r ? 1 : 0);
    m.proposalsPending.set(this.writes.size);
    m.readsPending.set(this.reads.pending);
    m.storageShortfall.set(this.shortfall ? this.shortfall.markIndex - this.store.log.lastIndex() : 0);
    if (st.progress) {
      for (const [peer, pr] of Object.entries(st.progress)) if (peer !== this.id) m.peerLag.set({ peer }, Math.max(0, st.lastIndex - pr.match));
    }
  }

  /**
   * A message from an authenticated peer connection (the transport has checked its shape, its
   * sender and its addressee). Throws BadMessageError for a message no correct peer sends; the
   * transport then closes that connection with the error as the reason and logs it. The node
   * itself is unchanged: the core refuses such a message before touching any state. A message
   * of an incarnation this node does not know the peer as is dropped unless it is a leader's
   * append or heartbeat (identity-guard.ts, admits).
   */
  private onPeerMessage(m: Message, incarnation: string): void {
    if (this.stopped || !this.started) return;
    if (!this.identityGuard.admits(m, incarnation)) return;
    if (!this.hasMembership && (m.type === MessageType.Vote || m.type === MessageType.PreVote)) {
      this.log.debug({ from: m.from, type: m.type }, 'vote request dropped: this node has no membership yet (waiting to be added)');
      return;
    }
    try {
      // Snapshots arrive only through the snapshot channel, verified (snapshots.ts).
      if (m.type === MessageType.Snap) throw new BadMessageError(m.from, 'a snapshot in a raft frame (snapshots use the snapshot channel)');
      this.raw.step(m);
    } catch (e) {
      if (e instanceof BadMessageError) {
        this.metrics.peerMessagesRefused.inc();
        this.peerMessagesRefused++;
        this.log.warn({ peer: m.from, type: m.type, msgTerm: m.term, term: this.raw.raft.term, err: e.message }, 'refused a peer message');
      } else {
        this.fatal(e as Error); // the core's own invariant broke: stopping is safer than continuing
      }
      throw e;
    }
    this.lastContactMs.set(m.from, this.clock.nowMs());
    this.schedule();
  }

  /** Runs the loop on the next turn of the event loop (coalescing many inputs into one Ready). */
  schedule(): void {
    if (this.loopScheduled || this.stopped) return;
    this.loopScheduled = true;
    this.world.defer(this.scheduledTurn);
  }

  private readonly scheduledTurn = (): void => {
    this.loopScheduled = false;
    void this.turn();
  };

  // -----------------------------------------------------------------------------------------
  // The host loop.

  private async turn(): Promise<void> {
    if (this.inTurn || this.stopped) return;
    this.inTurn = true;
    try {
      this.reads.submit((ctx) => this.raw.readIndex(ctx), this.clock.nowMs());
      this.compactor.step();
      while (!this.stopped && this.raw.hasReady()) {
        await this.handleReady(this.raw.ready());
        this.compactor.step(); // the loop's compaction point: between two Readys
      }
    } catch (e) {
      this.fatal(e as Error);
    } finally {
      this.inTurn = false;
    }
  }

  /** One Ready, in the order ready-loop.ts keeps (persist before send, apply only what is persisted). */
  private handleReady(rd: Ready): Promise<void> {
    return handleReady(rd, this.readyEffects);
  }

  /** The effects of handling a Ready (ready-loop.ts decides their order). */
  private makeReadyEffects(): ReadyEffects {
    return {
      plant: this.world.plant,
      persistedHardState: () => this.persisted,
      onSoftState: (role: Role, lead: string | null) => this.onSoftState(role, lead),
      role: () => this.role,
      send: (msgs: Message[]) => this.sendMessages(msgs),
      appliedAndWritten: () => this.appliedAndWritten(),
      installSnapshot: (snap: NonNullable<Ready['snapshot']>) => this.installSnapshot(snap),
      persist: (rd: Ready) => this.persist(rd),
      keepCommitInMemory: (hs: HardState) => this.keepCommitInMemory(hs),
      lastIndex: () => this.mem.lastIndex(),
      queueApply: (entries: Entry[]) => this.applying.queue(entries),
      onReadStates: (readStates: Ready['readStates']) => this.reads.onReadStates(readStates, this.store.kv.appliedIndex()),
      advance: (rd: Ready) => this.advance(rd),
    };
  }

  /** Tells the core the Ready was handled; the core's applied is then what the pipeline queued. */
  private advance(rd: Ready): void {
    this.raw.advance(rd);
    const st = this.raw.raft.log;
    // Paired with ApplyPipeline.queue: the core counts as applied exactly what was queued, and
    // nothing past its commit index.
    hostAssert(st.applied === this.applying.queued() && st.applied <= st.committed, () => `core applied ${st.applied}, queued ${this.applying.queued()}, committed ${st.committed}`);
  }

  /** Resolves once every queued batch is applied and written. */
  private appliedAndWritten(): Promise<void> {
    return this.applying.appliedAndWritten();
  }

  private async persist(rd: Ready): Promise<void> {
    const t0 = this.world.elapsedMs();
    await this.store.log.append({ ...(rd.hardState ? { hardState: rd.hardState } : {}), entries: rd.entries, sync: rd.mustSync });
    if (this.faultFsyncDelayMs > 0 && rd.mustSync) await sleepOn(this.clock, this.faultFsyncDelayMs);
    if (rd.mustSync) this.metrics.fsyncSeconds.observe((this.world.elapsedMs() - t0) / 1e3);
    if (rd.entries.length > 0) this.metrics.batchEntries.observe(rd.entries.length);
    this.mem.append(rd.entries);
    if (rd.hardState) {
      this.mem.setHardState(rd.hardState);
      this.persisted = rd.hardState;
    }
    if (this.shortfall) this.checkShortfall();
  }

  /**
   * Compares the log with the high-water mark (docs/storage.md). Short of it, the node has lost
   * entries it acknowledged: its vote or a read served from it could break a promise the cluster
   * relies on, so it suspends voting and refuses reads, and keeps accepting the leader's appends.
   * Once the log reaches the mark again, both resume.
   */
  private checkShortfall(): void {
    const s = this.store.log.shortfall();
    if (s && !this.shortfall) {
      const reason =
        `the log ends at index ${s.lastIndex} but this node acknowledged entries up to ${s.markIndex} ` +
        '(its storage lost them); not voting or serving reads until the leader re-sends them';
      this.shortfall = { ...s, reason };
      this.log.error({ lastIndex: s.lastIndex, markIndex: s.markIndex }, `storage is behind its high-water mark: ${reason}`);
    } else if (!s && this.shortfall) {
      this.log.info({ lastIndex: this.store.log.lastIndex(), markIndex: this.shortfall.markIndex }, 'the log reached its high-water mark again; voting and reads resume');
      this.shortfall = null;
    }
    this.updateVoting();
  }

  /**
   * Applies the voting decision (membership.ts, votingSuspension: the one place that decides) to
   * the core, and logs it once when it changes. Runs at start-up and after founding, after every
   * applied membership change (an incarnation record is one) in the same step as the core applies
   * it, after a snapshot install, and whenever the storage shortfall is checked.
   */
  private updateVoting(): void {
    const next = votingSuspension({
      selfId: this.id,
      incarnation: this.incarnation,
      members: this.members,
      foundedHere: this.foundedHere,
      foundingMember: this.foundingMember,
      foundingVoters: this.cfg.peers.map((p) => p.id),
      storageShortfall: this.shortfall?.reason ?? null,
    });
    const prev = this.votingHold;
    this.votingHold = next;
    this.raw.suspendCampaigning(next !== null);
    this.raw.suspendVoting(next?.refusesVotes === true);
    if ((prev?.kind === 'identity') !== (next?.kind === 'identity')) this.transport.setPeers(this.peerAddresses());
    if (prev?.kind === next?.kind && prev?.reason === next?.reason) return;
    const term = this.raw.status().hardState.term;
    const what = next?.refusesVotes ? 'voting suspended' : 'campaigning suspended (vote requests are still answered)';
    if (next) this.log.info({ term, votingSuspended: next.kind }, `${what} (${next.kind}): ${next.reason}`);
    else this.log.info({ term, was: prev?.kind }, 'voting resumed: this node may campaign and vote');
  }

  /** Throws while the node must not serve reads (its log is short of what it acknowledged). */
  private checkReadable(): void {
    if (this.shortfall) throw new UnavailableError(`this node cannot serve reads: ${this.shortfall.reason}`);
  }

  /**
   * A Ready whose hard state only moves the commit index forward writes nothing: the commit index
   * is volatile state in Raft (it is re-learned from the leader, and start-up takes at least the
   * applied index, see open()). It still goes to disk with the next entries or term/vote change.
   * This saves a LevelDB write on every commit, on the leader right before it answers the writers.
   */
  private keepCommitInMemory(hs: HardState): void {
    this.mem.setHardState(hs);
    this.persisted = hs;
  }

  private async installSnapshot(snapshot: NonNullable<Ready['snapshot']>): Promise<void> {
    if (!this.snapshotHooks) throw new Error('received a snapshot but no snapshot module is installed');
    await this.compactor.resetForSnapshot();
    const covered = snapshot.metadata.index;
    await this.snapshotHooks.install(snapshot);
    this.mem.applySnapshot(snapshot);
    this.applying.restartAt(covered); // the stored state is the snapshot's: the next batch follows it
    this.compactor.snapshotInstalled(covered);
    // Entries the snapshot covers are never applied one by one here: their writers cannot learn
    // which entry won their index. Answer them now rather than at their deadline.
    this.writes.failIndeterminate(new IndeterminateError(`a snapshot up to index ${covered} replaced the log here before the write's outcome was seen; it may have been applied`), covered);
    this.members = this.store.kv.membership() ?? this.members;
    this.hasMembership = true;
    this.identityGuard.onSnapshotInstalled(covered);
    this.transport.setPeers(this.peerAddresses());
    this.checkShortfall(); // a snapshot may bring the log up to the mark, and brings a membership
  }

  private sendMessages(msgs: Message[]): void {
    for (const m of msgs) {
      if (m.type === MessageType.Snap && this.snapshotHooks) {
        this.snapshotHooks.send(m);
        continue;
      }
      if (!this.transport.send(m)) this.raw.reportUnreachable(m.to);
    }
  }

  /** A batch landed: reads up to it may be served, and the compaction policy counts it. */
  private onApplyWritten(batch: { appliedIndex: number; bytes: number; seconds: number }): void {
    this.metrics.applySeconds.observe(batch.seconds);
    this.reads.servedUpTo(batch.appliedIndex);
    if (this.compactor.noteWritten(batch.appliedIndex, batch.bytes)) this.schedule(); // the loop decides (compactor.step)
  }

  private confChangeItem(e: Entry): ApplyItem {
    const cc = decodeConfChange(e.data);
    this.raw.applyConfChange(cc);
    this.members = nextMembership(this.members, cc);
    this.hasMembership = true;
    this.updateVoting(); // in the same step as the core's applyConfChange: no tick in between
    this.identityGuard.onMembershipChange(cc, e.index);
    this.transport.setPeers(this.peerAddresses());
    this.snapshotHooks?.cancelSends((peer) => this.memberById(peer) !== undefined, 'removed from the cluster');
    this.log.info({ term: this.raw.status().hardState.term, index: e.index, change: cc }, 'applied membership change');
    return { kind: 'membership', index: e.index, term: e.term, data: e.data, membership: this.members };
  }

  private onSoftState(role: Role, lead: string | null): void {
    const term = this.raw.status().hardState.term;
    const leaderChanged = lead !== this.leader;
    const previous = this.leader;
    if (role !== this.role) this.log.info({ term, from: this.role, to: role }, 'role changed');
    if (this.role === 'leader' && role !== 'leader') this.snapshotHooks?.cancelSends(() => false, 'no longer the leader');
    this.role = role;
    this.leader = lead;
    if (leaderChanged) {
      this.metrics.leaderChanges.inc();
      this.leaderHistory.record({ atMs: this.clock.nowMs(), term, leader: lead });
      this.leaderless.note(lead !== null, this.clock.nowMs(), previous === null || previous === this.id ? undefined : this.lastContact(previous));
      this.log.info({ term, leader: lead, role }, lead ? 'leader changed' : 'leader lost');
      // Reads registered with an old leader will never be answered: fail them fast (retryable).
      this.reads.failSubmitted(new UnavailableError('the leader changed during the read; retry'));
    }
  }

  private fatal(e: Error): void {
    if (this.fatalError) return;
    this.fatalError = e;
    this.log.fatal({ err: e }, 'fatal error in the host loop; stopping the node (stopping is safer than continuing)');
    this.world.onFatal(e);
  }

  // -----------------------------------------------------------------------------------------
  // Writes.

  /** Proposes a command and resolves with its apply result once committed and applied. */
  write(cmd: Command, d: Deadline): Promise<WriteResult> {
    this.checkWritable();
    if (this.writes.size >= this.cfg.maxPendingProposals) return this.busy('proposals');
    const plant = this.world.plant; // simulation only: never set in production
    // Planted: without its session a retried write is applied again, as with deduplication off.
    if (plant === 'session-dedup-off' && cmd.session) cmd = { ...cmd, session: undefined } as Command;
    // = encodeCommand({ ...cmd, timeMs: now }), without copying the command (hot path).
    const data = encodeCommandAt(cmd, this.clock.nowMs());
    if (this.writes.bytes + data.byteLength > this.cfg.maxPendingProposalBytes) return this.busy('proposal-bytes');
    let at: { index: number; term: number };
    try {
      at = this.raw.propose(data);
    } catch (e) {
      if (e instanceof RaftNotLeaderError) return Promise.reject(this.notLeader());
      if (e instanceof ProposalDroppedError) return this.busy('raft-dropped', e.message);
      throw e;
    }
    this.schedule();
    if (plant === 'answer-before-commit') return Promise.resolve(answerBeforeCommit(cmd, at));
    const t0 = this.world.elapsedMs();
    // The commit latency the catch-up throttle watches (catchup-throttle.ts): propose → answer.
    return this.writes.wait(at, data.byteLength, d).then((r) => {
      this.metrics.commitStep.add((this.world.elapsedMs() - t0) / 1e3);
      return r;
    });
  }

  /**
   * Proposes a membership change and resolves once it is applied. One at a time. A change that
   * would make a voter of a member whose incarnation is not recorded is refused
   * (InvalidArgumentError; membership.ts, unrecordedVoterChange).
   */
  changeMembership(cc: ConfChange, d: Deadline): Promise<WriteResult> {
    this.checkWritable();
    const unrecorded = unrecordedVoterChange(this.members, cc);
    if (unrecorded !== null) return Promise.reject(new InvalidArgumentError(unrecorded));
    let at: { index: number; term: number };
    try {
      at = this.raw.proposeConfChange(cc);
    } catch (e) {
      if (e instanceof RaftNotLeaderError) return Promise.reject(this.notLeader());
      if (e instanceof ProposalDroppedError) return Promise.reject(new BusyError(1000, e.message));
      throw e;
    }
    this.log.info({ term: at.term, index: at.index, change: cc }, 'proposed membership change');
    this.schedule();
    return this.writes.wait(at, 0, d);
  }

  /** Asks the core to hand leadership to `to`; resolves when this node sees another leader. */
  async transferLeadership(to: string, d: Deadline): Promise<void> {
    this.checkWritable();
    if (!this.raw.status().confState.voters.includes(to)) throw new InvalidArgumentError(`${to} is not a voter`);
    this.raw.transferLeader(to);
    this.schedule();
    while (this.clock.nowMs() < d.deadlineMs) {
      if (this.leader !== null && this.leader !== this.id) return;
      await sleepOn(this.clock, 10);
    }
    throw new TimeoutError(`leadership did not move to ${to} before the deadline`);
  }

  private checkWritable(): void {
    if (this.stopped) throw new UnavailableError('node is shutting down');
    if (this.role !== 'leader') throw this.notLeader();
  }

  private busy(kind: string, why?: string): Promise<never> {
    this.metrics.busyRejections.inc({ kind });
    return Promise.reject(new BusyError(BUSY_RETRY_AFTER_MS, why ?? `busy: too many pending ${kind.replace('-', ' ')}; retry after ${BUSY_RETRY_AFTER_MS} ms`));
  }

  /** NotLeaderError with a hint when the leader is known, else NoLeaderError. */
  notLeader(): Error {
    const hint = this.leaderHint();
    return hint ? new NotLeaderError(hint) : new NoLeaderError();
  }

  leaderHint(): LeaderHint | null {
    if (!this.leader) return null;
    const m = this.memberById(this.leader);
    return m ? { id: m.id, address: m.address } : { id: this.leader, address: '' };
  }

  // -----------------------------------------------------------------------------------------
  // Linearizable reads (ReadIndex): every read arriving in one turn shares one request.

  /** Resolves once this node has applied everything committed before the call (ReadIndex). */
  linearizableBarrier(d: Deadline): Promise<void> {
    if (this.stopped) return Promise.reject(new UnavailableError('node is shutting down'));
    if (this.shortfall) return Promise.reject(new UnavailableError(`this node cannot serve reads: ${this.shortfall.reason}`));
    if (this.leader === null) return Promise.reject(new NoLeaderError());
    if (this.reads.pending >= this.cfg.maxPendingReads) return this.busy('reads');
    const read = this.reads.add(d);
    this.schedule();
    return read;
  }

  // -----------------------------------------------------------------------------------------
  // Deadlines: one sweep per tick instead of a timer per request.

  private expireWaiters(nowMs: number): void {
    this.writes.expire(nowMs);
    this.reads.expire(nowMs);
  }

  // -----------------------------------------------------------------------------------------
  // Local reads (callers use linearizableBarrier first for linearizable ones).

  async get(key: Uint8Array, options?: ReadOptions): Promise<KeyValue | undefined> {
    this.checkReadable();
    return this.store.kv.get(key, options);
  }

  async range(req: RangeRequest, limit: number): Promise<KeyValue[]> {
    this.checkReadable();
    return this.store.kv.range(req, limit);
  }

  /** One page of a range, read row by row within its limits (see KvStateMachine.rangePage). */
  rangePage(req: RangeRequest, options: RangePageOptions): Promise<RangePage> {
    return this.store.kv.rangePage(req, options);
  }

  // -----------------------------------------------------------------------------------------
  // Who a node is: incarnations (docs/server.md, "Who a node is"; identity-guard.ts).

  /** Derived from the founding membership; peers founded differently are refused. Null while joining. */
  get clusterId(): string | null {
    return this.identityGuard.clusterId;
  }

  /** What the identity guard reads of this node. */
  private identityHost(): IdentityHost {
    return {
      id: this.id,
      incarnation: this.incarnation,
      peers: this.cfg.peers,
      log: this.log,
      clock: this.clock,
      identity: this.world.identity,
      members: () => this.members,
      memberById: (id) => this.memberById(id),
      appliedIndex: () => this.store.kv.appliedIndex(),
      isLeader: () => this.role === 'leader',
      foundingPending: () => this.foundingPending,
      founded: () => this.hasMembership || this.mem.lastIndex() > 0,
      proposeConfChange: (cc) => this.raw.proposeConfChange(cc),
      schedule: () => this.schedule(),
      closeInbound: (peer, reason) => this.transport.closeInbound(peer, reason),
    };
  }

  /** Peer messages dropped since start: their sender's incarnation is not the one this node knows (identity-guard.ts). */
  otherIncarnationDropped(): number {
    return this.identityGuard.droppedFromOtherIncarnation;
  }

  /** The incarnation recorded in the membership for `id`, if any (admin: promote waits for it). */
  recordedIncarnation(id: string): string | undefined {
    return this.memberById(id)?.incarnation;
  }

  // -----------------------------------------------------------------------------------------
  // Membership and status.

  memberById(id: string): Member | undefined {
    return this.members.voters.find((m) => m.id === id) ?? this.members.learners.find((m) => m.id === id);
  }

  membership(): Membership {
    return this.members;
  }

  private peerAddresses(): Record<string, string> {
    const out: Record<string, string> = {};
    const all = [...this.members.voters, ...this.members.learners];
    // A node that started empty (not founding) has no membership until the leader's log or snapshot brings
    // one: until then it accepts (and dials) the peers named in --peers, or it would refuse the
    // leader that is trying to add it. Replaying the log, its applied membership is an old one that
    // may not name today's leader (the founding members, say): while it may not vote for that
    // reason it keeps accepting --peers too, or a link cut during the replay would never reopen.
    const replaying = this.votingHold?.kind === 'identity';
    const known = all.length === 0 ? this.cfg.peers : replaying ? [...this.cfg.peers.filter((p) => !this.memberById(p.id)), ...all] : all;
    // A node in the founding handshake dials no raft link and accepts none (it probes instead):
    // a founded peer must not pin it on first contact before it has decided (founding.ts).
    if (this.foundingPending) return out;
    for (const m of known) if (m.id !== this.id) out[m.id] = m.address;
    return out;
  }

  lastContact(id: string): number | undefined {
    return this.lastContactMs.get(id);
  }

  isLeader(): boolean {
    return this.role === 'leader';
  }

  leaderId(): string | null {
    return this.leader;
  }

  statusView(): NodeStatusView {
    // Role, leader and term all come from the core at this instant, so they always describe one
    // consistent state (the host's copy of role/leader lags until the next Ready).
    const st = this.raw.status();
    const applied = this.store.kv.applied();
    const isLearner = st.confState.learners.includes(this.id);
    const role = st.softState.role;
    return {
      id: this.id,
      role: isLearner && role !== 'leader' ? 'learner' : role,
      term: st.hardState.term,
      leader: st.softState.lead,
      commitIndex: st.hardState.commit,
      appliedIndex: applied.index,
      lastIndex: st.lastIndex,
      firstIndex: this.mem.firstIndex(),
      appliedHash: Buffer.from(applied.hash).toString('hex'),
      zone: this.cfg.zone,
      voter: st.confState.voters.includes(this.id),
      storageShortfall: this.shortfall && { ...this.shortfall },
      votingSuspended: this.votingHold?.kind ?? null,
      votingSuspendedReason: this.votingHold?.reason ?? null,
    };
  }

  pendingCounts(): { writes: number; reads: number } {
    return { writes: this.writes.size, reads: this.reads.pending };
  }

  // -----------------------------------------------------------------------------------------
  // Shutdown.

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    if (this.ticker) this.clock.clearTimer(this.ticker);
    // Let an in-flight write batch finish so the disk is never left mid-batch.
    for (let i = 0; i < 200 && this.inTurn; i++) await sleepOn(this.clock, 5);
    await this.appliedAndWritten().catch(() => undefined);
    // Writers still waiting were proposed: their entries sit in this log and maybe in the
    // others', and the cluster may commit them after this node is gone.
    this.writes.failIndeterminate(new IndeterminateError('the node shut down after the write was proposed; it may have been applied'));
    const err = new UnavailableError('node is shutting down');
    this.reads.failAll(err);
    await this.snapshotHooks?.close();
    await this.compactor.settled(); // the store closes under no log compaction
    await this.transport.close();
    await this.store.close();
  }
}

/** What the snapshot module (snapshots.ts) plugs into the host loop. */
export interface SnapshotHooks {
  /** The core wants to send a snapshot (message type Snap) to a follower. */
  send(m: Message): void;
  /** A received snapshot (already staged) must be installed before applying further entries. */
  install(snapshot: NonNullable<Ready['snapshot']>): Promise<void>;
  /** The lowest snapshot index being sent to a follower (compaction keeps the log after it), or null. */
  heldIndex(): number | null;
  /** Stops the transfers (running or queued) to every peer `keep` says no to. */
  cancelSends(keep: (peer: string) => boolean, reason: string): void;
  close(): Promise<void>;
}

function nextMembership(cur: Membership, cc: ConfChange): Membership {
  const without = (list: Member[]) => list.filter((m) => m.id !== cc.nodeId);
  const existing = cur.voters.find((m) => m.id === cc.nodeId) ?? cur.learners.find((m) => m.id === cc.nodeId);
  const ctx = cc.context ? parseMemberContext(cc.context) : undefined;
  const zone = ctx?.zone ?? existing?.zone;
  // A record of the incarnation never replaces another one: that takes remove + add.
  const incarnation = existing?.incarnation ?? ctx?.incarnation;
  const member: Member = {
    id: cc.nodeId,
    address: ctx?.address ?? existing?.address ?? '',
    ...(zone ? { zone } : {}),
    ...(incarnation ? { incarnation } : {}),
  };
  switch (cc.type) {
    case 0: // AddNode (or promote)
      return { voters: [...without(cur.voters), member], learners: without(cur.learners) };
    case 1: // AddLearner
      if (cur.voters.some((m) => m.id === cc.nodeId)) return cur;
      return { voters: cur.voters, learners: [...without(cur.learners), member] };
    default: // RemoveNode
      return { voters: without(cur.voters), learners: without(cur.learners) };
  }
}

export { memberContext };

/** Planted bug answer-before-commit (simulation only): the answer a write would get, made up at proposal. */
function answerBeforeCommit(cmd: Command, at: { index: number; term: number }): WriteResult {
  const r = cmd.op === 'put' ? { op: 'put' as const } : cmd.op === 'del' ? { op: 'del' as const, deleted: true } : { op: 'cas' as const, succeeded: true };
  return { ...r, revision: at.index, term: at.term } as WriteResult;
}
