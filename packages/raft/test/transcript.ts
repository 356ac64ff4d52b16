// The transcript (interaction) test driver, after etcd-io/raft's `rafttest` datadriven tests.
// Each command drives real RawNodes over a network the script controls completely: nothing is
// delivered, ticked or persisted unless a command says so, and randomness is fixed, so the
// same script always prints the same transcript. See docs/raft.md for the command reference.
import {
  ConfChangeType,
  EntryType,
  MemoryStorage,
  MessageType,
  RaftError,
  RawNode,
  NotLeaderError,
  decodeConfChange,
  defaultConfig,
  type ConfState,
  type Config,
  type Entry,
  type Message,
  type NodeId,
  type RandomSource,
  type RaftLogger,
  type Ready,
} from '../src/index.js';
import {
  describeConfState,
  describeEntry,
  describeHardState,
  describeMessage,
  describeReady,
  describeSnapshot,
  tokenize,
  type Arg,
} from './transcript-format.js';

/** Upper bound on `stabilize` rounds; a script that does not settle is a bug in the script or core. */
const MAX_STABILIZE_ROUNDS = 1_000;

/** What a node's host keeps across a crash: its storage. Everything else is rebuilt on restart. */
interface Host {
  id: NodeId;
  storage: MemoryStorage;
  /** Undefined while crashed. */
  node: RawNode | undefined;
  config: Omit<Config, 'applied' | 'logger'>;
  /** The state machine: every applied non-empty normal entry, in order. */
  applied: { index: number; data: string }[];
  /** Membership after each applied index that changed it (for snapshots). */
  confHistory: { index: number; cs: ConfState }[];
}

/** Deterministic LCG for `seed=`; the default source returns 0 (timeout = electionTicks exactly). */
function seeded(seed: number): RandomSource {
  let s = seed >>> 0 || 1;
  return { int: (n: number) => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) % n) };
}
const ZERO_RANDOM: RandomSource = { int: () => 0 };

const enc = new TextEncoder();
const dec = new TextDecoder();

/** Normalises `1` and `n1` to `n1`. */
export function nodeId(s: string): NodeId {
  return /^\d+$/.test(s) ? `n${s}` : s;
}

/** Log messages that only repeat a role change the driver already prints. */
const QUIET_LOGS = new Set(['raft node started', 'became candidate', 'became leader', 'stepped down from leader']);

/** One scenario's world: its nodes, their storage, the message queue and the cut links. */
export class TranscriptEnv {
  private readonly hosts = new Map<NodeId, Host>();
  /** Messages sent and not yet delivered or dropped, in send order. */
  private queue: Message[] = [];
  /** Cut links, as "from>to". */
  private readonly cuts = new Set<string>();
  private out: string[] = [];
  private indent = '';

  /** Runs one command line and returns its output (`ok` when it printed nothing). */
  run(line: string): string {
    this.out = [];
    this.indent = '';
    const { cmd, args } = tokenize(line);
    this.dispatch(cmd, args);
    return this.out.length === 0 ? 'ok' : this.out.join('\n');
  }

  private emit(line: string): void {
    this.out.push(`${this.indent}${line}`);
  }

