#!/usr/bin/env node
// The simulation runner: `node packages/testkit/dist/sim-cli.js --seeds N --seed S [--nodes 3|5]
// [--steps K] [--bug <planted>] [--profile <name>] [--verbose]`. Runs seeds S..S+N-1, prints
// progress and totals, and on the first failure prints the seed, the invariant, the end of the
// trace and one command that replays exactly that run, then exits 1.
import { parseArgs } from 'node:util';
import { ALL_BUGS } from './sim-cluster.js';
import type { SimBug } from './sim-cluster.js';
import { PROFILES } from './scenario.js';
import { describeFailure, runSeeds } from './simulate.js';

/** Parsed command line. */
export interface CliOptions {
  seeds: number;
  seed: number;
  nodes: number;
  steps: number;
  bug: SimBug | undefined;
  profile: string;
  verbose: boolean;
  /** Keep going after a failure (used to count how often a planted bug is caught). */
  keepGoing: boolean;
}

const USAGE = `usage: pnpm sim [--seeds N] [--seed S] [--nodes 3|5] [--steps K] [--bug ${ALL_BUGS.join('|')}] [--profile ${Object.keys(PROFILES).join('|')}] [--verbose] [--keep-going]`;

/** node:util parseArgs with the runner's options (strict: unknown flags throw). */
function parseOptions(argv: string[]) {
  return parseArgs({
    args: argv,
    options: {
      seeds: { type: 'string', default: '100' },
      seed: { type: 'string', default: '1' },
      nodes: { type: 'string', default: '3' },
      steps: { type: 'string', default: '400' },
      bug: { type: 'string' },
      profile: { type: 'string', default: 'default' },
      verbose: { type: 'boolean', default: false },
      'keep-going': { type: 'boolean', default: false },
      help: { type: 'boolean', default: false },
    },
    strict: true,
  });
}

/** Parses argv (without node and the script); throws an Error with the usage on bad input. */
export function parseCli(argv: string[]): CliOptions {
  let parsed: ReturnType<typeof parseOptions>;
  try {
    parsed = parseOptions(argv);
  } catch (err) {
    throw new Error(`${err instanceof Error ? err.message : String(err)}\n${USAGE}`);
  }
  const values = parsed.values;
  if (values.help) throw new Error(USAGE);
  const int = (name: string, v: string, min: number): number => {
    const n = Number(v);
    if (!Number.isSafeInteger(n) || n < min) throw new Error(`--${name} must be an integer >= ${min} (got ${v})\n${USAGE}`);
    return n;
  };
  const bug = values.bug as SimBug | undefined;
  if (bug !== undefined && !ALL_BUGS.includes(bug)) throw new Error(`unknown --bug ${bug}\n${USAGE}`);
  if (!(values.profile in PROFILES)) throw new Error(`unknown --profile ${values.profile}\n${USAGE}`);
  const nodes = int('nodes', values.nodes, 1);
  if (nodes !== 3 && nodes !== 5) throw new Error(`--nodes must be 3 or 5\n${USAGE}`);
  return {
    seeds: int('seeds', values.seeds, 1),
    seed: int('seed', values.seed, 0),
    nodes,
    steps: int('steps', values.steps, 1),
    bug,
    profile: values.profile,
    verbose: values.verbose,
    keepGoing: values['keep-going'],
  };
}

/** Runs the seeds; returns the process exit code. */
export function main(argv: string[], out: (s: string) => void = (s) => process.stdout.write(s)): number {
  let o: CliOptions;
  try {
    o = parseCli(argv);
  } catch (err) {
    out(`${err instanceof Error ? err.message : String(err)}\n`);
    return 2;
  }
  const every = Math.max(1, Math.floor(o.seeds / 10));
  const t0 = performance.now();
  let failed = 0;
  const batch = runSeeds({
    from: o.seed,
    count: o.seeds,
    nodes: o.nodes,
    steps: o.steps,
    bug: o.bug,
    profile: PROFILES[o.profile],
    stopAtFirstFailure: !o.keepGoing,
    onEvent: o.verbose ? (l) => out(`${l}\n`) : undefined,
    onResult: (r, done) => {
      if (!r.ok) {
        failed++;
        if (o.keepGoing) out(`seed ${r.seed}: ${r.invariant}: ${r.message}\n`);
      }
      if (done % every === 0 || done === o.seeds) out(`${done}/${o.seeds} seeds, ${failed} failed, ${((performance.now() - t0) / 1000).toFixed(1)} s\n`);
    },
  });
  const secs = batch.elapsedMs / 1000;
  const t = batch.totals;
  out(
    `done: ${batch.ran} seeds from ${o.seed} (${o.nodes} nodes, ${o.steps} steps, profile ${o.profile}${o.bug ? `, bug ${o.bug}` : ''}): ` +
      `${batch.failures.length} failed, ${batch.ticks} ticks, ${secs.toFixed(1)} s (${(batch.ran / secs || 0).toFixed(0)} seeds/s)\n` +
      `totals: ${t.proposals} proposals, ${t.writesAcked} writes acked, ${t.readsServed}/${t.readsStarted} reads served, ` +
      `${t.crashes} crashes, ${t.leaderTerms} leader terms, ${t.snapshotsInstalled} snapshots installed, ${t.compactions} compactions, ` +
      `${t.confChanges} conf changes, ${t.transfers} transfers, ${t.messagesDelivered}/${t.messagesSent} messages delivered` +
      (t.wipes > 0 ? `, ${t.wipes} disks lost, ${t.replacements} replaced, ${t.incarnationDrops} messages dropped by the incarnation rule` : '') +
      '\n',
  );
  const first = batch.failures[0];
  if (first) out(`\n${describeFailure(first)}\n`);
  return first ? 1 : 0;
}

// Run when executed directly (not when imported by a test).
if (process.argv[1] && import.meta.url === new URL(`file://${process.argv[1]}`).href) {
  process.exitCode = main(process.argv.slice(2));
}
