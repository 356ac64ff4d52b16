// @quorumkv/testkit: deterministic simulation of the consensus core, and the pieces it is made
// of (seeded PRNG, simulated network, invariant checkers). See docs/simulation.md.
export { Prng, mulberry32, splitmix32, xorshift32 } from './prng.js';
export { Trace, formatEvent, DEFAULT_TRACE_CAPACITY } from './trace.js';
export type { TraceEvent } from './trace.js';
export { SimNetwork, PERFECT_NETWORK, MAX_IN_FLIGHT_MESSAGES, validateFaults } from './sim-network.js';
export type { Addressed, NetworkFaults, NetworkStats } from './sim-network.js';
export { InvariantViolation, LogChain, SafetyChecker, MAX_OPEN_READS } from './invariants.js';
export type { InvariantName, EntryLike } from './invariants.js';
export { KvStateMachine, encodeWrite, decodeWrite, decodeSnapshotData } from './kv-state-machine.js';
export type { SimWrite, KvSnapshotData } from './kv-state-machine.js';
export { entryDigest, chainLink, fnv1a, mixWord, EMPTY_CHAIN } from './hash.js';
export { DEFAULT_PROFILE, CRASHY_PROFILE, CHURN_PROFILE, FIGURE8_PROFILE, MEMBERSHIP_PROFILE, CHAOS_PROFILE, AMNESIA_PROFILE, PROFILES } from './scenario.js';
export type { SimProfile, CoreSettings } from './scenario.js';
export { SimCluster, SimNode, ALL_BUGS, describeMessage } from './sim-cluster.js';
export type { SimBug, ClusterOptions, ClusterStats, Envelope } from './sim-cluster.js';
export { runSeed, runSeeds, expectSeedsPass, seedChunks, replayCommand, describeFailure } from './simulate.js';
export type { SimOptions, SimResult, RunId, BatchOptions, BatchResult } from './simulate.js';