  private dispatch(cmd: string, args: Arg[]): void {
    switch (cmd) {
      case 'add-nodes':
        return this.addNodes(args);
      case 'campaign':
        return this.onNode(args, (n) => n.campaign());
      case 'propose':
        return this.propose(args);
      case 'propose-conf-change':
        return this.proposeConfChange(args);
      case 'read-index':
        return this.onNode(args, (n) => n.readIndex(enc.encode(positional(args, 1))));
      case 'transfer-leadership':
        return this.transferLeadership(args);
      case 'tick-election':
        return this.tick(args, (h) => h.config.electionTicks);
      case 'tick-heartbeat':
        return this.tick(args, (h) => h.config.heartbeatTicks);
      case 'tick':
        return this.tick(args, () => Number(positional(args, 1)));
      case 'process-ready':
        return this.forEachId(args, (id) => this.processReady(id));
      case 'deliver-msgs':
        return this.deliverMsgsCommand(args);
      case 'stabilize':
        return this.stabilize(args);
      case 'partition':
        return this.partition(args);
      case 'cut':
        return this.cut(args);
      case 'heal':
        this.cuts.clear();
        return;
      case 'crash':
        return this.forEachId(args, (id) => this.crash(id));
      case 'restart':
        return this.forEachId(args, (id) => this.restart(id));
      case 'compact':
        return this.compact(args);
      case 'raft-log':
        return this.forEachId(args, (id) => this.raftLog(id));
      case 'log-terms':
        return this.forEachId(args, (id) => this.logTerms(id));
      case 'raft-state':
        return this.raftState();
      case 'status':
        return this.forEachId(args, (id) => this.status(id));
      case 'applied':
        return this.forEachId(args, (id) => this.emit(`${id}: [${this.host(id).applied.map((a) => `${a.index}:${a.data}`).join(' ')}]`));
      case 'forge-msg':
        return this.forgeMsg(args);
      case 'lose-tail':
        return this.loseTail(args);
      case 'report-unreachable':
        return this.onNode(args, (n) => n.reportUnreachable(nodeId(positional(args, 1))));
      case 'report-snapshot':
        return this.onNode(args, (n) => n.reportSnapshot(nodeId(positional(args, 1)), (positional(args, 2, 'ok')) === 'ok'));
      default:
        throw new Error(`unknown command "${cmd}"`);
    }
  }

  // -------------------------------------------------------------------------------------------
  // Nodes.

  private host(id: NodeId): Host {
    const h = this.hosts.get(id);
    if (!h) throw new Error(`no node ${id}`);
    return h;
  }

  private live(id: NodeId): RawNode {
    const n = this.host(id).node;
    if (!n) throw new Error(`node ${id} is crashed`);
    return n;
  }

  /** Ids named by the positional arguments, or every node when there are none. */
  private ids(args: Arg[]): NodeId[] {
    const named = args.filter((a) => a.key === undefined && !a.group).map((a) => nodeId(a.value));
    return named.length > 0 ? named : [...this.hosts.keys()];
  }

  private forEachId(args: Arg[], fn: (id: NodeId) => void): void {
    for (const id of this.ids(args)) fn(id);
  }

  /** Runs fn on the node named by the first argument, printing typed errors as output. */
  private onNode(args: Arg[], fn: (n: RawNode) => void): void {
    const id = nodeId(positional(args, 0));
    this.guard(() => fn(this.live(id)));
  }

  private guard(fn: () => void): void {
    try {
      fn();
    } catch (e) {
      if (!(e instanceof RaftError)) throw e;
      const hint = e instanceof NotLeaderError ? ` (leaderHint: ${e.leaderHint ?? '-'})` : '';
      this.emit(`error ${e.code}${hint}: ${e.message}`);
    }
  }

