// Drives the workload: `concurrency` workers, each one Jepsen process at a time, issuing ops
// at a shared target rate until told to stop, recording every invocation and completion.

import type { HistoryRecorder } from './history.js';
import type { Rng } from './random.js';
import type { KvLike, Outcome, PlannedOp, ReadConsistency } from './workloads.js';
import { executeOp } from './workloads.js';

/** Options of {@link runWorkload}. */
export interface WorkloadRunOptions {
  concurrency: number;
  /** Target ops per second over all workers. */
  ratePerSecond: number;
  generator: { next(): PlannedOp };
  /** The client a worker uses, and the node it prefers (recorded as `node`). */
  clientFor(worker: number): { kv: KvLike; node: string };
  recorder: HistoryRecorder;
  rng: Rng;
  /** Current load multiplier (the load-surge fault raises it). */
  rateMultiplier?: () => number;
  /** True when workers must finish their current op and stop. */
  shouldStop(): boolean;
  onOutcome?: (o: Outcome) => void;
  /** Register reads: linearizable (default) or the deliberately unsafe stale mode. */
  reads?: ReadConsistency;
  /** Injectable for tests. */
  sleepMs?: (ms: number) => Promise<void>;
}

/** Longest pause between two ops of one worker, whatever the rate. */
export const WORKER_PAUSE_MS_MAX = 1000;

/**
 * Runs the workers until `shouldStop()`. A worker whose op ends `info` takes a new process id
 * (old + concurrency), as in Jepsen: the old op may still be in flight, and a process has at
 * most one open op.
 */
export async function runWorkload(o: WorkloadRunOptions): Promise<void> {
  if (!(o.concurrency >= 1 && o.ratePerSecond > 0)) throw new RangeError('concurrency must be >= 1 and ratePerSecond > 0');
  const sleep = o.sleepMs ?? ((ms: number) => new Promise<void>((r) => setTimeout(r, ms)));
  const worker = async (w: number): Promise<void> => {
    let process = w;
    const { kv, node } = o.clientFor(w);
    while (!o.shouldStop()) {
      const meanMs = (1000 * o.concurrency) / (o.ratePerSecond * (o.rateMultiplier?.() ?? 1));
      await sleep(Math.min(WORKER_PAUSE_MS_MAX, -Math.log(1 - o.rng.next()) * meanMs));
      if (o.shouldStop()) break;
      const op = o.generator.next();
      const inv = o.recorder.invoke(process, op.f, op.value, node);
      const out = await executeOp(kv, op, o.reads);
      o.recorder.complete(inv, out.type, out.value, {
        ...(out.error === undefined ? {} : { error: out.error }),
        ...(out.term === undefined ? {} : { term: out.term }),
      });
      o.onOutcome?.(out);
      if (out.type === 'info') process += o.concurrency;
    }
  };
  await Promise.all(Array.from({ length: o.concurrency }, (_, w) => worker(w)));
}
