// Command-line options of `bench run|compare|failover`, parsed and validated once (pure).
import { parseArgs } from 'node:util';
import type { TargetName } from './cluster.js';
import type { BenchConsistency } from './drivers.js';
import type { BenchOp } from './workload.js';

/** A bad flag or value; the CLI prints the message and the usage. */
export class UsageError extends Error {
  readonly code = 'QKV_BENCH_USAGE';
}

/** Options of `bench run` (also the workload part of compare and failover). */
export interface RunOptions {
  target: TargetName;
  clients: number;
  seconds: number;
  valueSize: number;
  keys: number;
  op: BenchOp;
  readRatio: number;
  consistency: BenchConsistency;
  procs: number;
  json: boolean;
  /** Use a running cluster instead of starting one (no node CPU then). */
  endpoints: string[] | undefined;
  opTimeoutMs: number;
  errorBackoffMs: number;
  etcdRetry: boolean;
  /** Operations per second in total, 0 = closed loop without a limit. */
  rate: number;
  prefill: boolean;
  keepData: boolean;
  serverCli: string | undefined;
  etcdBin: string | undefined;
  /** Extra flags for every quorumkv node / etcd member. */
  serverArgs: string[];
  etcdArgs: string[];
  /** Flags for `node` running each quorumkv node (profiling). */
  nodeArgs: string[];
  quiet: boolean;
  /** quorumkv only: TLS on every link (`--tls`): dev certificates, clients over wss. */
  tls: boolean;
}

/** Options of `bench compare`. */
export interface CompareOptions extends RunOptions {
  reps: number;
  /** Workloads to compare; default the targets. */
  workloads: string[];
}

/** Options of `bench failover` (and its `--soak` mode). */
export interface FailoverOptions extends RunOptions {
  rounds: number;
  /** Seconds between the kill and the restart of the killed leader. */
  restartAfterSeconds: number;
  /** Seconds the load runs before the first kill. */
  warmupSeconds: number;
  /** Seconds of steady load after the restarted member has caught up, before the next kill. */
  settleSeconds: number;
  soak: boolean;
  minutes: number;
  /** Soak load as a fraction of measured peak when --rate is not given. */
  peakFraction: number;
}

const LIMITS = {
  clients: [1, 10_000],
  seconds: [1, 3600],
  valueSize: [0, 1024 * 1024],
  keys: [1, 10_000_000],
  procs: [1, 16],
  opTimeoutMs: [1, 600_000],
  errorBackoffMs: [0, 60_000],
  rate: [0, 10_000_000],
  reps: [1, 20],
  rounds: [1, 100],
  restartAfterSeconds: [0, 600],
  warmupSeconds: [0, 600],
  settleSeconds: [0, 600],
  minutes: [0.1, 24 * 60],
} as const;

const FLAGS = {
  target: { type: 'string' },
  clients: { type: 'string' },
  seconds: { type: 'string' },
  'value-size': { type: 'string' },
  keys: { type: 'string' },
  op: { type: 'string' },
  'read-ratio': { type: 'string' },
  consistency: { type: 'string' },
  procs: { type: 'string' },
  json: { type: 'boolean' },
  endpoints: { type: 'string' },
  'op-timeout': { type: 'string' },
  'error-backoff': { type: 'string' },
  'etcd-retry': { type: 'boolean' },
  rate: { type: 'string' },
  'no-prefill': { type: 'boolean' },
  'keep-data': { type: 'boolean' },
  'server-cli': { type: 'string' },
  'etcd-bin': { type: 'string' },
  'server-args': { type: 'string' },
  'etcd-args': { type: 'string' },
  'node-args': { type: 'string' },
  quiet: { type: 'boolean' },
  tls: { type: 'boolean' },
  reps: { type: 'string' },
  workloads: { type: 'string' },
  rounds: { type: 'string' },
  'restart-after': { type: 'string' },
  warmup: { type: 'string' },
  settle: { type: 'string' },
  soak: { type: 'boolean' },
  minutes: { type: 'string' },
  'peak-fraction': { type: 'string' },
} as const;

type Values = ReturnType<typeof parseArgs<{ options: typeof FLAGS; strict: true; allowPositionals: false }>>['values'];

function numberFlag(values: Values, flag: keyof typeof FLAGS, limit: keyof typeof LIMITS, dflt: number, integer = true): number {
  const raw = values[flag];
  if (raw === undefined) return dflt;
  const v = Number(raw);
  const [lo, hi] = LIMITS[limit];
  if (!Number.isFinite(v) || v < lo || v > hi || (integer && !Number.isInteger(v))) {
    throw new UsageError(`--${flag} must be ${integer ? 'an integer' : 'a number'} in [${lo}, ${hi}], got ${String(raw)}`);
  }
  return v;
}

function oneOf<T extends string>(flag: string, v: string | undefined, allowed: readonly T[], dflt: T): T {
  if (v === undefined) return dflt;
  if (!(allowed as readonly string[]).includes(v)) throw new UsageError(`--${flag} must be one of ${allowed.join('|')}, got ${v}`);
  return v as T;
}