  private addNodes(args: Arg[]): void {
    const count = Number(positional(args, 0));
    const opt = options(args);
    const first = this.hosts.size + 1;
    const newIds = Array.from({ length: count }, (_, k) => `n${first + k}`);
    const voters = opt.groups.get('voters')?.map(nodeId) ?? (this.hosts.size === 0 && !opt.groups.has('learners') ? newIds : []);
    const learners = opt.groups.get('learners')?.map(nodeId) ?? [];
    // Founding voters of an empty log bootstrap: the membership is written into the log (entries
    // 1..N) so that nodes joining later learn it by replication. Learners, `index=` and `log=`
    // give the membership as the storage's initial ConfState instead (as after a snapshot).
    const bootstrap = voters.length > 0 && learners.length === 0 && !opt.values.has('index') && !opt.groups.has('log');
    const cs: ConfState = bootstrap ? { voters: [], learners: [] } : { voters, learners };
    for (const id of newIds) {
      const storage = new MemoryStorage({ confState: cs });
      seedLog(storage, cs, opt);
      const config = {
        ...defaultConfig,
        id,
        storage,
        // Each node its own stream, so randomized timeouts differ between nodes.
        random: opt.values.has('seed') ? seeded(Number(opt.values.get('seed')) * 1000 + Number(id.slice(1))) : ZERO_RANDOM,
        electionTicks: opt.num('election', 10),
        heartbeatTicks: opt.num('heartbeat', 2),
        preVote: opt.bool('prevote', true),
        checkQuorum: opt.bool('checkquorum', true),
        maxInflightMessages: opt.num('max-inflight', defaultConfig.maxInflightMessages),
        maxInflightBytes: opt.num('max-inflight-bytes', defaultConfig.maxInflightBytes),
        maxBytesPerAppend: opt.num('max-bytes-per-append', defaultConfig.maxBytesPerAppend),
        maxUncommittedBytes: opt.num('max-uncommitted-bytes', defaultConfig.maxUncommittedBytes),
        maxCommittedBytesPerReady: opt.num('max-committed-bytes-per-ready', defaultConfig.maxCommittedBytesPerReady),
      };
      const host: Host = { id, storage, node: undefined, config, applied: [], confHistory: [{ index: 0, cs }] };
      this.hosts.set(id, host);
      this.start(host, storage.firstIndex() - 1);
      if (bootstrap) this.bootstrap(host, voters);
    }
  }

  /** Bootstraps a founding member and handles the Ready that persists and applies its entries. */
  private bootstrap(h: Host, voters: NodeId[]): void {
    const node = this.live(h.id);
    node.bootstrap(voters.map((id) => ({ id })));
    const saved = this.out;
    this.out = [];
    this.processReady(h.id);
    this.out = saved;
    const st = node.status();
    this.emit(`${h.id} bootstrapped: ${describeConfState(st.confState)} in entries 1..${voters.length} (committed and applied) Term:${st.hardState.term}`);
  }

  /** Creates the RawNode of a host over its storage, with the role-change and log hooks. */
  private start(h: Host, applied: number): void {
    const logger = this.loggerFor(h.id);
    const node = new RawNode({ ...h.config, applied, logger });
    h.node = node;
    this.instrument(node);
    const st = node.status();
    const lastTerm = h.storage.term(h.storage.lastIndex());
    this.emit(
      `${h.id} started: ${describeConfState(st.confState)} Term:${st.hardState.term} Commit:${st.hardState.commit} ` +
        `Applied:${st.applied} LastIndex:${st.lastIndex} LastTerm:${lastTerm}`,
    );
  }

  private loggerFor(id: NodeId): RaftLogger {
    const log =
      (level: string) =>
      (fields: Record<string, unknown>, msg: string): void => {
        if (QUIET_LOGS.has(msg)) return;
        const f = Object.entries(fields)
          .map(([k, v]) => `${k}=${String(v)}`)
          .join(' ');
        this.emit(`${level} ${id}: ${msg}${f ? ` (${f})` : ''}`);
      };
    return { debug: () => {}, info: log('INFO'), warn: log('WARN') };
  }

  /** Prints `n2 became leader at term 3` whenever the core changes role (one hook per role). */
  private instrument(node: RawNode): void {
    const raft = node.raft;
    const methods = raft as unknown as Record<string, (...a: unknown[]) => void>;
    const roles: Array<[string, string]> = [
      ['becomeFollower', 'follower'],
      ['becomePreCandidate', 'pre-candidate'],
      ['becomeCandidate', 'candidate'],
      ['becomeLeader', 'leader'],
    ];
    for (const [name, label] of roles) {
      const orig = methods[name];
      if (typeof orig !== 'function') throw new Error(`Raft has no ${name}`);
      methods[name] = (...a: unknown[]) => {
        orig.apply(raft, a);
        this.emit(`${raft.id} became ${label} at term ${raft.term}`);
      };
    }
  }

