// The simulated cluster: N RawNodes, each with a MemoryStorage as its disk and a KvStateMachine,
// driven by the host loop of RAWNODE-API.md over a SimNetwork. Everything is synchronous and
// seeded: the same options always give the same run. Safety invariants are checked as each
// Ready is handled (see invariants.ts); the schedule of actions lives in simulate.ts.
import {
  BadMessageError,
  ConfChangeType,
  EntryType,
  MemoryStorage,
  MessageType,
  RaftError,
  RawNode,
  decodeConfChange,
  defaultConfig,
} from '@quorumkv/raft';
import type { ConfChange, ConfState, Config, Entry, HardState, Message, PlantedBug, Ready, Role, Snapshot } from '@quorumkv/raft';
import { EMPTY_CHAIN } from './hash.js';
import { InvariantViolation, LogChain, MAX_OPEN_READS, SafetyChecker } from './invariants.js';
import { KvStateMachine, decodeSnapshotData, decodeWrite, encodeWrite } from './kv-state-machine.js';
import { Prng } from './prng.js';
import type { SimProfile } from './scenario.js';
import { SimNetwork } from './sim-network.js';
import { Trace } from './trace.js';

/**
 * A planted bug: one of the core's (config.plantedBug) or one of the host's own:
 *  - 'persist-after-send': messages leave before the Ready's write is durable;
 *  - 'no-incarnation-rule': the incarnation rule is off (see SimCluster.wipe): a node that lost
 *    its disk bootstraps again and votes, and peers accept it as the member it was.
 */
export type SimBug = PlantedBug | HostBug;
type HostBug = 'persist-after-send' | 'no-incarnation-rule';
const HOST_BUGS: ReadonlySet<SimBug> = new Set<HostBug>(['persist-after-send', 'no-incarnation-rule']);

/** Every planted bug the simulation knows, core ones first. */
export const ALL_BUGS: readonly SimBug[] = ['commit-previous-term', 'double-vote', 'no-log-check-vote', 'stale-read', 'persist-after-send', 'no-incarnation-rule'];

/** A message on the simulated wire, with the sender's incarnation (to drop stale host reports). */
export interface Envelope {
  from: string;
  to: string;
  msg: Message;
  incarnation: number;
  /** The sender's disk incarnation (what the real hello carries; see SimCluster.wipe). */
  disk: number;
}

/** A write whose Ready has not reached the durable disk yet (persist-after-send bug only). */
interface UnsyncedWrite {
  dueTick: number;
  snapshot?: Snapshot;
  entries: Entry[];
  hardState?: HardState;
  compactTo?: { index: number; confState: ConfState; data: Uint8Array };
}

/** Named maxima of the host. */
export const MAX_READY_ROUNDS_PER_TICK = 16;
export const MAX_PENDING_READS_PER_NODE = 256;
export const READ_TIMEOUT_TICKS = 200;
export const MAX_TRACKED_WRITES = 100_000;

/** One simulated server. `raw` is undefined while the node is down. */
export class SimNode {
  raw: RawNode | undefined;
  /** Process incarnation: +1 per crash (stale transport reports to an old process are dropped). */
  incarnation = 0;
  /** Disk incarnation: +1 each time the node loses its whole disk (the data directory's id). */
  disk = 0;
  /** Lost its disk and, under the incarnation rule, has not been added back and promoted yet. */
  awaitingReplace = false;
  /** What the core reads and the host writes (the page cache, when writes are not synced). */
  storage: MemoryStorage;
  /** What survives a crash when the host does not wait for syncs (persist-after-send bug). */
  durable: MemoryStorage | undefined;
  unsynced: UnsyncedWrite[] = [];
  sm = new KvStateMachine();
  log = new LogChain();
  confState: ConfState;
  role: Role = 'follower';
  term = 0;
  /** Term and vote as persisted before the Ready being handled (for the mustSync check). */
  termBefore = 0;
  vote: string | null = null;
  /** The last persisted commit index, and how far it was checked against the cluster's. */
  commit = 0;
  checkedCommit = 0;
  pendingReads: { readId: number; index: number; sinceTick: number }[] = [];

  /** Every node starts with an empty disk; founding members bootstrap (see SimCluster.start). */
  constructor(
    readonly id: string,
    syncLag: boolean,
  ) {
    this.confState = { voters: [], learners: [] };
    this.storage = new MemoryStorage();
    this.durable = syncLag ? this.storage.clone() : undefined;
  }

  get alive(): boolean {
    return this.raw !== undefined;
  }
}

