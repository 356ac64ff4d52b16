// Config files and flags: `quorumkv serve`'s argv, environment and --config JSON file, parsed by
// parseServeConfig (server config.ts) as the CLI does. Generated inputs start from a valid
// command line and add flags from the usage text with valid, boundary and hostile values, a
// config file of known and unknown settings (sometimes raw-mutated JSON text), and QKV_*
// variables. Invariants: the parser returns a config or throws ConfigError (the CLI prints it in
// one line and exits 2), nothing else; an accepted config has finite numbers, a usable secret and
// a listen port in range.
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { ConfigError, SERVE_USAGE, parseServeConfig, type ServeConfig } from '@quorumkv/server';
import { FuzzViolation, type FuzzTarget, type Outcome, type Surface } from '../runner.js';
import { textWithMutation } from '../mutate.js';

/** Every `serve` flag, read from the usage text (so a new flag is fuzzed without editing this file). */
const FLAGS = [...new Set([...SERVE_USAGE.matchAll(/--([a-z][a-z-]+)/g)].map((m) => m[1]!))];
const camel = (flag: string) => flag.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());
const SECRET = 'fuzz-config-secret-0123456789';
/** A memory-backed directory on Linux. */
const SHM_DIR = '/dev/shm';

const hostileValue = fc.oneof(
  fc.constantFrom('0', '1', '-1', '2', '10', '100', '65535', '65536', '9007199254740993', '1e3', '0x10', ' 5 ', '', 'NaN', 'Infinity', 'true', 'n1', 'n1=127.0.0.1:7001', '127.0.0.1:0', '[::1]:7001', 'a=b=c', ',', 'n1=,n1=x:1', '../../etc', 'debug', 'new', 'existing'),
  fc.integer({ min: -10, max: 1_000_000 }).map(String),
  fc.string({ maxLength: 40 }),
);

const jsonSetting = fc.oneof(fc.constantFrom(...FLAGS).map(camel), fc.constantFrom('clusterSecret', 'unknown', '__proto__', 'constructor'));

/** One input: extra argv, the config file's text (or none), extra environment. */
export interface ConfigInput {
  argv: string[];
  file: string | null;
  env: Record<string, string>;
}

const input: fc.Arbitrary<ConfigInput> = fc.record({
  argv: fc
    .tuple(
      fc.boolean(),
      fc.array(fc.tuple(fc.constantFrom(...FLAGS), hostileValue, fc.constantFrom('space', 'equals', 'bare')), { maxLength: 4 }),
      fc.array(fc.string({ maxLength: 12 }), { maxLength: 1 }),
    )
    .map(([base, flags, junk]) => [
      ...(base ? ['--id', 'n1', '--listen', '127.0.0.1:7001', '--peers', 'n1=127.0.0.1:7001,n2=127.0.0.1:7002,n3=127.0.0.1:7003', '--data', '/nonexistent/qkv-fuzz'] : []),
      ...flags.flatMap(([f, v, form]) => (form === 'space' ? [`--${f}`, v] : form === 'equals' ? [`--${f}=${v}`] : [`--${f}`])),
      ...junk,
    ]),
  file: fc.option(
    textWithMutation(
      fc.dictionary(jsonSetting, fc.oneof(fc.jsonValue({ maxDepth: 1 }), hostileValue, fc.integer({ min: -5, max: 100_000 })), { maxKeys: 5 }).map((o) => JSON.stringify(o)),
      200,
    ),
    { nil: null, freq: 2 },
  ),
  env: fc.dictionary(fc.constantFrom(...FLAGS.map((f) => `QKV_${f.replace(/-/g, '_').toUpperCase()}`), 'QKV_CLUSTER_SECRET'), hostileValue, { maxKeys: 2 }),
});

export const configSurface: Surface<ConfigInput> = {
  name: 'config',
  description: "`quorumkv serve` flags, environment and --config file",
  arbitrary: () => input,
  open: async () => openConfigTarget(),
  show: (i) => JSON.stringify(i),
};

/** What an accepted config must satisfy, whatever the input. */
function checkAccepted(cfg: ServeConfig): void {
  for (const [k, v] of Object.entries(cfg)) {
    if (typeof v === 'number' && !Number.isFinite(v)) throw new FuzzViolation(`accepted config has ${k} = ${v}`);
  }
  if (cfg.clusterSecret.length < 16) throw new FuzzViolation('accepted config has a short cluster secret');
  if (!Number.isInteger(cfg.port) || cfg.port < 0 || cfg.port > 65535) throw new FuzzViolation(`accepted config listens on port ${cfg.port}`);
}

function openConfigTarget(): FuzzTarget<ConfigInput> {
  // The config file is rewritten for every input: keep it in memory where the system allows.
  const dir = mkdtempSync(join(existsSync(SHM_DIR) ? SHM_DIR : tmpdir(), 'qkv-fuzz-config-'));
  const file = join(dir, 'config.json');
  const parse = (argv: string[], env: Record<string, string>): Outcome => {
    try {
      checkAccepted(parseServeConfig(argv, env));
      return 'accepted';
    } catch (e) {
      if (e instanceof ConfigError) return 'refused';
      if (e instanceof FuzzViolation) throw e;
      throw new FuzzViolation(`parseServeConfig threw ${(e as Error)?.name}, not ConfigError: ${(e as Error)?.stack ?? String(e)}`, { cause: e });
    }
  };
  return {
    feed: (i) => {
      const argv = [...i.argv];
      if (i.file !== null) {
        writeFileSync(file, i.file);
        argv.push('--config', file);
      }
      return parse(argv, { QKV_CLUSTER_SECRET: SECRET, ...i.env });
    },
    control: () => {
      const ok = parse(['--id', 'n1', '--listen', '127.0.0.1:7001', '--peers', 'n1=127.0.0.1:7001', '--data', '/nonexistent/qkv-fuzz'], { QKV_CLUSTER_SECRET: SECRET });
      if (ok !== 'accepted') throw new FuzzViolation('a valid command line is refused');
    },
    close: async () => rmSync(dir, { recursive: true, force: true }),
  };
}
