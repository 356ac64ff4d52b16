// The fuzz runner: one seeded fast-check run of one surface against an in-process target.
//
// Invariants checked for every surface:
//   - feeding an input never throws anything but a FuzzViolation-free outcome: a target turns an
//     uncaught exception, a wrong error type or a misread into a FuzzViolation;
//   - every CONTROL_EVERY inputs (and after the last) the target still answers a control request;
//   - memory stays bounded: heap growth after a GC at the end, against a baseline taken after a
//     warm-up, stays under HEAP_GROWTH_MAX_BYTES (RSS is reported, and bounded by RSS_GROWTH_MAX_BYTES).
// A failure prints the surface, seed, counterexample path, the (shrunk) input and the command
// that replays exactly it.
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import fc from 'fast-check';

/** A broken invariant: what the fuzzers exist to find. */
export class FuzzViolation extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'FuzzViolation';
  }
}

/** What an input did: the target accepted it, or refused it the documented way. */
export type Outcome = 'accepted' | 'refused';

/** An in-process system under test. */
export interface FuzzTarget<I> {
  /** Feeds one input. Throws {@link FuzzViolation} when an invariant breaks. */
  feed(input: I): Outcome | Promise<Outcome>;
  /** Asks what a healthy target always answers; throws FuzzViolation if it does not. */
  control(): void | Promise<void>;
  close(): Promise<void>;
}

/** One fuzzed surface: a generator and a way to open its target. */
export interface Surface<I> {
  readonly name: string;
  readonly description: string;
  arbitrary(): fc.Arbitrary<I>;
  open(): Promise<FuzzTarget<I>>;
  /** A printable form of an input, for failure reports. */
  show(input: I): string;
}

/** Inputs between two control requests. */
export const CONTROL_EVERY = 1000;
/** Inputs fed before the memory baseline is taken (caches, JIT, pools fill up first). */
const WARMUP_INPUTS = 500;
/** Most heap growth (after GC) over a whole run that still counts as bounded. */
export const HEAP_GROWTH_MAX_BYTES = 64 * 1024 * 1024;
/** Most RSS growth over a whole run that still counts as bounded (RSS is noisy; generous). */
export const RSS_GROWTH_MAX_BYTES = 256 * 1024 * 1024;

export interface FuzzOptions {
  count: number;
  seed: number;
  /** A counterexample path from an earlier failure: replays that input only. */
  path?: string;
  /** Called with progress lines (the CLI prints them). */
  progress?: (line: string) => void;
}

export interface FuzzReport {
  surface: string;
  seed: number;
  inputs: number;
  accepted: number;
  refused: number;
  elapsedMs: number;
  heapGrowthBytes: number;
  rssGrowthBytes: number;
  /** Set when an invariant broke: the report to print (seed, input, replay command). */
  failure?: string;
}

let gcFn: (() => void) | undefined;
/** A full GC, so heap numbers compare live data (enabled at run time; no flag needed). */
function collect(): void {
  if (!gcFn) {
    setFlagsFromString('--expose-gc');
    gcFn = runInNewContext('gc') as () => void;
  }
  gcFn();
}

/** Runs `count` inputs of `surface` from `seed`. Never throws for a violation: it is in the report. */
export async function runFuzz<I>(surface: Surface<I>, opts: FuzzOptions): Promise<FuzzReport> {
  const target = await surface.open();
  const started = Date.now();
  const tally = { inputs: 0, accepted: 0, refused: 0 };
  let baseline: { heap: number; rss: number } | undefined;
  try {
    const property = fc.asyncProperty(surface.arbitrary(), async (input) => {
      const outcome = await target.feed(input);
      tally.inputs++;
      tally[outcome]++;
      if (tally.inputs % CONTROL_EVERY === 0) {
        await target.control();
        opts.progress?.(`${surface.name}: ${tally.inputs} inputs (${tally.refused} refused) in ${Date.now() - started} ms`);
      }
      if (tally.inputs === WARMUP_INPUTS) {
        collect();
        baseline = { heap: process.memoryUsage().heapUsed, rss: process.memoryUsage().rss };
      }
    });
    const result = await fc.check(property, { seed: opts.seed, numRuns: opts.count, ...(opts.path ? { path: opts.path } : {}), endOnFailure: false });
    if (result.failed) return { surface: surface.name, seed: opts.seed, ...tally, elapsedMs: Date.now() - started, heapGrowthBytes: 0, rssGrowthBytes: 0, failure: failureText(surface, opts, result) };
    await target.control();
    collect();
    const mem = process.memoryUsage();
    const heapGrowthBytes = baseline ? mem.heapUsed - baseline.heap : 0;
    const rssGrowthBytes = baseline ? mem.rss - baseline.rss : 0;
    const report: FuzzReport = { surface: surface.name, seed: opts.seed, ...tally, elapsedMs: Date.now() - started, heapGrowthBytes, rssGrowthBytes };
    if (heapGrowthBytes > HEAP_GROWTH_MAX_BYTES || rssGrowthBytes > RSS_GROWTH_MAX_BYTES) {
      report.failure = `${surface.name}: memory grew by ${mib(heapGrowthBytes)} heap / ${mib(rssGrowthBytes)} RSS over ${tally.inputs} inputs (limits ${mib(HEAP_GROWTH_MAX_BYTES)} / ${mib(RSS_GROWTH_MAX_BYTES)}); replay: ${replayCommand(surface.name, opts.seed, opts.count)}`;
    }
    return report;
  } finally {
    await target.close();
  }
}

function failureText<I>(surface: Surface<I>, opts: FuzzOptions, r: fc.RunDetails<[I]>): string {
  const input = r.counterexample ? surface.show(r.counterexample[0]) : '(none)';
  const err = r.errorInstance instanceof Error ? (r.errorInstance.stack ?? r.errorInstance.message) : String(r.errorInstance);
  return [
    `fuzz ${surface.name} FAILED after ${r.numRuns} inputs (seed ${r.seed}, path ${r.counterexamplePath ?? '-'})`,
    `input: ${input}`,
    `error: ${err}`,
    `replay: ${replayCommand(surface.name, r.seed, opts.count, r.counterexamplePath ?? undefined)}`,
  ].join('\n');
}

/** The command that replays a run (or, with `path`, one input of it). */
export function replayCommand(surface: string, seed: number, count: number, path?: string): string {
  return `pnpm fuzz --surface ${surface} --seed ${seed} --count ${count}${path ? ` --path ${path}` : ''}`;
}

function mib(n: number): string {
  return `${(n / 1024 / 1024).toFixed(1)} MiB`;
}

/** Runs `fn`; an exception is a violation unless `allowed` says it is the documented refusal. */
export async function expectTyped(what: string, fn: () => unknown, allowed: (e: unknown) => boolean): Promise<Outcome> {
  try {
    await fn();
    return 'accepted';
  } catch (e) {
    if (e instanceof FuzzViolation) throw e;
    if (allowed(e)) return 'refused';
    throw new FuzzViolation(`${what} threw an untyped error: ${(e as Error)?.stack ?? String(e)}`, { cause: e });
  }
}