/** Counters a run reports. */
export interface ClusterStats {
  proposals: number;
  proposalsRefused: number;
  writesAcked: number;
  readsStarted: number;
  readsServed: number;
  crashes: number;
  restarts: number;
  /** Nodes that lost their whole disk and restarted empty. */
  wipes: number;
  /** Wiped nodes the operator's procedure made voters again (remove, add as learner, promote). */
  replacements: number;
  /** Messages dropped because they came from a disk incarnation the membership does not record. */
  incarnationDrops: number;
  /** Messages the core refused (BadMessageError); only with the incarnation rule off. */
  badMessagesRefused: number;
  compactions: number;
  snapshotsInstalled: number;
  transfers: number;
  confChanges: number;
  leaderTerms: number;
}

/** How the cluster is built. */
export interface ClusterOptions {
  seed: number;
  /** Initial voters (3 or 5 in the standard runs). */
  nodeCount: number;
  /** Extra nodes outside the initial configuration, for membership changes. */
  spareCount: number;
  profile: SimProfile;
  bug?: SimBug | undefined;
  traceCapacity?: number;
}

type CoreLimits = Omit<Config, 'id' | 'storage' | 'random' | 'applied' | 'logger' | 'plantedBug'>;

/** The simulated cluster. Call `tick()` once per simulated tick; inject actions in between. */
export class SimCluster {
  now = 0;
  readonly ids: string[];
  readonly voters0: string[];
  readonly nodes = new Map<string, SimNode>();
  readonly net: SimNetwork<Envelope>;
  readonly checker = new SafetyChecker();
  readonly trace: Trace;
  readonly rng: Prng;
  readonly coreLimits: CoreLimits;
  readonly stats: ClusterStats = {
    proposals: 0, proposalsRefused: 0, writesAcked: 0, readsStarted: 0, readsServed: 0, crashes: 0, restarts: 0,
    wipes: 0, replacements: 0, incarnationDrops: 0, badMessagesRefused: 0, compactions: 0, snapshotsInstalled: 0, transfers: 0, confChanges: 0, leaderTerms: 0,
  };
  private readonly writes = new Map<number, { node: string; index: number; term: number }>();
  /** readId -> the key it reads (for the trace: what the read returned). */
  private readonly readKeys = new Map<number, string>();
  private readonly ackedWrites = new Set<number>();
  private nextWriteId = 1;
  private nextReadId = 1;
  private readonly lost: { env: Envelope; reason: 'dropped' | 'cut' }[] = [];
  /** Nodes frozen (a long GC pause, a stopped VM) until the given tick. */
  private readonly pausedUntil = new Map<string, number>();

  constructor(readonly options: ClusterOptions) {
    this.rng = new Prng(options.seed);
    this.trace = new Trace(options.traceCapacity);
    this.ids = Array.from({ length: options.nodeCount + options.spareCount }, (_, i) => `n${i + 1}`);
    this.voters0 = this.ids.slice(0, options.nodeCount);
    this.net = new SimNetwork<Envelope>(this.rng.fork(1), options.profile.network);
    this.net.onLost = (env, reason) => this.lost.push({ env, reason });
    this.coreLimits = { ...drawCoreLimits(this.rng.fork(2), options.profile.randomizeCoreConfig), ...options.profile.coreOverrides };
    const syncLag = options.bug === 'persist-after-send';
    for (const id of this.ids) {
      const node = new SimNode(id, syncLag);
      this.nodes.set(id, node);
      this.start(node);
    }
  }

  // ---------------------------------------------------------------------------------------------
  // Time

  /** One tick: deliver due messages, tick every live node, then run every host loop to rest. */
  tick(): void {
    this.now++;
    for (const [id, until] of this.pausedUntil) if (until <= this.now) this.pausedUntil.delete(id);
    this.deliver();
    for (const n of this.nodes.values()) if (n.raw && !this.pausedUntil.has(n.id)) this.core(n, 'tick', (raw) => raw.tick());
    this.settle();
  }

  /** Runs the host loop of every live node until none has a Ready (bounded). */
  settle(): void {
    for (let round = 0; round < MAX_READY_ROUNDS_PER_TICK; round++) {
      let any = false;
      for (const n of this.nodes.values()) {
        if (n.raw && !this.pausedUntil.has(n.id) && n.raw.hasReady()) {
          this.handleReady(n);
          any = true;
        }
      }
      if (!any) break;
    }
    this.flushUnsynced();
    this.expireReads();
  }

