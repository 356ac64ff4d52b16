// The coordinator side of the generator: forks P generator processes, sets them going together,
// shows progress, samples CPU of the nodes and the generators, and merges their histograms.
import { fork, type ChildProcess } from 'node:child_process';
import { cpus } from 'node:os';
import { fileURLToPath } from 'node:url';
import { cpuBetween, sampleCpu, type CpuUsage } from './cpu.js';
import { Histogram, type LatencySummary } from './histogram.js';
import type { ServerCounters } from './cluster.js';
import { track } from './procs.js';
import type { FromWorker, OpTrace, ToWorker, WorkerConfig, WorkerResult } from './workload.js';
import { clientsForRank } from './workload.js';

/** Most generator processes. */
export const PROCS_MAX = 16;
/** Longest wait for a generator to connect, and for prefill, in ms. */
const WORKER_START_TIMEOUT_MS = 15_000;
const PREFILL_TIMEOUT_MS = 300_000;
/** Grace after the deadline for in-flight operations to finish (op timeout is added). */
const FINISH_GRACE_MS = 5_000;

/** What the coordinator needs to run a load. */
export interface LoadPlan {
  /** Workload, with `clients` the TOTAL over all processes. */
  config: WorkerConfig;
  procs: number;
  durationMs: number;
  /** Named node processes whose CPU is reported (name → pid at start). */
  nodePids: () => Map<string, number>;
  /** Print per-second progress to stderr. */
  progress: boolean;
  /** Label in progress lines. */
  label: string;
  /** Seconds between progress lines (default 1). */
  progressEverySec?: number;
  /** Server counters sampled at the start and end of the measurement (absent with --endpoints). */
  serverCounters?: () => Promise<ServerCounters>;
  /** Called once the load is running, with a function that ends it early (failover, soak). */
  onRunning?: (stop: () => void) => void;
}

/** The merged result of all generator processes. */
export interface LoadResult {
  seconds: number;
  ops: number;
  opsPerSec: number;
  okPuts: number;
  okGets: number;
  latency: LatencySummary;
  errors: number;
  errorKinds: Record<string, number>;
  /** % of one core: each node, `generator` (all generator processes), `coordinator`. */
  cpu: CpuUsage & { nodesSumPct: number | null; generatorPct: number | null };
  prefill: { keys: number; errors: number; seconds: number } | undefined;
  /** Per member over the measurement: fsyncs/s, mean fsync ms, mean entries per append batch. */
  server: Record<string, ServerRates> | undefined;
  trace: OpTrace | undefined;
}

/** Server-side rates of one member over the measurement window. */
export interface ServerRates {
  fsyncsPerSec: number | null;
  fsyncMeanMs: number | null;
  /** quorumkv only: entries per log append batch. */
  batchMeanEntries: number | null;
}

/** Rates from two counter samples taken `seconds` apart (pure). */
export function serverRates(a: ServerCounters, b: ServerCounters, seconds: number): Record<string, ServerRates> {
  const out: Record<string, ServerRates> = {};
  const round = (x: number) => Math.round(x * 1000) / 1000;
  for (const [name, after] of Object.entries(b)) {
    const before = a[name] ?? {};
    const d = (k: string) => {
      const x = after[k];
      const y = before[k];
      return x === null || x === undefined || y === null || y === undefined ? null : x - y;
    };
    const fsyncs = d('fsyncCount');
    const fsyncSum = d('fsyncSum');
    const batches = d('batchCount');
    const entries = d('batchSum');
    out[name] = {
      fsyncsPerSec: fsyncs === null ? null : round(fsyncs / seconds),
      fsyncMeanMs: fsyncs && fsyncSum !== null ? round((fsyncSum / fsyncs) * 1000) : null,
      batchMeanEntries: batches && entries !== null ? round(entries / batches) : null,
    };
  }
  return out;
}

class WorkerHandle {
  private readonly waiters = new Map<FromWorker['type'], (m: FromWorker) => void>();
  private failure: Error | undefined;
  onTick: (ok: number, errors: number) => void = () => undefined;

  constructor(readonly child: ChildProcess) {
    child.on('message', (m: FromWorker) => {
      if (m.type === 'tick') return this.onTick(m.ok, m.errors);
      if (m.type === 'fatal') return this.fail(new Error(`generator ${child.pid ?? '?'}: ${m.message}`));
      const w = this.waiters.get(m.type);
      this.waiters.delete(m.type);
      w?.(m);
    });
    child.on('exit', (code, signal) => {
      if (code !== 0) this.fail(new Error(`generator ${child.pid ?? '?'} exited (${signal ?? code})`));
    });
  }

  private fail(e: Error): void {
    this.failure ??= e;
    for (const w of this.waiters.values()) w({ type: 'fatal', message: e.message });
    this.waiters.clear();
  }

  send(m: ToWorker): void {
    if (this.child.connected) this.child.send(m);
  }

  async expect<T extends FromWorker['type']>(type: T, timeoutMs: number): Promise<Extract<FromWorker, { type: T }>> {
    if (this.failure) throw this.failure;
    const m = await new Promise<FromWorker>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`generator ${this.child.pid ?? '?'}: no '${type}' within ${timeoutMs} ms`)), timeoutMs);
      this.waiters.set(type, (x) => {
        clearTimeout(timer);
        resolve(x);
      });
    });
    if (m.type === 'fatal') throw new Error(m.message);
    return m as Extract<FromWorker, { type: T }>;
  }
}

function spawnWorkers(plan: LoadPlan): WorkerHandle[] {
  const script = fileURLToPath(new URL('./worker.js', import.meta.url));
  return Array.from({ length: plan.procs }, () =>
    new WorkerHandle(track(fork(script, [], { serialization: 'advanced', stdio: ['ignore', 'inherit', 'inherit', 'ipc'] }))),
  );
}

