// Seeds over worker threads: each worker runs whole seeds (a seed is single-threaded and depends
// on its seed alone), taking the next seed as soon as it finishes one, so a slow seed does not
// hold up the others. Results come back in completion order; the caller stops the pool early by
// breaking out of the loop (the first failure, for instance).
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import type { SimNodeResult } from './run.js';

/** At most this many worker threads (each holds a whole module graph, ~60 MB). */
export const MAX_POOL_WORKERS = 16;

/** What every worker of one pool runs with. */
export interface PoolWorkerData {
  chaosSeconds: number;
  nodes?: number;
  plant?: string;
  faultsDuringReplacement?: boolean;
}

/** A message to a worker. */
export type PoolRequest = { kind: 'run'; seed: number } | { kind: 'stop' };
/** A message from a worker. */
export type PoolReply = { kind: 'result'; result: SimNodeResult } | { kind: 'error'; seed: number; message: string };

export interface PoolOptions extends PoolWorkerData {
  /** Seeds `first` .. `first + count - 1`. */
  first: number;
  count: number;
  workers: number;
  /** The worker script; default: seed-worker.js next to this module (the built dist/). */
  workerScript?: string;
}

/** The built worker script next to this module, if there is one (dist/seed-worker.js). */
export function builtWorkerScript(): string | undefined {
  const path = fileURLToPath(new URL('./seed-worker.js', import.meta.url));
  return existsSync(path) ? path : undefined;
}

/**
 * Runs the seeds on `workers` threads and yields each result as it arrives. A seed that throws
 * (a harness error, not a failed check) rejects the iteration.
 */
export async function* runSeedPool(opts: PoolOptions): AsyncGenerator<SimNodeResult> {
  if (!Number.isSafeInteger(opts.workers) || opts.workers < 1 || opts.workers > MAX_POOL_WORKERS) {
    throw new RangeError(`workers must be an integer in 1..${MAX_POOL_WORKERS}, got ${opts.workers}`);
  }
  const script = opts.workerScript ?? builtWorkerScript();
  if (script === undefined) throw new Error('seed-worker.js not found: build the package first (pnpm build)');
  const data: PoolWorkerData = {
    chaosSeconds: opts.chaosSeconds,
    ...(opts.nodes !== undefined ? { nodes: opts.nodes } : {}),
    ...(opts.plant !== undefined ? { plant: opts.plant } : {}),
    ...(opts.faultsDuringReplacement ? { faultsDuringReplacement: true } : {}),
  };
  const workers = Array.from({ length: Math.min(opts.workers, opts.count) }, () => new Worker(script, { workerData: data }));
  const replies: PoolReply[] = [];
  let wake: (() => void) | undefined;
  let crashed: Error | undefined;
  let next = 0;
  const feed = (w: Worker) => {
    if (next < opts.count) w.postMessage({ kind: 'run', seed: opts.first + next++ } satisfies PoolRequest);
  };
  for (const w of workers) {
    w.on('message', (reply: PoolReply) => {
      replies.push(reply);
      feed(w);
      wake?.();
    });
    w.on('error', (e) => {
      crashed ??= e;
      wake?.();
    });
    feed(w);
  }
  try {
    for (let received = 0; received < opts.count; ) {
      if (replies.length === 0 && crashed === undefined) await new Promise<void>((r) => (wake = r));
      wake = undefined;
      if (crashed) throw crashed;
      const reply = replies.shift();
      if (reply === undefined) continue;
      received++;
      if (reply.kind === 'error') throw new Error(`seed ${reply.seed} threw: ${reply.message}`);
      yield reply.result;
    }
  } finally {
    await Promise.all(workers.map((w) => w.terminate()));
  }
}