  private deliver(): void {
    this.reportLost();
    for (const env of this.net.deliverDue(this.now)) {
      const to = this.nodes.get(env.to);
      if (!to?.raw) {
        this.lost.push({ env, reason: 'cut' }); // a down node refuses connections: the sender hears of it
        continue;
      }
      const pausedUntil = this.pausedUntil.get(env.to);
      if (pausedUntil !== undefined) {
        this.net.redeliverAt(pausedUntil, env); // waits in the socket buffer until the node wakes up
        continue;
      }
      if (!this.passesIncarnationRule(to, env)) continue;
      if (this.traceMessage(env.msg)) this.trace.add(this.now, env.to, () => `<- ${describeMessage(env.msg)}`);
      if (!this.step(to, env)) continue;
      if (env.msg.type === MessageType.Snap) this.reportToSender(env, (raw) => raw.reportSnapshot(env.to, true));
    }
  }

  /**
   * The incarnation rule (unless the 'no-incarnation-rule' bug is planted): a message from a
   * disk incarnation of a member other than the one the receiver's membership records is dropped
   * (the real transport refuses that hello). With voting suspended on the amnesiac node itself
   * (see start), nothing it says can count as the vote or the acknowledgement its earlier
   * incarnation gave.
   */
  private passesIncarnationRule(to: SimNode, env: Envelope): boolean {
    if (this.options.bug === 'no-incarnation-rule') return true;
    const recorded = to.sm.incarnations.get(env.from);
    let why: string | undefined;
    if (recorded !== undefined && recorded !== env.disk) why = `disk ${env.disk} of ${env.from}, recorded ${recorded}`;
    if (why === undefined) return true;
    this.stats.incarnationDrops++;
    if (this.traceMessage(env.msg)) this.trace.add(this.now, env.to, () => `dropped (${why}): ${describeMessage(env.msg)}`);
    return false;
  }

  /**
   * Steps a delivered message. A BadMessageError (the core refusing a message no correct peer
   * sends) is a safety violation while the incarnation rule holds — no peer is broken then — and
   * the real host's behaviour otherwise: drop it (close that connection). Returns false if refused.
   */
  private step(to: SimNode, env: Envelope): boolean {
    if (this.options.bug === 'no-incarnation-rule') {
      try {
        to.raw?.step(env.msg);
      } catch (err) {
        if (!(err instanceof BadMessageError)) return this.core(to, 'step', () => { throw err; });
        this.stats.badMessagesRefused++;
        this.trace.add(this.now, to.id, `refused: ${err.message}`);
        return false;
      }
      return true;
    }
    this.core(to, 'step', (raw) => raw.step(env.msg));
    return true;
  }

  /** The transport tells the sender about messages it could not deliver (as a real one would). */
  private reportLost(): void {
    const lost = this.lost.splice(0);
    for (const { env, reason } of lost) {
      if (env.msg.type === MessageType.Snap) this.reportToSender(env, (raw) => raw.reportSnapshot(env.to, false));
      else if (reason === 'cut') this.reportToSender(env, (raw) => raw.reportUnreachable(env.to));
    }
  }

  /** Heartbeats drown everything else in a failure report: they are traced in verbose mode only. */
  private traceMessage(m: Message): boolean {
    return this.trace.onEvent !== undefined || (m.type !== MessageType.Heartbeat && m.type !== MessageType.HeartbeatResp);
  }

  private reportToSender(env: Envelope, fn: (raw: RawNode) => void): void {
    const from = this.nodes.get(env.from);
    if (from?.raw && from.incarnation === env.incarnation) this.core(from, 'report', fn);
  }

  // ---------------------------------------------------------------------------------------------
  // The host loop (RAWNODE-API.md): persist, send, install snapshot, apply, serve reads, advance.

  private handleReady(n: SimNode): void {
    const rd = this.core(n, 'ready', (r) => r.ready());
    const vote = n.vote;
    n.termBefore = n.term;
    if (this.options.bug === 'persist-after-send') {
      this.send(n, rd.messages); // planted bug: messages leave before the write is durable
      this.persist(n, rd);
    } else {
      this.persist(n, rd);
      this.send(n, rd.messages);
    }
    this.observeRole(n, rd);
    this.checkReadyContract(n, rd, vote);
    if (rd.snapshot) this.installSnapshot(n, rd.snapshot);
    for (const e of rd.committedEntries) this.apply(n, e);
    for (const rs of rd.readStates) this.queueRead(n, rs.requestCtx, rs.index);
    this.serveReads(n);
    this.core(n, 'advance', (r) => r.advance(rd));
  }

