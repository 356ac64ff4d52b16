// Command-line parsing for `jepsen-lite run | matrix | check <dir>`: pure, so it is unit-tested;
// every bad argument becomes a UsageError with a message that says what to type instead.

import { parseArgs } from 'node:util';
import type { NemesisName } from './nemesis.js';
import { NemesisSpecError, expandNemeses } from './nemesis.js';

/** A command line that cannot be run. */
export class UsageError extends Error {
  readonly code = 'JL_USAGE';
}

/** Usage text printed for --help and after a UsageError. */
export const USAGE = `usage: jepsen-lite <command> [options]

  run      start a cluster, run a workload under a nemesis, check the history, write a report
  matrix   run several nemesis × workload combinations, one directory each
  check    re-check a saved run directory:  jepsen-lite check <dir>

run options (defaults in brackets):
  --nodes N            cluster size [3]
  --time S             seconds of workload [60]
  --nemesis LIST       comma-separated nemeses or groups (partition, kill, pause, slow,
                       correlated, wipe, power-loss, corrupt, all, none, or single names such as
                       partition-ring, wipe-one, hostile-peer, power-loss-all, disk-full) [partition]
  --workload W         register | set | watch | bank [register]
  --concurrency N      client processes [6]
  --rate N             target ops per second over all processes [200]
  --seed S             seed of the schedule and the workload [random, printed]
  --out DIR            run directory (must be empty or absent) [jepsen-lite/out/<time>]
  --server PATH        the server's built CLI [packages/server/dist/cli.js]
  --budget-ms N        linearizability search time per key [5000]
  --reads MODE         register reads: linearizable | stale [linearizable]; stale is a
                       deliberately unsafe mode (any node answers from its own state) that the
                       checker should flag as not linearizable under partitions
  --tls                TLS on every link (local env): development certificates from
                       \`quorumkv certs init\`, clients over wss; not with hostile-peer
  --env ENV            local | docker [local]. docker runs the compose cluster of
                       deploy/docker-compose.yml (3 nodes; build the image first with
                       bash deploy/build-images.sh); faults by docker network disconnect,
                       docker kill/start, docker pause/unpause; what docker cannot do
                       (one-way cuts, slow links) is reported NOT APPLIED in the fault windows
  --image IMAGE        node image for --env docker [QKV_IMAGE or quorumkv/node:local]

matrix options: --time S [25], --seed S, --env ENV [local], --image IMAGE,
  --out DIR (one sub-directory per combination),
  --combos "NEMESIS:WORKLOAD;..." [partition:register;kill:register;pause:register;
  snapshot-blackhole:register;correlated-kill-two:set;wipe:register;hostile-peer:set;
  partition,kill:watch;power-loss:set;corrupt:register]

check options: --budget-ms N

exit status: 0 every checker passed · 1 some checker found a violation · 2 some checker
could not decide (unknown) · 64 bad command line · 70 the harness could not run`;

/** Parsed `run` options (before defaults that need the clock, such as the seed). */
export interface RunArgs {
  command: 'run';
  nodes: number;
  timeS: number;
  nemeses: NemesisName[];
  nemesisSpec: string;
  workload: WorkloadName;
  concurrency: number;
  rate: number;
  seed: number | undefined;
  out: string | undefined;
  server: string | undefined;
  budgetMs: number;
  reads: 'linearizable' | 'stale';
  env: 'local' | 'docker';
  image: string | undefined;
  tls: boolean;
}

/** Parsed `matrix` options. */
export interface MatrixArgs {
  command: 'matrix';
  timeS: number;
  seed: number | undefined;
  out: string | undefined;
  combos: { nemesisSpec: string; nemeses: NemesisName[]; workload: WorkloadName }[];
  env: 'local' | 'docker';
  image: string | undefined;
}

/** Parsed `check` options. */
export interface CheckArgs {
  command: 'check';
  dir: string;
  budgetMs: number;
}

/** Any parsed command. */
export type CliArgs = RunArgs | MatrixArgs | CheckArgs | { command: 'help' };

/** The default short matrix (the CI one). */
export const DEFAULT_COMBOS = 'partition:register;kill:register;pause:register;snapshot-blackhole:register;correlated-kill-two:set;wipe:register;hostile-peer:set;partition,kill:watch;power-loss:set;corrupt:register;kill:bank';

/** Parses argv (without `node` and the script). Throws {@link UsageError}. */
export function parseCli(argv: readonly string[]): CliArgs {
  const [command, ...rest] = argv;
  if (command === undefined || command === '--help' || command === '-h' || command === 'help') return { command: 'help' };
  if (rest.includes('--help') || rest.includes('-h')) return { command: 'help' };
  switch (command) {
    case 'run':
      return parseRun(rest);
    case 'matrix':
      return parseMatrix(rest);
    case 'check':
      return parseCheck(rest);
    default:
      throw new UsageError(`unknown command "${command}"; use run, matrix or check`);
  }
}