function mergeTraces(parts: WorkerResult[]): OpTrace | undefined {
  if (!parts.some((p) => p.trace)) return undefined;
  const okEpochMs = parts.flatMap((p) => p.trace?.okEpochMs ?? []).sort((a, b) => a - b);
  const errEpochMs = parts.flatMap((p) => p.trace?.errEpochMs ?? []).sort((a, b) => a - b);
  return { okEpochMs, errEpochMs };
}

/** Runs the load described by `plan` and returns the merged result. Kills its generators at the end. */
export async function runLoad(plan: LoadPlan): Promise<LoadResult> {
  if (!(plan.procs >= 1 && plan.procs <= PROCS_MAX)) throw new Error(`--procs must be 1..${PROCS_MAX}`);
  const workers = spawnWorkers(plan);
  try {
    await Promise.all(
      workers.map((w, rank) => {
        const config: WorkerConfig = {
          ...plan.config,
          rank,
          procs: plan.procs,
          clients: clientsForRank(plan.config.clients, plan.procs, rank),
          ratePerSec: plan.config.ratePerSec / plan.procs,
        };
        w.send({ type: 'init', config });
        return w.expect('ready', WORKER_START_TIMEOUT_MS);
      }),
    );
    const prefill = plan.config.prefill ? await runPrefill(workers, plan) : undefined;
    return { ...(await measure(workers, plan)), prefill };
  } finally {
    for (const w of workers) w.send({ type: 'exit' });
    await Promise.race([Promise.all(workers.map((w) => new Promise((r) => (w.child.exitCode !== null ? r(0) : w.child.once('exit', r))))), sleepMs(2000)]);
    for (const w of workers) if (w.child.exitCode === null) w.child.kill('SIGKILL');
  }
}

function sleepMs(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

async function runPrefill(workers: WorkerHandle[], plan: LoadPlan): Promise<{ keys: number; errors: number; seconds: number }> {
  const t0 = performance.now();
  if (plan.progress) process.stderr.write(`[${plan.label}] prefilling ${plan.config.keys} keys…\n`);
  const done = await Promise.all(
    workers.map((w) => {
      w.send({ type: 'prefill' });
      return w.expect('prefilled', PREFILL_TIMEOUT_MS);
    }),
  );
  return {
    keys: done.reduce((s, d) => s + d.keys, 0),
    errors: done.reduce((s, d) => s + d.errors, 0),
    seconds: Math.round((performance.now() - t0) / 10) / 100,
  };
}

async function measure(workers: WorkerHandle[], plan: LoadPlan): Promise<Omit<LoadResult, 'prefill'>> {
  let tickOk = 0;
  let tickErr = 0;
  let ticks = 0;
  for (const w of workers) {
    w.onTick = (ok, err) => {
      tickOk += ok;
      tickErr += err;
      const every = (plan.progressEverySec ?? 1) * workers.length;
      if (++ticks % every === 0) {
        const t = Math.round((performance.now() - started) / 1000);
        const per = plan.progressEverySec ?? 1;
        if (plan.progress) process.stderr.write(`[${plan.label}] t=${t}s ok/s=${Math.round(tickOk / per)} err/s=${Math.round(tickErr / per)}\n`);
        tickOk = 0;
        tickErr = 0;
      }
    };
  }
  const pids = new Map(plan.nodePids());
  workers.forEach((w, i) => w.child.pid !== undefined && pids.set(`gen${i + 1}`, w.child.pid));
  pids.set('coordinator', process.pid);
  const countersBefore = await plan.serverCounters?.();
  const before = sampleCpu(pids);
  const started = performance.now();
  const results = workers.map((w) => {
    w.send({ type: 'go', durationMs: plan.durationMs });
    return w.expect('result', plan.durationMs + plan.config.opTimeoutMs + FINISH_GRACE_MS);
  });
  plan.onRunning?.(() => workers.forEach((w) => w.send({ type: 'stop' })));
  const parts = (await Promise.all(results)).map((m) => m.result);
  const after = sampleCpu(pids);
  const countersAfter = await plan.serverCounters?.();
  const hist = new Histogram();
  const errorKinds: Record<string, number> = {};
  for (const p of parts) {
    hist.merge(p.histogram);
    for (const [k, v] of Object.entries(p.errorKinds)) errorKinds[k] = (errorKinds[k] ?? 0) + v;
  }
  const seconds = Math.max(...parts.map((p) => p.elapsedMs)) / 1000;
  const cpu = cpuBetween(before, after, cpus().length);
  return {
    seconds: Math.round(seconds * 1000) / 1000,
    ops: hist.total,
    opsPerSec: Math.round((hist.total / seconds) * 10) / 10,
    okPuts: parts.reduce((s, p) => s + p.okPuts, 0),
    okGets: parts.reduce((s, p) => s + p.okGets, 0),
    latency: hist.summary(),
    errors: parts.reduce((s, p) => s + p.errors, 0),
    errorKinds,
    cpu: { ...cpu, nodesSumPct: sumNamed(cpu, (n) => !n.startsWith('gen') && n !== 'coordinator'), generatorPct: sumNamed(cpu, (n) => n.startsWith('gen')) },
    server: countersBefore && countersAfter ? serverRates(countersBefore, countersAfter, (after.atMs - before.atMs) / 1000) : undefined,
    trace: mergeTraces(parts),
  };
}

function sumNamed(cpu: CpuUsage, pick: (name: string) => boolean): number | null {
  let sum = 0;
  let any = false;
  for (const [name, v] of Object.entries(cpu.byName)) {
    if (!pick(name) || v === null) continue;
    sum += v;
    any = true;
  }
  return any ? Math.round(sum * 10) / 10 : null;
}