  /** The Ready's own promises, which a real host relies on to fsync and apply correctly. */
  private checkReadyContract(n: SimNode, rd: Ready, voteBefore: string | null): void {
    const hs = rd.hardState;
    const voteOrTermChanged = hs !== undefined && (hs.term !== n.termBefore || hs.vote !== voteBefore);
    if ((rd.entries.length > 0 || rd.snapshot !== undefined || voteOrTermChanged) && !rd.mustSync) {
      throw new InvariantViolation('ready-contract', `${n.id}: Ready with entries/snapshot/term or vote change has mustSync=false`);
    }
    const last = rd.committedEntries[rd.committedEntries.length - 1];
    if (last && last.index > n.commit) {
      throw new InvariantViolation('ready-contract', `${n.id}: committed entry ${last.index} handed out beyond the persisted commit ${n.commit}`);
    }
    for (const e of rd.committedEntries) {
      const stored = e.index > n.log.snapshotIndex ? n.log.termAt(e.index) : undefined;
      if (e.index > n.log.snapshotIndex && stored !== e.term) {
        throw new InvariantViolation('ready-contract', `${n.id}: committed entry ${e.index}/${e.term} handed out to apply is not the persisted one (${stored ?? 'missing'})`);
      }
    }
  }

  private persist(n: SimNode, rd: Ready): void {
    if (rd.snapshot) {
      n.storage.applySnapshot(rd.snapshot);
      n.log.installSnapshot(rd.snapshot.metadata.index, rd.snapshot.metadata.term, snapshotChain(rd.snapshot));
    }
    if (rd.entries.length > 0) {
      const changedFrom = n.log.append(rd.entries, (i, t, chain) => this.checker.observeEntry(n.id, i, t, chain));
      if (changedFrom !== Infinity) this.checker.observeTruncate(n.id, changedFrom, n.commit);
      n.storage.append(rd.entries);
    }
    if (rd.hardState) {
      n.storage.setHardState(rd.hardState);
      n.term = rd.hardState.term;
      n.vote = rd.hardState.vote;
      this.observeCommit(n, rd.hardState.commit);
    }
    if (n.durable) {
      const lagTicks = this.rng.range(this.options.profile.unsyncedWriteTicks.min, this.options.profile.unsyncedWriteTicks.max);
      n.unsynced.push({ dueTick: this.now + lagTicks, snapshot: rd.snapshot, entries: rd.entries, hardState: rd.hardState });
    }
  }

  private observeCommit(n: SimNode, commit: number): void {
    n.commit = commit;
    if (commit <= n.checkedCommit) return;
    this.checker.observeCommit(n.id, n.term, n.checkedCommit + 1, commit, (i) => n.log.chainAt(i));
    n.checkedCommit = commit;
  }

  private send(n: SimNode, messages: Message[]): void {
    for (const m of messages) {
      for (const e of m.entries) Object.freeze(e); // entries are shared by reference: nobody may change them
      if (this.traceMessage(m)) this.trace.add(this.now, n.id, () => `-> ${describeMessage(m)}`);
      this.net.send(this.now, { from: n.id, to: m.to, msg: m, incarnation: n.incarnation, disk: n.disk }, (env) => ({ ...env, msg: { ...env.msg } }));
    }
  }

  private observeRole(n: SimNode, rd: Ready): void {
    if (!rd.softState) return;
    const was = n.role;
    n.role = rd.softState.role;
    if (n.role === 'leader' && was !== 'leader') {
      const term = n.raw ? n.raw.status().hardState.term : n.term;
      this.stats.leaderTerms++;
      this.trace.add(this.now, n.id, `became leader of term ${term}`);
      this.checker.observeLeader(term, n.id);
      this.checker.observeLeaderLog(n.id, term, n.log.snapshotIndex, (i) => n.log.chainAt(i));
    }
  }

  private installSnapshot(n: SimNode, snap: Snapshot): void {
    const chain = snapshotChain(snap);
    this.checker.observeSnapshot(n.id, snap.metadata.index, chain);
    n.sm.restore(snap.data);
    n.confState = snap.metadata.confState;
    this.maybeReplaced(n);
    this.stats.snapshotsInstalled++;
    this.trace.add(this.now, n.id, `installed snapshot at ${snap.metadata.index} term ${snap.metadata.term}`);
  }

  private apply(n: SimNode, e: Entry): void {
    if (e.index <= n.sm.appliedIndex) {
      throw new InvariantViolation('state-machine-safety', `${n.id} was handed entry ${e.index} to apply again (applied ${n.sm.appliedIndex})`);
    }
    const chain = n.sm.apply(e, EntryType.Normal);
    this.checker.observeApply(n.id, e.index, chain);
    if (e.type === EntryType.ConfChange) {
      const cc = decodeConfChange(e.data);
      recordIncarnation(n.sm, cc);
      n.confState = this.core(n, 'applyConfChange', (r) => r.applyConfChange(cc));
      this.maybeReplaced(n);
      this.trace.add(this.now, n.id, () => `applied conf change ${describeConfChange(cc)} at ${e.index} -> ${describeConfState(n.confState)}`);
    } else {
      this.ackWrite(n, e);
    }
  }

