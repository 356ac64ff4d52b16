// The data types of the consensus core. Everything here is plain data: it can be encoded by
// msgpack on the wire and by the storage layer on disk without conversion.
//
// Node ids are non-empty strings ("n1"). Indexes and terms are JS numbers (safe to 2^53).

/** A node id. `null` where "no node" is meant (no vote, no known leader). */
export type NodeId = string;

export const EntryType = {
  /** A client command; `data` is opaque to the core (empty = the leader's no-op of a new term). */
  Normal: 0,
  /** A membership change; `data` is `encodeConfChange(cc)`. */
  ConfChange: 1,
} as const;
export type EntryType = (typeof EntryType)[keyof typeof EntryType];

export interface Entry {
  term: number;
  index: number;
  type: EntryType;
  data: Uint8Array;
}

/** What must survive a crash besides the log. Persist BEFORE sending any message of the same Ready. */
export interface HardState {
  term: number;
  vote: NodeId | null;
  commit: number;
}

/** The membership: voters decide, learners only receive the log. */
export interface ConfState {
  voters: NodeId[];
  learners: NodeId[];
}

export const ConfChangeType = {
  /** Add a voter, or promote an existing learner to voter. */
  AddNode: 0,
  /** Add a non-voting learner (a voter cannot be demoted this way). */
  AddLearner: 1,
  RemoveNode: 2,
} as const;
export type ConfChangeType = (typeof ConfChangeType)[keyof typeof ConfChangeType];

/** One membership change; the core allows one at a time (Raft thesis §4.1). */
export interface ConfChange {
  type: ConfChangeType;
  nodeId: NodeId;
  /** Opaque to the core; the server puts the node's address here. */
  context?: string;
}

export interface SnapshotMetadata {
  index: number;
  term: number;
  confState: ConfState;
}

/**
 * A state-machine snapshot. `data` is opaque to the core. A host that streams snapshots out of
 * band (the server does) may leave it empty in the core and carry the bytes separately.
 */
export interface Snapshot {
  metadata: SnapshotMetadata;
  data: Uint8Array;
}

export const MessageType = {
  // Local messages: never sent on the wire.
  Hup: 0, // start an election (or pre-election)
  Beat: 1, // leader: send heartbeats
  Prop: 2, // propose entries (local only; proposals are not forwarded between nodes)
  CheckQuorum: 3, // leader: step down unless a quorum was active recently
  Unreachable: 4, // host: the peer could not be reached
  SnapStatus: 5, // host: a snapshot send finished (reject = failed)
  // Wire messages.
  App: 10,
  AppResp: 11,
  Vote: 12,
  VoteResp: 13,
  PreVote: 14,
  PreVoteResp: 15,
  Snap: 16,
  Heartbeat: 17,
  HeartbeatResp: 18,
  TransferLeader: 19,
  TimeoutNow: 20,
  ReadIndex: 21,
  ReadIndexResp: 22,
} as const;
export type MessageType = (typeof MessageType)[keyof typeof MessageType];

/**
 * One Raft message. Fields that a type does not use are left at their zero value
 * (0, false, empty array, undefined).
 */
export interface Message {
  type: MessageType;
  to: NodeId;
  from: NodeId;
  term: number;
  /** App: term of the entry at `index`. Vote/PreVote: the candidate's last log term. */
  logTerm: number;
  /** App: index preceding `entries`. Vote: candidate's last index. AppResp: the index acked/rejected. */
  index: number;
  entries: Entry[];
  commit: number;
  /** AppResp/VoteResp/PreVoteResp/SnapStatus: a negative answer. */
  reject: boolean;
  /** AppResp with reject: the follower's hint for fast back-off (a candidate next index). */
  rejectHint: number;
  /** AppResp with reject: the term of the entry at `rejectHint` on the follower (etcd's logTerm hint). */
  rejectHintTerm?: number;
  snapshot?: Snapshot;
  /** ReadIndex / Heartbeat(Resp): the read request context the leader echoes. TimeoutNow/Vote: campaign kind. */
  context?: Uint8Array;
}

/** A read served at `index`: once the state machine has applied `index`, the read is linearizable. */
export interface ReadState {
  index: number;
  requestCtx: Uint8Array;
}

export type Role = 'follower' | 'preCandidate' | 'candidate' | 'leader';

/** Volatile state the host may want to watch; not persisted. */
export interface SoftState {
  lead: NodeId | null;
  role: Role;
}

/**
 * What the host must do now, in this order:
 *   1. persist `hardState` and `entries` (and `snapshot` if present) — durably when `mustSync`;
 *   2. send `messages` (a leader may send them while step 1 is in flight: Raft thesis §10.2.1,
 *      but every other role must wait for step 1, or a vote could be forgotten in a crash);
 *   3. install `snapshot` into the state machine, then apply `committedEntries` in order;
 *   4. serve each `readStates` entry once applied >= its index;
 *   5. call `advance(ready)`.
 */