function parse(argv: string[]): Values {
  try {
    return parseArgs({ args: argv, options: FLAGS, strict: true, allowPositionals: false }).values;
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
}

function words(v: string | undefined): string[] {
  return v === undefined ? [] : v.split(/\s+/).filter((w) => w.length > 0);
}

function runFrom(values: Values, defaults: Partial<RunOptions>): RunOptions {
  const op = oneOf('op', values.op, ['put', 'get', 'mixed', 'txn'] as const, defaults.op ?? 'put');
  const readRatio = numberFlag(values, 'read-ratio', 'rate', 0.5, false);
  if (readRatio > 1) throw new UsageError('--read-ratio must be in [0, 1]');
  const endpoints = values.endpoints === undefined ? undefined : values.endpoints.split(',').map((e) => e.trim()).filter(Boolean);
  if (endpoints !== undefined && endpoints.length === 0) throw new UsageError('--endpoints needs at least one host:port');
  const keys = numberFlag(values, 'keys', 'keys', 10_000);
  if (op === 'txn' && keys < 2) throw new UsageError('--op txn needs --keys of at least 2 (a transfer moves between two keys)');
  return {
    target: oneOf('target', values.target, ['quorumkv', 'etcd'] as const, defaults.target ?? 'quorumkv'),
    clients: numberFlag(values, 'clients', 'clients', defaults.clients ?? 64),
    seconds: numberFlag(values, 'seconds', 'seconds', defaults.seconds ?? 10, false),
    valueSize: numberFlag(values, 'value-size', 'valueSize', 256),
    keys,
    op,
    readRatio,
    consistency: oneOf('consistency', values.consistency, ['linearizable', 'stale'] as const, 'linearizable'),
    procs: numberFlag(values, 'procs', 'procs', 1),
    json: values.json ?? false,
    endpoints,
    opTimeoutMs: numberFlag(values, 'op-timeout', 'opTimeoutMs', defaults.opTimeoutMs ?? 5000),
    errorBackoffMs: numberFlag(values, 'error-backoff', 'errorBackoffMs', defaults.errorBackoffMs ?? 0),
    etcdRetry: values['etcd-retry'] ?? false,
    rate: numberFlag(values, 'rate', 'rate', 0, false),
    prefill: !(values['no-prefill'] ?? false) && op !== 'put',
    keepData: values['keep-data'] ?? false,
    serverCli: values['server-cli'],
    etcdBin: values['etcd-bin'],
    serverArgs: words(values['server-args']),
    etcdArgs: words(values['etcd-args']),
    nodeArgs: words(values['node-args']),
    quiet: values.quiet ?? false,
    tls: values.tls ?? false,
  };
}

/** Parses `bench run` flags. */
export function parseRunOptions(argv: string[]): RunOptions {
  return runFrom(parse(argv), {});
}

/** The workloads `compare` runs by default: the targets. */
export const DEFAULT_COMPARE_WORKLOADS = ['put', 'get'];

/** Parses `bench compare` flags. */
export function parseCompareOptions(argv: string[]): CompareOptions {
  const values = parse(argv);
  const workloads = values.workloads === undefined ? DEFAULT_COMPARE_WORKLOADS : values.workloads.split(',').map((w) => w.trim());
  for (const w of workloads) if (!['put', 'get', 'mixed', 'txn'].includes(w)) throw new UsageError(`--workloads: unknown workload ${w} (put, get, mixed, txn)`);
  if (values.endpoints !== undefined) throw new UsageError('compare starts its own clusters; --endpoints is not supported');
  return { ...runFrom(values, {}), reps: numberFlag(values, 'reps', 'reps', 2), workloads };
}

/** Parses `bench failover` flags. */
export function parseFailoverOptions(argv: string[]): FailoverOptions {
  const values = parse(argv);
  if (values.endpoints !== undefined) throw new UsageError('failover kills and restarts its own cluster; --endpoints is not supported');
  const soak = values.soak ?? false;
  const run = runFrom(values, { clients: soak ? 64 : 16, opTimeoutMs: 1000, errorBackoffMs: 10 });
  const peakFraction = numberFlag(values, 'peak-fraction', 'rate', 0.8, false);
  if (peakFraction > 1) throw new UsageError('--peak-fraction must be in (0, 1]');
  return {
    ...run,
    prefill: false,
    rounds: numberFlag(values, 'rounds', 'rounds', 10),
    restartAfterSeconds: numberFlag(values, 'restart-after', 'restartAfterSeconds', 3, false),
    warmupSeconds: numberFlag(values, 'warmup', 'warmupSeconds', 3, false),
    settleSeconds: numberFlag(values, 'settle', 'settleSeconds', 2, false),
    soak,
    minutes: numberFlag(values, 'minutes', 'minutes', 10, false),
    peakFraction,
  };
}