function parse(args: readonly string[], options: Record<string, { type: 'string' }>, positionals = false): { values: Record<string, string | undefined>; positionals: string[] } {
  try {
    const r = parseArgs({ args: [...args], options, strict: true, allowPositionals: positionals });
    return { values: r.values as Record<string, string | undefined>, positionals: r.positionals };
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
}

function int(name: string, raw: string | undefined, dflt: number, min: number, max: number): number {
  if (raw === undefined) return dflt;
  const n = Number(raw);
  if (!Number.isSafeInteger(n) || n < min || n > max) throw new UsageError(`--${name} must be an integer from ${min} to ${max}, got "${raw}"`);
  return n;
}

/** The workloads (workloads.ts). */
export type WorkloadName = 'register' | 'set' | 'watch' | 'bank';

function workload(raw: string | undefined): WorkloadName {
  if (raw === undefined) return 'register';
  if (raw === 'register' || raw === 'set' || raw === 'watch' || raw === 'bank') return raw;
  throw new UsageError(`--workload must be register, set, watch or bank, got "${raw}"`);
}

function nemeses(spec: string): NemesisName[] {
  try {
    return expandNemeses(spec);
  } catch (err) {
    if (err instanceof NemesisSpecError) throw new UsageError(err.message);
    throw err;
  }
}

const RUN_OPTIONS = {
  nodes: { type: 'string' },
  time: { type: 'string' },
  nemesis: { type: 'string' },
  workload: { type: 'string' },
  concurrency: { type: 'string' },
  rate: { type: 'string' },
  seed: { type: 'string' },
  out: { type: 'string' },
  server: { type: 'string' },
  'budget-ms': { type: 'string' },
  reads: { type: 'string' },
  env: { type: 'string' },
  image: { type: 'string' },
} as const;

function parseRun(argv: readonly string[]): RunArgs {
  // The one switch among string options: taken out before parsing them.
  const tls = argv.includes('--tls');
  const args = argv.filter((a) => a !== '--tls');
  const { values: v } = parse(args, RUN_OPTIONS);
  const nemesisSpec = v.nemesis ?? 'partition';
  const where = env(v.env, v.image);
  const nodes = int('nodes', v.nodes, 3, 3, 9);
  if (where === 'docker' && nodes !== 3) throw new UsageError(`--env docker runs the three nodes of deploy/docker-compose.yml; --nodes must be 3, got ${nodes}`);
  return {
    command: 'run',
    nodes,
    timeS: int('time', v.time, 60, 1, 86_400),
    nemeses: nemeses(nemesisSpec),
    nemesisSpec,
    workload: workload(v.workload),
    concurrency: int('concurrency', v.concurrency, 6, 1, 1000),
    rate: int('rate', v.rate, 200, 1, 1_000_000),
    seed: v.seed === undefined ? undefined : int('seed', v.seed, 0, 0, 2 ** 32 - 1),
    out: v.out,
    server: v.server,
    budgetMs: int('budget-ms', v['budget-ms'], 5000, 1, 3_600_000),
    reads: reads(v.reads),
    env: where,
    image: v.image,
    tls: tlsFlag(tls, where, nemesisSpec),
  };
}

function tlsFlag(tls: boolean, where: 'local' | 'docker', nemesisSpec: string): boolean {
  if (!tls) return false;
  if (where === 'docker') throw new UsageError('--tls runs the local cluster; the docker env follows the compose env file');
  // The forger speaks the plaintext peer protocol; under TLS it would only test the handshake.
  if (nemesisSpec.split(',').includes('hostile-peer')) throw new UsageError('--tls cannot be combined with the hostile-peer nemesis');
  return true;
}

function env(raw: string | undefined, image: string | undefined): 'local' | 'docker' {
  if (raw !== undefined && raw !== 'local' && raw !== 'docker') throw new UsageError(`--env must be local or docker, got "${raw}"`);
  const where = raw ?? 'local';
  if (image !== undefined && where !== 'docker') throw new UsageError('--image needs --env docker');
  return where;
}

function reads(raw: string | undefined): 'linearizable' | 'stale' {
  if (raw === undefined || raw === 'linearizable' || raw === 'stale') return raw ?? 'linearizable';
  throw new UsageError(`--reads must be linearizable or stale, got "${raw}"`);
}

function parseMatrix(args: readonly string[]): MatrixArgs {
  const { values: v } = parse(args, { time: { type: 'string' }, seed: { type: 'string' }, out: { type: 'string' }, combos: { type: 'string' }, env: { type: 'string' }, image: { type: 'string' } });
  const combos = (v.combos ?? DEFAULT_COMBOS)
    .split(';')
    .map((s) => s.trim())
    .filter((s) => s !== '')
    .map((s) => {
      const [n, w, extra] = s.split(':');
      if (n === undefined || w === undefined || extra !== undefined) throw new UsageError(`--combos entry "${s}" must be NEMESIS:WORKLOAD`);
      return { nemesisSpec: n, nemeses: nemeses(n), workload: workload(w) };
    });
  if (combos.length === 0) throw new UsageError('--combos lists no combination');
  return { command: 'matrix', timeS: int('time', v.time, 25, 1, 86_400), seed: v.seed === undefined ? undefined : int('seed', v.seed, 0, 0, 2 ** 32 - 1), out: v.out, combos, env: env(v.env, v.image), image: v.image };
}

function parseCheck(args: readonly string[]): CheckArgs {
  const { values: v, positionals } = parse(args, { 'budget-ms': { type: 'string' } }, true);
  if (positionals.length !== 1) throw new UsageError(`check takes exactly one run directory, got ${positionals.length}`);
  return { command: 'check', dir: positionals[0]!, budgetMs: int('budget-ms', v['budget-ms'], 5000, 1, 3_600_000) };
}