  /**
   * `forge-msg <to> type=App from=n3 term=2 index=3 log-term=1 commit=3 entries=(1/4 999/5)
   * reject=true hint=2 hint-term=1`: steps a hand-made message into <to>, as a hostile or broken
   * peer could send it (entries are term/index). Prints the message, then what the core said.
   */
  private forgeMsg(args: Arg[]): void {
    const to = nodeId(positional(args, 0));
    const opt = options(args);
    const typeName = opt.values.get('type') ?? '';
    const type = (MessageType as Record<string, MessageType>)[typeName];
    if (type === undefined) throw new Error(`forge-msg: unknown type=${typeName}`);
    const entries: Entry[] = (opt.groups.get('entries') ?? []).map((ti) => {
      const [term, index] = ti.split('/').map(Number);
      return { term: term ?? 0, index: index ?? 0, type: EntryType.Normal, data: enc.encode('forged') };
    });
    const m: Message = {
      type,
      to,
      from: nodeId(opt.values.get('from') ?? ''),
      term: opt.num('term', 0),
      logTerm: opt.num('log-term', 0),
      index: opt.num('index', 0),
      entries,
      commit: opt.num('commit', 0),
      reject: opt.bool('reject', false),
      rejectHint: opt.num('hint', 0),
      ...(opt.values.has('hint-term') ? { rejectHintTerm: opt.num('hint-term', 0) } : {}),
    };
    this.emit(`forged: ${describeMessage(m)}`);
    this.guard(() => this.live(to).step(m));
  }

  /**
   * `lose-tail <id> keep=N`: a crashed node's disk silently loses every entry after N (and the
   * hard state's commit is cut to N), as a LevelDB log that dropped its last records would.
   */
  private loseTail(args: Arg[]): void {
    const id = nodeId(positional(args, 0));
    const keep = options(args).num('keep', 0);
    const h = this.host(id);
    if (h.node) throw new Error(`lose-tail ${id}: crash it first`);
    const old = h.storage;
    const { hardState, confState } = old.initialState();
    const storage = new MemoryStorage({ hardState: { ...hardState, commit: Math.min(hardState.commit, keep) }, confState });
    const snap = old.snapshot();
    if (snap.metadata.index > 0) storage.applySnapshot(snap);
    const first = old.firstIndex();
    if (keep >= first) storage.append(old.entries(first, keep + 1, Number.MAX_SAFE_INTEGER));
    h.storage = storage;
    h.config = { ...h.config, storage };
    this.emit(`${id} lost its log after index ${keep} (last index now ${storage.lastIndex()})`);
  }

  private crash(id: NodeId): void {
    const h = this.host(id);
    h.node = undefined;
    this.emit(`${id} crashed (unsent messages and unpersisted state are lost)`);
  }

  /** A new RawNode over the persisted storage; the state machine is rebuilt from its snapshot. */
  private restart(id: NodeId): void {
    const h = this.host(id);
    if (h.node) throw new Error(`node ${id} is not crashed`);
    const snap = h.storage.snapshot();
    h.applied = decodeStateMachine(snap.data);
    h.confHistory = [{ index: snap.metadata.index, cs: snap.metadata.confState }];
    this.start(h, snap.metadata.index);
  }

  // -------------------------------------------------------------------------------------------
  // Inputs.

  private propose(args: Arg[]): void {
    const id = nodeId(positional(args, 0));
    const opt = options(args);
    const data = opt.values.has('bytes') ? 'x'.repeat(opt.num('bytes', 0)) : positional(args, 1);
    this.guard(() => {
      const { index, term } = this.live(id).propose(enc.encode(data));
      this.emit(`${id} proposed ${term}/${index}`);
    });
  }