  /** Ends an amnesiac node's wait once the membership records its disk and it is a voter again. */
  private maybeReplaced(n: SimNode): void {
    if (!n.awaitingReplace || n.sm.incarnations.get(n.id) !== n.disk || !n.confState.voters.includes(n.id)) return;
    n.awaitingReplace = false;
    n.raw?.suspendVoting(false);
    this.stats.replacements++;
    this.trace.add(this.now, n.id, `replaced: a voter again as disk incarnation ${n.disk}`);
  }

  private ackWrite(n: SimNode, e: Entry): void {
    const w = decodeWrite(e.data);
    if (!w) return;
    const rec = this.writes.get(w.id);
    if (rec && rec.node === n.id && rec.index === e.index && rec.term === e.term) {
      this.writes.delete(w.id);
      this.ackedWrites.add(w.id);
      this.stats.writesAcked++;
    }
  }

  // ---------------------------------------------------------------------------------------------
  // Reads

  /** Starts a ReadIndex read of `key` on `id`; returns its id, or undefined when the node refused it. */
  startRead(id: string, key: string): number | undefined {
    const n = this.mustGet(id);
    if (!n.raw) return undefined;
    const readId = this.nextReadId++;
    const ok = this.coreMay(n, 'readIndex', (raw) => raw.readIndex(encodeReadCtx(readId)));
    if (ok === undefined) return undefined;
    this.checker.observeReadStart(readId, id, this.now);
    if (this.readKeys.size >= MAX_OPEN_READS) this.readKeys.clear(); // only used for the trace
    this.readKeys.set(readId, key);
    this.stats.readsStarted++;
    this.trace.add(this.now, id, `read ${readId} of ${key} started (committed ${this.checker.maxCommit})`);
    return readId;
  }

  private queueRead(n: SimNode, ctx: Uint8Array, index: number): void {
    const readId = decodeReadCtx(ctx);
    if (readId === undefined) return;
    if (n.pendingReads.length >= MAX_PENDING_READS_PER_NODE) {
      const dropped = n.pendingReads.shift();
      if (dropped) this.checker.forgetRead(dropped.readId);
    }
    n.pendingReads.push({ readId, index, sinceTick: this.now });
  }

  private serveReads(n: SimNode): void {
    if (n.pendingReads.length === 0) return;
    const keep: SimNode['pendingReads'] = [];
    for (const r of n.pendingReads) {
      if (n.sm.appliedIndex < r.index) {
        keep.push(r);
        continue;
      }
      const key = this.readKeys.get(r.readId);
      this.readKeys.delete(r.readId);
      if (this.checker.observeReadServed(r.readId, n.id, n.sm.appliedIndex)) {
        this.stats.readsServed++;
        const value = key === undefined ? undefined : (n.sm.kv.get(key) ?? '(none)');
        this.trace.add(this.now, n.id, `read ${r.readId} served at read index ${r.index} from applied ${n.sm.appliedIndex}: ${key} = ${value}`);
      }
    }
    n.pendingReads = keep;
  }

  private expireReads(): void {
    for (const n of this.nodes.values()) {
      while (n.pendingReads.length > 0 && (n.pendingReads[0] as { sinceTick: number }).sinceTick + READ_TIMEOUT_TICKS < this.now) {
        const r = n.pendingReads.shift();
        if (r) this.checker.forgetRead(r.readId);
      }
    }
  }

  // ---------------------------------------------------------------------------------------------
  // Client and operator actions

  /** Proposes a write on `id`; returns the write id, or undefined when refused. */
  propose(id: string, key: string, value?: string): number | undefined {
    const n = this.mustGet(id);
    if (!n.raw) return undefined;
    const writeId = this.nextWriteId++;
    const data = encodeWrite({ id: writeId, key, value: value ?? `v${writeId}` });
    this.stats.proposals++;
    const at = this.coreMay(n, 'propose', (raw) => raw.propose(data));
    if (!at) {
      this.stats.proposalsRefused++;
      return undefined;
    }
    if (this.writes.size >= MAX_TRACKED_WRITES) this.writes.clear();
    this.writes.set(writeId, { node: id, index: at.index, term: at.term });
    this.trace.add(this.now, id, `proposed write ${writeId} ${key} at ${at.index} term ${at.term}`);
    return writeId;
  }

  /** True once the node that proposed write `writeId` applied it. */
  isAcked(writeId: number): boolean {
    return this.ackedWrites.has(writeId);
  }

