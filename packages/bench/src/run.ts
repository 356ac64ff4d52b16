// `bench run`: one workload against one target, on a fresh local cluster unless --endpoints.
import { cpus, loadavg } from 'node:os';
import { defaultServerCli, startCluster, type LocalCluster, type Programs } from './cluster.js';
import { runLoad, type LoadPlan, type LoadResult } from './load.js';
import type { RunOptions } from './options.js';
import type { WorkerConfig } from './workload.js';

/** Seconds a cluster may take to elect its first leader. */
const CLUSTER_START_TIMEOUT_MS = 30_000;

/** One measured run, as printed by `--json`. */
export interface RunResult extends Omit<LoadResult, 'trace'> {
  target: RunOptions['target'];
  op: RunOptions['op'];
  consistency: RunOptions['consistency'] | undefined;
  clients: number;
  procs: number;
  valueSize: number;
  keys: number;
  rate: number;
  startedAt: string;
  host: { cores: number; node: string; loadAvg1m: number };
}

/** The program paths from options. */
export function programsOf(o: RunOptions): Programs {
  return { serverCli: o.serverCli ?? defaultServerCli(), etcdBin: o.etcdBin };
}

/** Starts a fresh local cluster of `o.target` with its per-target extra flags. */
export function startTargetCluster(o: RunOptions): Promise<LocalCluster> {
  return startCluster(o.target, programsOf(o), {
    keepData: o.keepData,
    extraArgs: o.target === 'quorumkv' ? o.serverArgs : o.etcdArgs,
    nodeArgs: o.nodeArgs,
    startTimeoutMs: CLUSTER_START_TIMEOUT_MS,
    tls: o.tls,
  });
}

/** The generator configuration for `o` (clients = total). */
export function workerConfigOf(o: RunOptions, endpoints: string[], trace: boolean, tlsCaFile?: string): WorkerConfig {
  return {
    tlsCaFile,
    target: o.target,
    endpoints,
    consistency: o.consistency,
    opTimeoutMs: o.opTimeoutMs,
    etcdRetry: o.etcdRetry,
    op: o.op,
    readRatio: o.readRatio,
    clients: o.clients,
    keys: o.keys,
    keyPrefix: 'bench/',
    valueSize: o.valueSize,
    rank: 0,
    procs: o.procs,
    prefill: o.prefill,
    ratePerSec: o.rate,
    trace,
    errorBackoffMs: o.errorBackoffMs,
  };
}

/** Name → pid of the live members of a cluster. */
export function memberPids(c: LocalCluster | undefined): Map<string, number> {
  const m = new Map<string, number>();
  for (const x of c?.members ?? []) {
    const pid = x.pid();
    if (pid !== undefined) m.set(x.name, pid);
  }
  return m;
}

/** Wraps a load result with what was run and where. */
export function describe(o: RunOptions, r: LoadResult, startedAt: Date): RunResult {
  const { trace: _trace, ...rest } = r;
  return {
    target: o.target,
    op: o.op,
    consistency: o.op === 'put' ? undefined : o.consistency,
    clients: o.clients,
    procs: o.procs,
    valueSize: o.valueSize,
    keys: o.keys,
    rate: o.rate,
    startedAt: startedAt.toISOString(),
    host: { cores: cpus().length, node: process.version, loadAvg1m: Math.round((loadavg()[0] ?? 0) * 100) / 100 },
    ...rest,
  };
}

/** Runs one workload: fresh cluster (unless endpoints are given), load, stop. */
export async function runBenchmark(o: RunOptions, label: string = o.target): Promise<RunResult> {
  const startedAt = new Date();
  const cluster = o.endpoints ? undefined : await startTargetCluster(o);
  try {
    const endpoints = o.endpoints ?? cluster!.endpoints;
    const plan: LoadPlan = {
      config: workerConfigOf(o, endpoints, false, cluster?.tlsCaFile),
      procs: o.procs,
      durationMs: o.seconds * 1000,
      nodePids: () => memberPids(cluster),
      progress: !o.quiet,
      label,
      ...(cluster ? { serverCounters: () => cluster.serverCounters() } : {}),
    };
    if (!o.quiet) process.stderr.write(`[${label}] ${o.op} clients=${o.clients} procs=${o.procs} ${o.seconds}s on ${endpoints.join(',')}\n`);
    return describe(o, await runLoad(plan), startedAt);
  } finally {
    await cluster?.stop();
  }
}
