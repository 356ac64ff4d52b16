// The workload description shared by the coordinator and its generator processes, and the
// messages they exchange over the fork IPC channel.
import type { TargetName } from './cluster.js';
import type { BenchConsistency } from './drivers.js';
import type { HistogramSnapshot } from './histogram.js';

/**
 * Operations the generator issues. `txn`: a two-key transfer as one transaction — both keys
 * compared (version > 0, so they must exist: the keys are prefilled) and both written — counted
 * with the puts (one op per transaction).
 */
export type BenchOp = 'put' | 'get' | 'mixed' | 'txn';

/** What every generator process is told at start. */
export interface WorkerConfig {
  target: TargetName;
  endpoints: string[];
  consistency: BenchConsistency;
  opTimeoutMs: number;
  etcdRetry: boolean;
  op: BenchOp;
  /** Fraction of gets in a mixed workload, 0..1. */
  readRatio: number;
  /** Closed-loop workers in THIS process. */
  clients: number;
  /** Keyspace size; keys are `${keyPrefix}` + 10-digit index, chosen uniformly. */
  keys: number;
  keyPrefix: string;
  valueSize: number;
  /** This process's rank among `procs`; it prefills keys with index ≡ rank (mod procs). */
  rank: number;
  procs: number;
  /** Write every key of this process's share once before the measurement. */
  prefill: boolean;
  /** Operations per second for THIS process (0 = unlimited, closed loop). */
  ratePerSec: number;
  /** Record the completion time of every operation (failover analysis). */
  trace: boolean;
  /** Pause after a failed operation, in ms (0 = none). */
  errorBackoffMs: number;
  /** quorumkv over TLS: the CA file the client trusts (wss). */
  tlsCaFile?: string | undefined;
}

/** Coordinator → generator. */
export type ToWorker =
  | { type: 'init'; config: WorkerConfig }
  | { type: 'prefill' }
  | { type: 'go'; durationMs: number }
  | { type: 'stop' }
  | { type: 'exit' };

/** Completion times of operations, epoch ms (failover analysis). */
export interface OpTrace {
  okEpochMs: number[];
  errEpochMs: number[];
}

/** The result of one generator process. */
export interface WorkerResult {
  histogram: HistogramSnapshot;
  okPuts: number;
  okGets: number;
  errors: number;
  errorKinds: Record<string, number>;
  elapsedMs: number;
  trace: OpTrace | undefined;
}

/** Generator → coordinator. */
export type FromWorker =
  | { type: 'ready' }
  | { type: 'prefilled'; keys: number; errors: number }
  | { type: 'tick'; ok: number; errors: number }
  | { type: 'result'; result: WorkerResult }
  | { type: 'fatal'; message: string };

/** The key of index `i` (pure). */
export function keyOf(prefix: string, i: number): string {
  return prefix + String(i).padStart(10, '0');
}

/** Closed-loop workers a process of rank `rank` runs when `clients` are split over `procs` (pure). */
export function clientsForRank(clients: number, procs: number, rank: number): number {
  return Math.floor(clients / procs) + (rank < clients % procs ? 1 : 0);
}