  private proposeConfChange(args: Arg[]): void {
    const id = nodeId(positional(args, 0));
    const kind = positional(args, 1);
    const target = nodeId(positional(args, 2));
    const type = { add: ConfChangeType.AddNode, 'add-learner': ConfChangeType.AddLearner, remove: ConfChangeType.RemoveNode }[kind];
    if (type === undefined) throw new Error(`propose-conf-change: unknown change "${kind}" (add, add-learner, remove)`);
    this.guard(() => {
      const { index, term } = this.live(id).proposeConfChange({ type, nodeId: target });
      this.emit(`${id} proposed ${term}/${index}`);
    });
  }

  private transferLeadership(args: Arg[]): void {
    const opt = options(args);
    const from = nodeId(opt.values.get('from') ?? positional(args, 0));
    const to = nodeId(opt.values.get('to') ?? positional(args, 1));
    this.guard(() => this.live(from).transferLeader(to));
  }

  private tick(args: Arg[], count: (h: Host) => number): void {
    const id = nodeId(positional(args, 0));
    const h = this.host(id);
    const n = count(h);
    for (let i = 0; i < n; i++) this.live(id).tick();
  }

  // -------------------------------------------------------------------------------------------
  // The host loop, one Ready at a time.

  /** Persists, sends (queues), applies and advances one Ready, printing it. */
  private processReady(id: NodeId): boolean {
    const h = this.host(id);
    const node = h.node;
    if (!node || !node.hasReady()) return false;
    const rd = node.ready();
    for (const l of describeReady(rd)) this.emit(l);
    // 1. persist: snapshot, entries, hard state.
    if (rd.snapshot) h.storage.applySnapshot(rd.snapshot);
    h.storage.append(rd.entries);
    if (rd.hardState) h.storage.setHardState(rd.hardState);
    // 2. send.
    this.queue.push(...rd.messages);
    // 3. install the snapshot, then apply.
    if (rd.snapshot) {
      h.applied = decodeStateMachine(rd.snapshot.data);
      h.confHistory = [{ index: rd.snapshot.metadata.index, cs: rd.snapshot.metadata.confState }];
    }
    this.apply(h, node, rd);
    node.advance(rd);
    return true;
  }

  private apply(h: Host, node: RawNode, rd: Ready): void {
    for (const e of rd.committedEntries) {
      if (e.type === EntryType.ConfChange) {
        const cs = node.applyConfChange(decodeConfChange(e.data));
        h.confHistory.push({ index: e.index, cs });
        this.emit(`${h.id} applied ${describeEntry(e)}: now ${describeConfState(cs)}`);
      } else if (e.data.length > 0) {
        h.applied.push({ index: e.index, data: dec.decode(e.data) });
      }
    }
  }

  private deliverMsgsCommand(args: Arg[]): void {
    const opt = options(args);
    for (const id of opt.groups.get('drop')?.map(nodeId) ?? []) {
      for (const m of this.take(id)) this.emit(`dropped: ${describeMessage(m)}`);
    }
    const named = args.some((a) => a.key === undefined);
    if (!named && opt.groups.has('drop')) return;
    for (const id of this.ids(args)) this.deliver(id);
  }

  /** Removes and returns the queued messages addressed to id. */
  private take(id: NodeId): Message[] {
    const mine = this.queue.filter((m) => m.to === id);
    this.queue = this.queue.filter((m) => m.to !== id);
    return mine;
  }

  /** Delivers every queued message addressed to id, unless its link is cut or id is down. */
  private deliver(id: NodeId): boolean {
    const msgs = this.take(id);
    for (const m of msgs) {
      const node = this.hosts.get(id)?.node;
      if (!node) {
        this.emit(`dropped (${id} is down): ${describeMessage(m)}`);
      } else if (this.cuts.has(`${m.from}>${m.to}`)) {
        this.emit(`dropped (link ${m.from}>${m.to} is cut): ${describeMessage(m)}`);
      } else {
        this.emit(describeMessage(m));
        this.guard(() => node.step(m));
      }
    }
    return msgs.length > 0;
  }

