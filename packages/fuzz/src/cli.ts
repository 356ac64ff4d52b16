#!/usr/bin/env node
// `pnpm fuzz --surface S --count N [--seed X] [--path P]`: one seeded fuzz run of one surface (or
// `--surface all`). Prints a progress line every thousand inputs and a summary; on a failure, the
// seed, the input and the command that replays it, and exits 1.
import { parseArgs } from 'node:util';
import { SURFACES, runFuzz } from './index.js';

const USAGE = `usage: pnpm fuzz --surface ${Object.keys(SURFACES).join('|')}|all [--count N] [--seed X] [--path P] [--quiet]
  --count N   inputs per surface (default 20000)
  --seed X    the run's seed (default: random, printed)
  --path P    replay one counterexample of a failed run (printed with it)
  --quiet     a progress line every 100,000 inputs instead of every 1,000`;
/** Default inputs per surface: the CI count. */
const DEFAULT_COUNT = 20_000;

async function main(): Promise<number> {
  let values;
  try {
    ({ values } = parseArgs({ options: { surface: { type: 'string' }, count: { type: 'string' }, seed: { type: 'string' }, path: { type: 'string' }, quiet: { type: 'boolean' }, help: { type: 'boolean' } }, strict: true }));
  } catch (e) {
    console.error(`${(e as Error).message}\n${USAGE}`);
    return 2;
  }
  if (values.help || !values.surface) {
    console.error(USAGE);
    return values.help ? 0 : 2;
  }
  const names = values.surface === 'all' ? Object.keys(SURFACES) : [values.surface];
  const count = Number(values.count ?? DEFAULT_COUNT);
  const seed = values.seed !== undefined ? Number(values.seed) : (Math.random() * 2 ** 31) | 0;
  if (!Number.isSafeInteger(count) || count < 1) return usage('--count must be a positive integer');
  if (!Number.isSafeInteger(seed)) return usage('--seed must be an integer');
  let failed = 0;
  for (const name of names) {
    const surface = SURFACES[name];
    if (!surface) return usage(`unknown surface "${name}"`);
    console.log(`fuzz ${name}: ${count} inputs, seed ${seed}${values.path ? `, path ${values.path}` : ''}`);
    const r = await runFuzz(surface, { count, seed, ...(values.path ? { path: values.path } : {}), progress: quietable(values.quiet === true) });
    const rate = Math.round((r.inputs / Math.max(1, r.elapsedMs)) * 1000);
    console.log(`fuzz ${name}: ${r.inputs} inputs (${r.accepted} accepted, ${r.refused} refused) in ${r.elapsedMs} ms (${rate}/s); heap ${(r.heapGrowthBytes / 1048576).toFixed(1)} MiB, RSS ${(r.rssGrowthBytes / 1048576).toFixed(1)} MiB growth; rss now ${(process.memoryUsage().rss / 1048576).toFixed(0)} MiB`);
    if (r.failure) {
      console.log(r.failure);
      failed++;
    }
  }
  return failed > 0 ? 1 : 0;
}

/** Inputs between two progress lines under --quiet (a long run still shows how far it got). */
const QUIET_PROGRESS_EVERY = 100_000;

/** Prints every progress line (one per thousand inputs), or under --quiet one per QUIET_PROGRESS_EVERY. */
function quietable(quiet: boolean): (line: string) => void {
  let n = 0;
  return (line) => {
    if (!quiet || ++n % (QUIET_PROGRESS_EVERY / 1000) === 0) console.log(line);
  };
}

function usage(msg: string): number {
  console.error(`${msg}\n${USAGE}`);
  return 2;
}

main().then(
  (code) => process.exit(code),
  (e: unknown) => {
    console.error(e);
    process.exit(1);
  },
);