export interface Ready {
  softState?: SoftState;
  /** Persist BEFORE sending messages. Present only when changed. */
  hardState?: HardState;
  /** Append to stable storage BEFORE sending messages (replacing any conflicting suffix). */
  entries: Entry[];
  /** Install BEFORE applying committed entries. */
  snapshot?: Snapshot;
  /** Apply to the state machine, in order. Already durable on a quorum. */
  committedEntries: Entry[];
  /** Send AFTER persisting (see the leader exception above). */
  messages: Message[];
  readStates: ReadState[];
  /** True when hardState.term/vote or entries changed: the write must be fsynced. */
  mustSync: boolean;
}

/**
 * The log as stored by the host, read synchronously by the core. The core never writes it: the
 * host appends what Ready tells it to. `MemoryStorage` is the reference implementation.
 */
export interface RaftStorage {
  initialState(): { hardState: HardState; confState: ConfState };
  /** Entries in [lo, hi), at least one if any exists, at most maxBytes in total otherwise. */
  entries(lo: number, hi: number, maxBytes: number): Entry[];
  /** Term of entry i; valid for firstIndex()-1 .. lastIndex(). Throws CompactedError / UnavailableError. */
  term(i: number): number;
  /** Index of the first entry still available (snapshot index + 1). */
  firstIndex(): number;
  lastIndex(): number;
  /** The latest snapshot. May throw SnapshotTemporarilyUnavailableError; the core retries later. */
  snapshot(): Snapshot;
}

/** Randomness enters the core only through this (seeded in tests, crypto in production). */
export interface RandomSource {
  /** Uniform integer in [0, n). */
  int(n: number): number;
}

/** A structured logger; the core logs state changes, never hot-path events. */
export interface RaftLogger {
  debug(fields: Record<string, unknown>, msg: string): void;
  info(fields: Record<string, unknown>, msg: string): void;
  warn(fields: Record<string, unknown>, msg: string): void;
}

/**
 * Deliberate bugs, for proving that the simulation catches them. Never set outside tests.
 *  - 'commit-previous-term': count replicas of a previous-term entry to commit it (breaks §5.4.2).
 *  - 'double-vote': grant a vote even if one was already given in this term.
 *  - 'no-log-check-vote': grant votes without comparing logs (election restriction §5.4.1).
 *  - 'stale-read': answer ReadIndex at once, without confirming leadership with a heartbeat round.
 */
export type PlantedBug = 'commit-previous-term' | 'double-vote' | 'no-log-check-vote' | 'stale-read';

export interface Config {
  id: NodeId;
  storage: RaftStorage;
  /** Ticks a follower waits without hearing a leader before campaigning; randomized in [e, 2e). */
  electionTicks: number;
  /** Ticks between leader heartbeats. Must be < electionTicks. */
  heartbeatTicks: number;
  /** The last index the host applied before a restart; entries up to it are not handed out again. */
  applied?: number;
  /** Max bytes of entries in one append message (at least one entry is always sent). */
  maxBytesPerAppend: number;
  /** Max append messages in flight to one follower in replicate state. */
  maxInflightMessages: number;
  /** Max bytes of entries in flight to one follower. 0 = no byte limit (not recommended). */
  maxInflightBytes: number;
  /** Max bytes of proposed but uncommitted entries on the leader; past it proposals are dropped. */
  maxUncommittedBytes: number;
  /** Max bytes of committed entries handed out in one Ready. */
  maxCommittedBytesPerReady: number;
  /** Run a pre-election first so a partitioned node cannot disrupt a healthy leader. */
  preVote: boolean;
  /** Leader steps down when it has not heard from a quorum in an election timeout. */
  checkQuorum: boolean;
  random: RandomSource;
  logger?: RaftLogger;
  /** Test-only. See PlantedBug. */
  plantedBug?: PlantedBug;
}

/** Defaults for everything but id, storage and random. */
export const defaultConfig = {
  electionTicks: 10,
  heartbeatTicks: 1,
  maxBytesPerAppend: 1024 * 1024,
  maxInflightMessages: 256,
  maxInflightBytes: 16 * 1024 * 1024,
  maxUncommittedBytes: 64 * 1024 * 1024,
  maxCommittedBytesPerReady: 16 * 1024 * 1024,
  preVote: true,
  checkQuorum: true,
} as const satisfies Partial<Config>;

export type ProgressState = 'probe' | 'replicate' | 'snapshot';

/** The leader's view of one follower. */
export interface ProgressStatus {
  match: number;
  next: number;
  state: ProgressState;
  learner: boolean;
  recentActive: boolean;
  inflightMessages: number;
  inflightBytes: number;
  pendingSnapshot: number;
}

export interface Status {
  id: NodeId;
  hardState: HardState;
  softState: SoftState;
  applied: number;
  lastIndex: number;
  confState: ConfState;
  /** Only on the leader. */
  progress?: Record<NodeId, ProgressStatus>;
  leadTransferee: NodeId | null;
  /** Peer messages ignored since start because no correct peer sends them (logged as warnings). */
  ignoredMessages: number;
  /**
   * Times since start that a follower rejected an index it had acknowledged to this node as
   * leader: it lost acknowledged entries (its disk dropped them). Each is logged as a warning.
   */
  followerLogRegressions: number;
}
