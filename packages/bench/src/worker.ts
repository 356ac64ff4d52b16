// A generator process: connects the client library, optionally prefills its share of the keys,
// then runs closed-loop workers until the deadline or a stop message, reporting per-second
// progress and finally a latency histogram. Started by the coordinator with child_process.fork.
import { randomBytes } from 'node:crypto';
import { createDriver, type KvDriver } from './drivers.js';
import { Histogram } from './histogram.js';
import type { FromWorker, OpTrace, ToWorker, WorkerConfig, WorkerResult } from './workload.js';
import { keyOf } from './workload.js';

/** Concurrent puts per process while prefilling. */
const PREFILL_CONCURRENCY = 32;
/** Most operations whose completion times one process keeps for failover analysis. */
const TRACE_MAX_OPS = 4_000_000;
/** Distinct error kinds counted by name; more are counted as "other". */
const ERROR_KINDS_MAX = 32;

function send(m: FromWorker): void {
  process.send?.(m);
}

function errorKind(e: unknown): string {
  if (e && typeof e === 'object') {
    const o = e as { code?: unknown; name?: unknown; constructor?: { name?: string } };
    if (typeof o.code === 'string') return o.code;
    const ctor = o.constructor?.name;
    if (ctor && ctor !== 'Error') return ctor;
    if (typeof o.code === 'number') return `code ${o.code}`;
    if (typeof o.name === 'string') return o.name;
  }
  return 'Error';
}

async function prefill(cfg: WorkerConfig, driver: KvDriver, value: Uint8Array): Promise<{ keys: number; errors: number }> {
  let next = cfg.rank;
  let keys = 0;
  let errors = 0;
  const one = async () => {
    while (next < cfg.keys) {
      const i = next;
      next += cfg.procs;
      try {
        await driver.put(keyOf(cfg.keyPrefix, i), value);
        keys++;
      } catch {
        errors++;
      }
    }
  };
  await Promise.all(Array.from({ length: PREFILL_CONCURRENCY }, one));
  return { keys, errors };
}

class Run {
  readonly histogram = new Histogram();
  okPuts = 0;
  okGets = 0;
  errors = 0;
  readonly errorKinds: Record<string, number> = {};
  tickOk = 0;
  tickErr = 0;
  stopped = false;
  readonly trace: OpTrace | undefined;

  constructor(
    readonly cfg: WorkerConfig,
    readonly driver: KvDriver,
    readonly value: Uint8Array,
    readonly deadline: number,
  ) {
    this.trace = cfg.trace ? { okEpochMs: [], errEpochMs: [] } : undefined;
  }

  private countError(e: unknown): void {
    this.errors++;
    this.tickErr++;
    let kind = errorKind(e);
    if (!(kind in this.errorKinds) && Object.keys(this.errorKinds).length >= ERROR_KINDS_MAX) kind = 'other';
    this.errorKinds[kind] = (this.errorKinds[kind] ?? 0) + 1;
  }

  private traced(list: number[] | undefined, t: number): void {
    if (list && list.length < TRACE_MAX_OPS) list.push(performance.timeOrigin + t);
  }

  async worker(intervalMs: number): Promise<void> {
    const { cfg, driver, value } = this;
    let nextAt = performance.now() + Math.random() * intervalMs;
    while (!this.stopped && performance.now() < this.deadline) {
      if (intervalMs > 0) {
        const wait = nextAt - performance.now();
        if (wait > 0) await new Promise((r) => setTimeout(r, wait));
        nextAt = Math.max(nextAt + intervalMs, performance.now() - intervalMs);
        if (this.stopped || performance.now() >= this.deadline) break;
      }
      const key = keyOf(cfg.keyPrefix, Math.floor(Math.random() * cfg.keys));
      const isGet = cfg.op === 'get' || (cfg.op === 'mixed' && Math.random() < cfg.readRatio);
      const t0 = performance.now();
      try {
        if (isGet) await driver.get(key);
        else if (cfg.op === 'txn') await driver.transfer(key, keyOf(cfg.keyPrefix, otherIndex(key, cfg)), value);
        else await driver.put(key, value);
        const t1 = performance.now();
        this.histogram.recordMs(t1 - t0);
        if (isGet) this.okGets++;
        else this.okPuts++;
        this.tickOk++;
        this.traced(this.trace?.okEpochMs, t1);
      } catch (e) {
        this.countError(e);
        this.traced(this.trace?.errEpochMs, performance.now());
        if (cfg.errorBackoffMs > 0) await new Promise((r) => setTimeout(r, cfg.errorBackoffMs));
      }
    }
  }
}

async function main(): Promise<void> {
  let cfg: WorkerConfig | undefined;
  let driver: KvDriver | undefined;
  let run: Run | undefined;
  const value = new Uint8Array(randomBytes(1));
  let payload = value;
  process.on('message', (m: ToWorker) => {
    void (async () => {
      try {
        if (m.type === 'init') {
          cfg = m.config;
          payload = new Uint8Array(randomBytes(cfg.valueSize));
          driver = await createDriver(cfg);
          send({ type: 'ready' });
        } else if (m.type === 'prefill' && cfg && driver) {
          send({ type: 'prefilled', ...(await prefill(cfg, driver, payload)) });
        } else if (m.type === 'go' && cfg && driver) {
          run = new Run(cfg, driver, payload, performance.now() + m.durationMs);
          send({ type: 'result', result: await execute(run) });
        } else if (m.type === 'stop' && run) {
          run.stopped = true;
        } else if (m.type === 'exit') {
          await Promise.race([driver?.close(), new Promise((r) => setTimeout(r, 1000))]);
          process.exit(0);
        }
      } catch (e) {
        send({ type: 'fatal', message: e instanceof Error ? e.message : String(e) });
        process.exit(1);
      }
    })();
  });
  // Parent gone (killed): do not linger.
  process.on('disconnect', () => process.exit(0));
}

async function execute(run: Run): Promise<WorkerResult> {
  const start = performance.now();
  const ticker = setInterval(() => {
    send({ type: 'tick', ok: run.tickOk, errors: run.tickErr });
    run.tickOk = 0;
    run.tickErr = 0;
  }, 1000);
  const intervalMs = run.cfg.ratePerSec > 0 ? (run.cfg.clients / run.cfg.ratePerSec) * 1000 : 0;
  try {
    await Promise.all(Array.from({ length: run.cfg.clients }, () => run.worker(intervalMs)));
  } finally {
    clearInterval(ticker);
  }
  return {
    histogram: run.histogram.snapshot(),
    okPuts: run.okPuts,
    okGets: run.okGets,
    errors: run.errors,
    errorKinds: run.errorKinds,
    elapsedMs: performance.now() - start,
    trace: run.trace,
  };
}

void main();

/** A key index different from `key`'s (the second account of a transfer); `keys` must be >= 2. */
function otherIndex(key: string, cfg: WorkerConfig): number {
  const i = Number(key.slice(cfg.keyPrefix.length));
  return (i + 1 + Math.floor(Math.random() * (cfg.keys - 1))) % cfg.keys;
}