  /**
   * Proposes a membership change on `id` (the leader); returns false when refused. An addition
   * records the added node's current disk incarnation in its context, as the real `member add` does.
   */
  proposeConfChange(id: string, change: ConfChange): boolean {
    const n = this.mustGet(id);
    if (!n.raw) return false;
    const target = this.nodes.get(change.nodeId);
    const cc = change.type !== ConfChangeType.RemoveNode && change.context === undefined && target ? { ...change, context: diskContext(target.disk) } : change;
    const at = this.coreMay(n, 'proposeConfChange', (raw) => raw.proposeConfChange(cc));
    this.trace.add(this.now, id, `propose conf change ${describeConfChange(cc)}: ${at ? `at ${at.index}` : 'refused'}`);
    if (at) this.stats.confChanges++;
    return at !== undefined;
  }

  /** Asks leader `id` to transfer leadership to `to`. */
  transferLeader(id: string, to: string): void {
    const n = this.mustGet(id);
    if (!n.raw) return;
    this.stats.transfers++;
    this.trace.add(this.now, id, `transfer leadership to ${to}`);
    this.coreMay(n, 'transferLeader', (raw) => raw.transferLeader(to));
  }

  /** Snapshots `id`'s state machine at its applied index and compacts the log up to it. */
  compact(id: string): boolean {
    const n = this.mustGet(id);
    const index = n.sm.appliedIndex;
    if (!n.raw || index <= n.storage.snapshot().metadata.index || index > n.storage.lastIndex()) return false;
    const data = n.sm.snapshotData();
    n.storage.createSnapshot(index, n.confState, data);
    n.storage.compact(index);
    n.log.compact(index);
    if (n.durable) n.unsynced.push({ dueTick: this.now, entries: [], compactTo: { index, confState: n.confState, data } });
    this.stats.compactions++;
    this.trace.add(this.now, id, `compacted log to ${index}`);
    return true;
  }

  /** Freezes `id` for `ticks` ticks: it neither ticks nor handles messages (they wait for it). */
  pause(id: string, ticks: number): void {
    const n = this.mustGet(id);
    if (!n.raw || this.pausedUntil.has(id)) return;
    this.pausedUntil.set(id, this.now + ticks);
    this.trace.add(this.now, id, `PAUSE for ${ticks} ticks`);
  }

  /** Ends every pause now. */
  resumeAll(): void {
    this.pausedUntil.clear();
  }

  /** Crashes `id`: the core, the state machine and anything not durable are lost. */
  crash(id: string): void {
    const n = this.mustGet(id);
    if (!n.raw) return;
    n.raw = undefined;
    n.incarnation++;
    for (const r of n.pendingReads) this.checker.forgetRead(r.readId);
    n.pendingReads = [];
    if (n.durable) {
      n.storage = n.durable.clone(); // un-synced writes vanish with the page cache
      n.unsynced = [];
    }
    this.stats.crashes++;
    this.trace.add(this.now, id, `CRASH (durable: ${describeStorage(n.storage)})`);
  }

  /**
   * The amnesia fault: `id` loses its whole disk (log, hard state, snapshot, state machine) and
   * restarts empty as a new disk incarnation. Under the incarnation rule it does not bootstrap,
   * its peers drop its messages (their membership records its old incarnation) and it answers no
   * vote request, until the operator's procedure — remove it, add it back as a learner (recording
   * the new incarnation), promote it — has run (simulate.ts: replaceWiped). With the rule off
   * ('no-incarnation-rule') a founding member bootstraps again, as a server restarted with its
   * usual command line used to, and is believed.
   */
  wipe(id: string): void {
    const n = this.mustGet(id);
    if (n.raw) this.crash(id);
    n.storage = new MemoryStorage();
    n.durable = n.durable ? n.storage.clone() : undefined;
    n.unsynced = [];
    n.disk++;
    n.awaitingReplace = this.options.bug !== 'no-incarnation-rule';
    this.stats.wipes++;
    this.trace.add(this.now, id, `WIPE: lost the whole disk; restarts empty as disk incarnation ${n.disk}`);
    this.restart(id);
  }

  /** Nodes that lost their disk and have not been added back under the incarnation rule. */
  awaitingReplace(): SimNode[] {
    return [...this.nodes.values()].filter((n) => n.awaitingReplace);
  }

  /** Restarts a crashed node from its disk. */
  restart(id: string): void {
    const n = this.mustGet(id);
    if (n.raw) return;
    this.start(n);
    this.stats.restarts++;
    this.trace.add(this.now, id, `RESTART from ${describeStorage(n.storage)}`);
  }

