#!/usr/bin/env node
// The `jepsen-lite` command: run | matrix | check <dir>. Exit status 0 only when every checker
// passed (see USAGE in args.ts for the others).

import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { CliArgs } from './args.js';
import { USAGE, UsageError, parseCli } from './args.js';
import type { Validity } from './checker.js';
import { checkDir } from './check.js';
import { HarnessError } from './db.js';
import { HistoryFormatError } from './history.js';
import { runTest } from './orchestrator.js';
import { RunDirError } from './rundir.js';

/** Exit statuses. */
export const EXIT = { valid: 0, invalid: 1, unknown: 2, usage: 64, harness: 70 } as const;

/** Maps a verdict to the exit status. */
export function exitCodeFor(v: Validity): number {
  return v === true ? EXIT.valid : v === false ? EXIT.invalid : EXIT.unknown;
}

const repoRoot = resolve(fileURLToPath(new URL('.', import.meta.url)), '..', '..');
/** The compose file `--env docker` runs. */
const composeFile = join(repoRoot, 'deploy', 'docker-compose.yml');

/** Runs the CLI; returns the exit status (never throws for expected conditions). */
export async function main(argv: readonly string[], out: (s: string) => void = (s) => process.stdout.write(s + '\n'), err: (s: string) => void = (s) => process.stderr.write(s + '\n')): Promise<number> {
  let args: CliArgs;
  try {
    args = parseCli(argv);
  } catch (e) {
    if (!(e instanceof UsageError)) throw e;
    err(`jepsen-lite: ${e.message}\n\n${USAGE}`);
    return EXIT.usage;
  }
  try {
    return await dispatch(args, out, err);
  } catch (e) {
    if (e instanceof HarnessError || e instanceof RunDirError || e instanceof HistoryFormatError) {
      err(`jepsen-lite: ${e.message} [${e.code}]`);
      return EXIT.harness;
    }
    throw e;
  }
}

async function dispatch(args: CliArgs, out: (s: string) => void, err: (s: string) => void): Promise<number> {
  switch (args.command) {
    case 'help':
      out(USAGE);
      return EXIT.valid;
    case 'check': {
      const { check, htmlPath } = await checkDir(args.dir, { linearizable: { budgetMsPerKey: args.budgetMs } });
      for (const [name, r] of Object.entries(check.results)) out(`${name.padEnd(14)} ${verdict(r.valid)}`);
      for (const s of check.skipped) out(`${s.checker.padEnd(14)} skipped (${s.reason})`);
      out(`overall        ${verdict(check.valid)}\nreport: ${htmlPath}`);
      return exitCodeFor(check.valid);
    }
    case 'run': {
      const seed = args.seed ?? randomSeed();
      const outDir = args.out ?? join(repoRoot, 'jepsen-lite', 'out', stamp());
      err(`jepsen-lite: seed ${seed}, output ${outDir}`);
      const check = await runTest({ ...args, image: args.image, seed, out: outDir, serverCli: args.server ?? join(repoRoot, 'packages', 'server', 'dist', 'cli.js'), budgetMsPerKey: args.budgetMs, composeFile });
      out(`overall ${verdict(check.valid)} — report: ${join(outDir, 'report.html')}`);
      return exitCodeFor(check.valid);
    }
    case 'matrix': {
      const seed = args.seed ?? randomSeed();
      const root = args.out ?? join(repoRoot, 'jepsen-lite', 'out', `matrix-${stamp()}`);
      const verdicts: Validity[] = [];
      for (const [i, c] of args.combos.entries()) {
        const dir = join(root, `${String(i + 1).padStart(2, '0')}-${c.nemesisSpec}-${c.workload}`);
        err(`jepsen-lite matrix ${i + 1}/${args.combos.length}: ${c.nemesisSpec} × ${c.workload} → ${dir}`);
        const check = await runTest({ nodes: 3, timeS: args.timeS, nemeses: c.nemeses, nemesisSpec: c.nemesisSpec, workload: c.workload, concurrency: 6, rate: 200, seed: seed + i, out: dir, serverCli: join(repoRoot, 'packages', 'server', 'dist', 'cli.js'), budgetMsPerKey: 5000, env: args.env, ...(args.image === undefined ? {} : { image: args.image }), composeFile });
        out(`${c.nemesisSpec} × ${c.workload}: ${verdict(check.valid)}`);
        verdicts.push(check.valid);
      }
      const worst: Validity = verdicts.includes(false) ? false : verdicts.includes('unknown') ? 'unknown' : true;
      return exitCodeFor(worst);
    }
  }
}

function verdict(v: Validity): string {
  return v === true ? 'VALID' : v === false ? 'INVALID' : 'UNKNOWN';
}

function randomSeed(): number {
  return Math.floor(Math.random() * 2 ** 31);
}

function stamp(): string {
  return new Date().toISOString().replace(/[:.]/g, '-');
}

if (process.argv[1] !== undefined && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (e: unknown) => {
      process.stderr.write(`jepsen-lite: unexpected error (a bug): ${(e as Error).stack ?? String(e)}\n`);
      process.exit(EXIT.harness);
    },
  );
}
