import { mkdtempSync, rmSync, writeFileSync, mkdirSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { DEFAULT_COMBOS, UsageError, parseCli } from '../src/args.js';
import { EXIT, main } from '../src/cli.js';
import { generateRegisterHistory, mutateReadToUnwritten } from '@quorumkv/checker';
import { serializeHistory } from '../src/history.js';
import { createRng } from '../src/random.js';

const root = mkdtempSync(join(tmpdir(), 'jl-cli-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

async function cli(...argv: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const code = await main(argv, (s) => (out += s + '\n'), (s) => (err += s + '\n'));
  return { code, out, err };
}

describe('argument parsing', () => {
  it('fills sensible defaults for run', () => {
    expect(parseCli(['run'])).toMatchObject({ command: 'run', nodes: 3, timeS: 60, workload: 'register', concurrency: 6, rate: 200, seed: undefined, nemesisSpec: 'partition', reads: 'linearizable' });
  });

  it('parses every run flag', () => {
    const a = parseCli(['run', '--nodes', '5', '--time', '20', '--nemesis', 'kill,pause-leader', '--workload', 'set', '--concurrency', '4', '--rate', '50', '--seed', '7', '--out', '/tmp/x']);
    expect(a).toMatchObject({ nodes: 5, timeS: 20, workload: 'set', concurrency: 4, rate: 50, seed: 7, out: '/tmp/x' });
    expect(a.command === 'run' && a.nemeses).toEqual(['kill-one', 'kill-leader', 'kill-majority', 'kill-all', 'pause-leader']);
  });

  it('parses --env and --image (docker runs the three compose nodes)', () => {
    expect(parseCli(['run'])).toMatchObject({ env: 'local', image: undefined });
    expect(parseCli(['run', '--env', 'docker', '--image', 'quorumkv/node:x'])).toMatchObject({ env: 'docker', image: 'quorumkv/node:x', nodes: 3 });
    expect(parseCli(['matrix', '--env', 'docker'])).toMatchObject({ command: 'matrix', env: 'docker' });
  });

  it('parses --tls for local runs, and refuses it with docker or the hostile peer', () => {
    expect(parseCli(['run'])).toMatchObject({ tls: false });
    expect(parseCli(['run', '--tls', '--nemesis', 'partition'])).toMatchObject({ tls: true, nemesisSpec: 'partition' });
    expect(() => parseCli(['run', '--tls', '--env', 'docker'])).toThrow(/--tls runs the local cluster/);
    expect(() => parseCli(['run', '--tls', '--nemesis', 'partition,hostile-peer'])).toThrow(/hostile-peer/);
  });

  it('parses the default matrix', () => {
    const m = parseCli(['matrix']);
    expect(m.command === 'matrix' && m.combos.map((c) => `${c.nemesisSpec}:${c.workload}`).join(';')).toBe(DEFAULT_COMBOS);
  });

  const bad: [string[], RegExp][] = [
    [['frobnicate'], /unknown command "frobnicate"/],
    [['run', '--nodes', '2'], /--nodes must be an integer from 3 to 9/],
    [['run', '--env', 'k8s'], /--env must be local or docker/],
    [['run', '--env', 'docker', '--nodes', '5'], /--nodes must be 3/],
    [['run', '--image', 'x'], /--image needs --env docker/],
    [['run', '--rate', 'fast'], /--rate must be an integer/],
    [['run', '--workload', 'bank-robbery'], /--workload must be register, set, watch or bank/],
    [['run', '--nemesis', 'earthquake'], /unknown nemesis "earthquake"/],
    [['run', '--colour', 'red'], /Unknown option '--colour'/],
    [['check'], /exactly one run directory/],
    [['run', '--reads', 'eventual'], /--reads must be linearizable or stale/],
    [['matrix', '--combos', 'kill'], /must be NEMESIS:WORKLOAD/],
  ];
  for (const [argv, msg] of bad) {
    it(`rejects ${argv.join(' ')}`, () => {
      expect(() => parseCli(argv)).toThrow(UsageError);
      expect(() => parseCli(argv)).toThrow(msg);
    });
  }
});

describe('jepsen-lite main()', () => {
  const saved = (name: string, invalid: boolean) => {
    const dir = join(root, name);
    mkdirSync(dir);
    let ops = generateRegisterHistory({ seed: 21, processes: 4, ops: 100, keys: 2, stepNsMax: 10_000_000 });
    if (invalid) ops = mutateReadToUnwritten(ops, createRng(1))!;
    writeFileSync(join(dir, 'history.jsonl'), serializeHistory(ops));
    return dir;
  };

  it('check <dir> exits 0 on a valid history and writes the report', async () => {
    const dir = saved('ok', false);
    const r = await cli('check', dir);
    expect(r.code).toBe(EXIT.valid);
    expect(r.out).toMatch(/linearizable\s+VALID/);
    expect(r.out).toMatch(/split-brain\s+skipped/);
    expect(existsSync(join(dir, 'report.html'))).toBe(true);
  });

  it('check <dir> exits 1 on an invalid history', async () => {
    const r = await cli('check', saved('bad', true));
    expect(r.code).toBe(EXIT.invalid);
    expect(r.out).toMatch(/overall\s+INVALID/);
  });

  it('check <dir> exits 2 when the search budget runs out', async () => {
    const dir = join(root, 'big');
    mkdirSync(dir);
    writeFileSync(join(dir, 'history.jsonl'), serializeHistory(generateRegisterHistory({ seed: 5, processes: 10, ops: 3000, keys: 1, infoRate: 0.4 })));
    const r = await cli('check', dir, '--budget-ms', '1');
    expect(r.code).toBe(EXIT.unknown);
  });

  it('reports a corrupt history with its line number, exit 70', async () => {
    const dir = join(root, 'corrupt');
    mkdirSync(dir);
    writeFileSync(join(dir, 'history.jsonl'), '{"process":0,"type":"invoke","f":"read","value":null,"time":1}\nnot json\n');
    const r = await cli('check', dir);
    expect(r.code).toBe(EXIT.harness);
    expect(r.err).toMatch(/history line 2: not JSON/);
  });

  it('reports a missing directory and a bad command line clearly', async () => {
    expect((await cli('check', join(root, 'nope'))).err).toMatch(/no such directory/);
    const u = await cli('run', '--nodes', 'x');
    expect(u.code).toBe(EXIT.usage);
    expect(u.err).toMatch(/--nodes must be an integer/);
    expect(u.err).toMatch(/usage: jepsen-lite/);
  });

  it('run stops with a clear error while the server is not built', async () => {
    const r = await cli('run', '--time', '1', '--seed', '1', '--out', join(root, 'run1'), '--server', join(root, 'no-server.js'));
    expect(r.code).toBe(EXIT.harness);
    expect(r.err).toMatch(/JL_SERVER_NOT_BUILT|JL_CLIENT_MISSING/);
  });
});