  private start(n: SimNode): void {
    const snap = n.storage.snapshot();
    const { hardState, confState } = n.storage.initialState();
    n.sm = new KvStateMachine();
    n.log = new LogChain();
    if (snap.metadata.index > 0) {
      n.sm.restore(snap.data);
      n.log.installSnapshot(snap.metadata.index, snap.metadata.term, snapshotChain(snap));
    }
    const first = n.storage.firstIndex();
    const last = n.storage.lastIndex();
    if (last >= first) n.log.append(n.storage.entries(first, last + 1, Number.MAX_SAFE_INTEGER), (i, t, c) => this.checker.observeEntry(n.id, i, t, c));
    n.confState = confState;
    n.role = 'follower';
    n.term = hardState.term;
    n.vote = hardState.vote;
    n.commit = hardState.commit;
    n.checkedCommit = n.log.snapshotIndex;
    this.observeCommit(n, hardState.commit);
    const config: Config = {
      ...this.coreLimits,
      id: n.id,
      storage: n.storage,
      random: this.rng.fork(1000 + this.ids.indexOf(n.id) * 1000 + n.incarnation),
      applied: n.sm.appliedIndex,
      ...(this.options.bug && !HOST_BUGS.has(this.options.bug) ? { plantedBug: this.options.bug as PlantedBug } : {}),
    };
    n.raw = new RawNode(config);
    // A node that lost its disk neither votes nor campaigns until it is a voter again under its
    // new incarnation: replaying the log from index 1 it passes through the founding membership,
    // whose first entry makes it the only voter, and it would elect itself.
    if (n.awaitingReplace) n.raw.suspendVoting(true);
    // A founding member with an empty disk writes the initial membership into its log, as a
    // server does on first start (again after a crash that lost that first write). Spares start
    // empty and learn the membership by replication once they are added.
    const founding = this.voters0.includes(n.id) && !n.awaitingReplace;
    if (founding && n.storage.lastIndex() === 0 && hardState.term === 0) {
      const raw = n.raw;
      // The founding membership records every founding member's first disk (the founding handshake).
      this.core(n, 'bootstrap', () => raw.bootstrap(this.voters0.map((id) => ({ id, context: diskContext(0) }))));
    }
  }

  private flushUnsynced(): void {
    for (const n of this.nodes.values()) {
      const durable = n.durable;
      if (!durable) continue;
      while (n.unsynced.length > 0 && (n.unsynced[0] as UnsyncedWrite).dueTick <= this.now) {
        const w = n.unsynced.shift() as UnsyncedWrite;
        if (w.snapshot) durable.applySnapshot(w.snapshot);
        if (w.entries.length > 0) durable.append(w.entries);
        if (w.hardState) durable.setHardState(w.hardState);
        if (w.compactTo && w.compactTo.index > durable.snapshot().metadata.index && w.compactTo.index <= durable.lastIndex()) {
          durable.createSnapshot(w.compactTo.index, w.compactTo.confState, w.compactTo.data);
          durable.compact(w.compactTo.index);
        }
      }
    }
  }

  // ---------------------------------------------------------------------------------------------
  // Queries

  /** The live, running leader with the highest term, if any. */
  leader(): SimNode | undefined {
    let best: SimNode | undefined;
    for (const n of this.nodes.values()) {
      if (n.raw && !this.pausedUntil.has(n.id) && n.role === 'leader' && (!best || n.term > best.term)) best = n;
    }
    return best;
  }

  /** Nodes that are up and not paused (those a client can talk to). */
  liveIds(): string[] {
    return this.ids.filter((id) => this.nodes.get(id)?.raw !== undefined && !this.pausedUntil.has(id));
  }

  /** Crashed nodes. */
  downIds(): string[] {
    return this.ids.filter((id) => this.nodes.get(id)?.raw === undefined);
  }

  private mustGet(id: string): SimNode {
    const n = this.nodes.get(id);
    if (!n) throw new Error(`no simulated node ${id}`);
    return n;
  }

  /** Calls into the core; anything it throws is a bug in the core. */
  private core<T>(n: SimNode, what: string, fn: (raw: RawNode) => T): T {
    const raw = n.raw;
    if (!raw) throw new Error(`${n.id} is down (${what})`);
    try {
      return fn(raw);
    } catch (err) {
      if (err instanceof InvariantViolation) throw err;
      const msg = err instanceof Error ? err.message : String(err);
      throw new InvariantViolation('core-exception', `${n.id} ${what} threw: ${msg}`);
    }
  }