  /** Alternates Ready handling and delivery among `ids` until nothing is left to do. */
  private stabilize(args: Arg[]): void {
    const ids = this.ids(args);
    for (let round = 0; round < MAX_STABILIZE_ROUNDS; round++) {
      let busy = false;
      for (const id of ids) {
        if (!this.hosts.get(id)?.node?.hasReady()) continue;
        this.emit(`> ${id} handling Ready`);
        this.indented(() => this.processReady(id));
        busy = true;
      }
      for (const id of ids) {
        if (!this.queue.some((m) => m.to === id)) continue;
        this.emit(`> ${id} receiving messages`);
        this.indented(() => this.deliver(id));
        busy = true;
      }
      if (!busy) return;
    }
    throw new Error(`stabilize did not settle within ${MAX_STABILIZE_ROUNDS} rounds`);
  }

  private indented(fn: () => void): void {
    const prev = this.indent;
    this.indent = `${prev}  `;
    try {
      fn();
    } finally {
      this.indent = prev;
    }
  }

  // -------------------------------------------------------------------------------------------
  // The network.

  private partition(args: Arg[]): void {
    const groups = args.filter((a) => a.group && a.key === undefined).map((a) => a.group!.map(nodeId));
    for (let i = 0; i < groups.length; i++) {
      for (let j = 0; j < groups.length; j++) {
        if (i === j) continue;
        for (const a of groups[i]!) for (const b of groups[j]!) this.cuts.add(`${a}>${b}`);
      }
    }
    this.emit(`partitioned: ${groups.map((g) => `(${g.join(' ')})`).join(' | ')}`);
  }

  private cut(args: Arg[]): void {
    for (const a of args) {
      const [from, to] = a.value.split('>');
      if (!from || !to) throw new Error(`cut: expected a>b, got ${a.value}`);
      this.cuts.add(`${nodeId(from)}>${nodeId(to)}`);
    }
  }

  // -------------------------------------------------------------------------------------------
  // Host actions and inspection.

  /** Snapshots the state machine at `index` (<= applied) and compacts the log up to it. */
  private compact(args: Arg[]): void {
    const id = nodeId(positional(args, 0));
    const index = Number(positional(args, 1));
    const h = this.host(id);
    const applied = this.live(id).status().applied;
    if (index > applied) throw new Error(`compact ${id} ${index}: only ${applied} is applied`);
    let cs = h.confHistory[0]!.cs;
    for (const c of h.confHistory) if (c.index <= index) cs = c.cs;
    const data = enc.encode(JSON.stringify(h.applied.filter((a) => a.index <= index)));
    const snap = h.storage.createSnapshot(index, cs, data);
    h.storage.compact(index);
    this.emit(`${id}: snapshot ${describeSnapshot(snap)}; log now starts at ${h.storage.firstIndex()}`);
  }

  private persistedEntries(h: Host): Entry[] {
    const first = h.storage.firstIndex();
    const last = h.storage.lastIndex();
    return last < first ? [] : h.storage.entries(first, last + 1, Number.MAX_SAFE_INTEGER);
  }

  private raftLog(id: NodeId): void {
    const h = this.host(id);
    const first = h.storage.firstIndex();
    if (first > 1) this.emit(`${id} snapshot: Index:${first - 1} Term:${h.storage.term(first - 1)}`);
    const ents = this.persistedEntries(h);
    if (ents.length === 0) this.emit(`${id} log is empty`);
    for (const e of ents) this.emit(describeEntry(e));
  }

  private logTerms(id: NodeId): void {
    const h = this.host(id);
    const first = h.storage.firstIndex();
    const terms = this.persistedEntries(h).map((e) => e.term);
    const from = first > 1 ? ` (from index ${first})` : '';
    this.emit(`${id}: terms [${terms.join(' ')}]${from} commit=${h.storage.initialState().hardState.commit}`);
  }

