// Scenario profiles: how often each fault and each client action happens. A profile is plain
// data so a test can tune the fault mix for one purpose without touching the invariants.
import type { NetworkFaults } from './sim-network.js';

/** Per-step probabilities of the simulation's actions, and the network's fault rates. */
export interface SimProfile {
  name: string;
  network: NetworkFaults;
  /** A client write is proposed (to the leader most of the time, else to a random node). */
  proposeProbability: number;
  /** A ReadIndex read is started on a random live node. */
  readProbability: number;
  /** A random live node crashes. */
  crashProbability: number;
  /** A random crashed node restarts. */
  restartProbability: number;
  /** Named maximum: nodes down at once. */
  maxCrashedNodes: number;
  /** A new partition (symmetric split, isolation or one-way cut) is added. */
  partitionProbability: number;
  /** All partitions heal. */
  healProbability: number;
  /** The current leader is cut off from everyone (after healing older cuts): it keeps
   *  accepting writes it cannot replicate, and a new leader is elected without them. */
  isolateLeaderProbability: number;
  /** A random live node freezes (GC pause, stopped VM) for 1..maxPauseTicks ticks. */
  pauseProbability: number;
  maxPauseTicks: number;
  /** A random live node snapshots its state machine and compacts its log. */
  compactProbability: number;
  /** The leader is asked to transfer leadership to a random voter. */
  transferProbability: number;
  /** A membership change (add learner, promote, remove, re-add) is proposed to the leader. */
  confChangeProbability: number;
  /** A random node loses its whole disk and restarts empty (the amnesia fault; SimCluster.wipe). */
  wipeProbability: number;
  /** Named maximum: nodes that lost their disk and are not added back yet, at once. */
  maxWipedNodes: number;
  /** The operator takes the next step of replacing a wiped node (remove, add as learner, promote). */
  replaceProbability: number;
  /** Size of the key space the workload writes and reads. */
  keyCount: number;
  /** Persisting a Ready takes this many ticks to become durable when the host does not wait for it. */
  unsyncedWriteTicks: { min: number; max: number };
  /** Draw the core's limits (inflight window, bytes per append, PreVote, CheckQuorum) from the seed. */
  randomizeCoreConfig: boolean;
  /** Core settings forced after the draw (a profile aimed at one code path pins them). */
  coreOverrides?: Partial<CoreSettings>;
}

/** The core settings a profile may pin. */
export interface CoreSettings {
  electionTicks: number;
  heartbeatTicks: number;
  maxBytesPerAppend: number;
  maxInflightMessages: number;
  maxInflightBytes: number;
  maxUncommittedBytes: number;
  maxCommittedBytesPerReady: number;
  preVote: boolean;
  checkQuorum: boolean;
}

/** The default mix: every fault on, at rates that still let the cluster make progress. */
export const DEFAULT_PROFILE: SimProfile = {
  name: 'default',
  network: {
    dropProbability: 0.05,
    duplicateProbability: 0.03,
    minDelayTicks: 1,
    maxDelayTicks: 3,
    longDelayProbability: 0.02,
    maxLongDelayTicks: 25,
  },
  proposeProbability: 0.3,
  readProbability: 0.15,
  crashProbability: 0.01,
  restartProbability: 0.08,
  maxCrashedNodes: 2,
  partitionProbability: 0.01,
  healProbability: 0.03,
  isolateLeaderProbability: 0.005,
  pauseProbability: 0.005,
  maxPauseTicks: 40,
  compactProbability: 0.02,
  transferProbability: 0.005,
  confChangeProbability: 0.01,
  wipeProbability: 0,
  maxWipedNodes: 1,
  replaceProbability: 0.1,
  keyCount: 5,
  unsyncedWriteTicks: { min: 1, max: 6 },
  randomizeCoreConfig: true,
};

/** Frequent crashes, short partitions and elections: the mix that exposes lost votes/entries. */
export const CRASHY_PROFILE: SimProfile = {
  ...DEFAULT_PROFILE,
  name: 'crashy',
  crashProbability: 0.05,
  restartProbability: 0.25,
  partitionProbability: 0.02,
  healProbability: 0.05,
  unsyncedWriteTicks: { min: 2, max: 10 },
};

/** Many partitions and leader changes with a steady write load: exposes commit/election bugs. */
export const CHURN_PROFILE: SimProfile = {
  ...DEFAULT_PROFILE,
  name: 'churn',
  proposeProbability: 0.5,
  crashProbability: 0.02,
  restartProbability: 0.1,
  partitionProbability: 0.05,
  healProbability: 0.04,
  transferProbability: 0.01,
};

/**
 * Raft Figure 8 territory: leaders crash right after replicating an old-term entry to a
 * majority, one entry per append so a new leader's no-op travels separately from the old
 * entries it re-replicates. This is where counting a previous-term entry as committed is wrong.
 */
export const FIGURE8_PROFILE: SimProfile = {
  ...DEFAULT_PROFILE,
  name: 'figure8',
  network: { ...DEFAULT_PROFILE.network, dropProbability: 0.02, longDelayProbability: 0 },
  proposeProbability: 0.6,
  crashProbability: 0,
  restartProbability: 0.3,
  maxCrashedNodes: 2,
  partitionProbability: 0,
  healProbability: 0,
  isolateLeaderProbability: 0.08,
  compactProbability: 0,
  confChangeProbability: 0,
  coreOverrides: { maxBytesPerAppend: 1, maxInflightBytes: 0, maxInflightMessages: 256 },
};

/** Membership churn, compaction and leader transfers far more often than in the default mix. */
export const MEMBERSHIP_PROFILE: SimProfile = {
  ...DEFAULT_PROFILE,
  name: 'membership',
  confChangeProbability: 0.06,
  compactProbability: 0.06,
  transferProbability: 0.02,
  isolateLeaderProbability: 0.01,
};

/** A hostile network: heavy loss, duplication and very late messages, plus long pauses. */
export const CHAOS_PROFILE: SimProfile = {
  ...DEFAULT_PROFILE,
  name: 'chaos',
  network: { dropProbability: 0.2, duplicateProbability: 0.15, minDelayTicks: 1, maxDelayTicks: 5, longDelayProbability: 0.08, maxLongDelayTicks: 60 },
  pauseProbability: 0.03,
  maxPauseTicks: 60,
  isolateLeaderProbability: 0.01,
};

/**
 * The amnesia case: nodes lose their whole disk and restart empty (a re-provisioned machine, a
 * wrong volume, an operator's rm), alone or while another node is down, under a steady write load.
 * Under the incarnation rule the operator replaces each one (remove, add as learner, promote).
 */
export const AMNESIA_PROFILE: SimProfile = {
  ...DEFAULT_PROFILE,
  name: 'amnesia',
  proposeProbability: 0.5,
  crashProbability: 0.02,
  restartProbability: 0.1,
  maxCrashedNodes: 1,
  // Membership changes only through the replacement procedure: random churn down to two voters
  // plus a wiped one would leave no quorum that the incarnation rule may use, by design.
  confChangeProbability: 0,
  wipeProbability: 0.01,
  replaceProbability: 0.1,
};

/** The profiles the runner knows by name. */
export const PROFILES: Readonly<Record<string, SimProfile>> = {
  default: DEFAULT_PROFILE,
  crashy: CRASHY_PROFILE,
  churn: CHURN_PROFILE,
  figure8: FIGURE8_PROFILE,
  membership: MEMBERSHIP_PROFILE,
  chaos: CHAOS_PROFILE,
  amnesia: AMNESIA_PROFILE,
};