  /** Calls into the core where typed RaftErrors are expected conditions; returns undefined on one. */
  private coreMay<T>(n: SimNode, what: string, fn: (raw: RawNode) => T): T | undefined {
    const raw = n.raw;
    if (!raw) return undefined;
    try {
      const r = fn(raw);
      return r === undefined ? (true as T) : r;
    } catch (err) {
      if (err instanceof RaftError) {
        this.trace.add(this.now, n.id, `${what} refused: ${err.code}`);
        return undefined;
      }
      const msg = err instanceof Error ? err.message : String(err);
      throw new InvariantViolation('core-exception', `${n.id} ${what} threw: ${msg}`);
    }
  }
}

/** The core's limits for one run: small windows and sizes exercise flow control paths. */
function drawCoreLimits(rng: Prng, randomize: boolean): CoreLimits {
  if (!randomize) return { ...defaultConfig };
  const maxBytesPerAppend = rng.pick([1, 64, 1024, 1024 * 1024]);
  return {
    ...defaultConfig,
    electionTicks: 10,
    heartbeatTicks: rng.pick([1, 1, 2]),
    maxBytesPerAppend,
    maxInflightMessages: rng.pick([1, 2, 4, 256]),
    maxInflightBytes: rng.pick([0, maxBytesPerAppend, 4 * maxBytesPerAppend, 16 * 1024 * 1024]),
    maxUncommittedBytes: rng.pick([512, 64 * 1024 * 1024]),
    maxCommittedBytesPerReady: rng.pick([1, 256, 16 * 1024 * 1024]),
    preVote: rng.chance(0.75),
    checkQuorum: rng.chance(0.75),
  };
}

/** A conf change context recording the added node's disk incarnation. */
function diskContext(disk: number): string {
  return `disk=${disk}`;
}

/** Applies a conf change to the replicated incarnation record (KvStateMachine.incarnations). */
function recordIncarnation(sm: KvStateMachine, cc: ConfChange): void {
  if (cc.type === ConfChangeType.RemoveNode) {
    sm.incarnations.delete(cc.nodeId);
    return;
  }
  // A promotion keeps the record of the learner it promotes.
  const m = /^disk=(\d+)$/.exec(cc.context ?? '');
  if (m && !sm.incarnations.has(cc.nodeId)) sm.incarnations.set(cc.nodeId, Number(m[1]));
}

function snapshotChain(snap: Snapshot): number {
  return snap.metadata.index === 0 ? EMPTY_CHAIN : decodeSnapshotData(snap.data).chain;
}

function encodeReadCtx(readId: number): Uint8Array {
  const b = new Uint8Array(4);
  new DataView(b.buffer).setUint32(0, readId);
  return b;
}

function decodeReadCtx(ctx: Uint8Array): number | undefined {
  if (ctx.length !== 4) return undefined;
  return new DataView(ctx.buffer, ctx.byteOffset, 4).getUint32(0);
}

const MESSAGE_NAMES = new Map<number, string>(Object.entries(MessageType).map(([k, v]) => [v, k]));

/** One-line description of a message for the trace. */
export function describeMessage(m: Message): string {
  const name = MESSAGE_NAMES.get(m.type) ?? `type${m.type}`;
  let s = `${name} ${m.from}->${m.to} t${m.term}`;
  if (m.type === MessageType.App) s += ` prev=${m.index}/${m.logTerm} n=${m.entries.length} commit=${m.commit}`;
  else if (m.type === MessageType.AppResp) s += ` idx=${m.index}${m.reject ? ` REJECT hint=${m.rejectHint}` : ''}`;
  else if (m.type === MessageType.Vote || m.type === MessageType.PreVote) s += ` last=${m.index}/${m.logTerm}`;
  else if (m.type === MessageType.VoteResp || m.type === MessageType.PreVoteResp) s += m.reject ? ' REJECT' : ' GRANT';
  else if (m.type === MessageType.Snap && m.snapshot) s += ` snap=${m.snapshot.metadata.index}/${m.snapshot.metadata.term}`;
  else if (m.type === MessageType.Heartbeat) s += ` commit=${m.commit}`;
  return s;
}

function describeConfChange(cc: ConfChange): string {
  const t = cc.type === ConfChangeType.AddNode ? 'add' : cc.type === ConfChangeType.AddLearner ? 'add-learner' : 'remove';
  return `${t} ${cc.nodeId}`;
}

function describeConfState(cs: ConfState): string {
  return `voters=[${cs.voters.join(',')}] learners=[${cs.learners.join(',')}]`;
}

function describeStorage(s: MemoryStorage): string {
  const hs = s.initialState().hardState;
  return `term=${hs.term} vote=${hs.vote ?? '-'} commit=${hs.commit} log=${s.firstIndex()}..${s.lastIndex()}`;
}