  private raftState(): void {
    for (const h of this.hosts.values()) {
      if (!h.node) {
        this.emit(`${h.id}: crashed`);
        continue;
      }
      const st = h.node.status();
      const member = st.confState.voters.includes(h.id) ? 'Voter' : st.confState.learners.includes(h.id) ? 'Learner' : 'NonMember';
      this.emit(`${h.id}: ${st.softState.role} (${member}) Term:${st.hardState.term} Lead:${st.softState.lead ?? '-'}`);
    }
  }

  private status(id: NodeId): void {
    const st = this.live(id).status();
    this.emit(
      `${id}: ${st.softState.role} ${describeHardState(st.hardState)} Applied:${st.applied} LastIndex:${st.lastIndex} ` +
        `Lead:${st.softState.lead ?? '-'}${st.leadTransferee ? ` Transferee:${st.leadTransferee}` : ''}`,
    );
    this.emit(`  ${describeConfState(st.confState)}`);
    if (st.ignoredMessages > 0 || st.followerLogRegressions > 0) {
      this.emit(`  IgnoredMessages:${st.ignoredMessages} FollowerLogRegressions:${st.followerLogRegressions}`);
    }
    for (const [pid, p] of Object.entries(st.progress ?? {})) {
      let s = `  ${pid}: ${p.state} match=${p.match} next=${p.next}`;
      if (p.learner) s += ' learner';
      if (p.inflightMessages > 0) s += ` inflight=${p.inflightMessages} (${p.inflightBytes}B)`;
      if (p.state === 'snapshot') s += ` pendingSnapshot=${p.pendingSnapshot}`;
      this.emit(s);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Helpers.

function positional(args: Arg[], i: number, dflt?: string): string {
  const pos = args.filter((a) => a.key === undefined);
  const v = pos[i]?.value ?? dflt;
  if (v === undefined) throw new Error(`missing argument ${i + 1}`);
  return v;
}

function options(args: Arg[]) {
  const values = new Map<string, string>();
  const groups = new Map<string, string[]>();
  for (const a of args) {
    if (a.key === undefined) continue;
    if (a.group) groups.set(a.key, a.group);
    else values.set(a.key, a.value);
  }
  return {
    values,
    groups,
    num(key: string, dflt: number): number {
      const v = values.get(key);
      if (v === undefined) return dflt;
      const n = Number(v);
      if (!Number.isFinite(n)) throw new Error(`${key}=${v} is not a number`);
      return n;
    },
    bool(key: string, dflt: boolean): boolean {
      const v = values.get(key);
      return v === undefined ? dflt : v === 'true';
    },
  };
}

/**
 * Prepares a node's "disk" for `add-nodes`: `index=N` starts the log with a snapshot at N/1,
 * `log=(t t …)` appends entries with those terms, `term=`, `vote=`, `commit=` set the hard state.
 * Entry data is derived from (index, term) so equal entries on different nodes are identical.
 */
function seedLog(storage: MemoryStorage, cs: ConfState, opt: ReturnType<typeof options>): void {
  const index = opt.num('index', 0);
  if (index > 0) storage.applySnapshot({ metadata: { index, term: 1, confState: cs }, data: enc.encode('[]') });
  const terms = (opt.groups.get('log') ?? []).map(Number);
  const ents: Entry[] = terms.map((term, k) => ({
    term,
    index: index + 1 + k,
    type: EntryType.Normal,
    data: enc.encode(`e${index + 1 + k}t${term}`),
  }));
  storage.append(ents);
  const lastTerm = terms.length > 0 ? terms[terms.length - 1]! : index > 0 ? 1 : 0;
  const term = opt.num('term', lastTerm);
  const vote = opt.values.get('vote');
  const commit = opt.num('commit', index);
  if (term > 0 || commit > 0 || vote) storage.setHardState({ term, vote: vote ? nodeId(vote) : null, commit });
}

function decodeStateMachine(data: Uint8Array): { index: number; data: string }[] {
  if (data.length === 0) return [];
  return JSON.parse(dec.decode(data)) as { index: number; data: string }[];
}

