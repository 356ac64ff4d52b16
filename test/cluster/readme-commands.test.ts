// The README's commands, run as written against the cluster `pnpm start` makes (`quorumkv dev`,
// here on free ports): every line of its "Try it" block (ports and `pnpm quorumkv` mapped to this
// run; `open` skipped: no browser), then its benchmark command with short arguments. A command that
// fails, or answers other than the README says, fails the test, so the README stays true.
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLI_PATH, REPO_ROOT, httpRequest, jsonOf, waitFor } from '../harness/cluster.js';

/** Tries of a random base port with three free ports after it. */
const BASE_PORT_TRIES = 20;
/** Bound of one README command. */
const COMMAND_TIMEOUT_MS = 30_000;

/** Whether `port` on 127.0.0.1 can be bound now. */
function portFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.createServer();
    s.once('error', () => resolve(false));
    s.listen(port, '127.0.0.1', () => s.close(() => resolve(true)));
  });
}

async function freeBasePort(): Promise<number> {
  for (let i = 0; i < BASE_PORT_TRIES; i++) {
    const base = 20_000 + Math.floor(Math.random() * 40_000);
    if ((await Promise.all([0, 1, 2].map((d) => portFree(base + d)))).every(Boolean)) return base;
  }
  throw new Error(`no three consecutive free ports in ${BASE_PORT_TRIES} tries`);
}

/** The body of the first ```sh block after the heading `heading` in README.md. */
function shBlock(readme: string, heading: string): string[] {
  const at = readme.indexOf(`\n## ${heading}\n`);
  if (at < 0) throw new Error(`README.md has no "## ${heading}"`);
  const m = /```sh\n([\s\S]*?)```/.exec(readme.slice(at));
  if (!m) throw new Error(`no sh block under "## ${heading}"`);
  return m[1]!.split('\n').filter((l) => l.trim() !== '');
}

/** Runs one shell line in `cwd`; resolves with exit code and output. */
function sh(line: string, cwd: string, env: NodeJS.ProcessEnv): Promise<{ code: number; out: string }> {
  return new Promise((resolve) => {
    execFile('bash', ['-c', line], { cwd, env, timeout: COMMAND_TIMEOUT_MS }, (err, stdout, stderr) => {
      resolve({ code: err ? ((err as { code?: number }).code ?? -1) : 0, out: `${stdout}${stderr}` });
    });
  });
}

describe('the README\'s commands', () => {
  let dev: ChildProcess | undefined;
  let dir = '';
  let base = 0;
  let env: NodeJS.ProcessEnv = {};
  const readme = readFileSync(path.join(REPO_ROOT, 'README.md'), 'utf8');
  /** A README line as it runs here: this run's ports, the built CLI for `pnpm quorumkv`. */
  const adapt = (line: string) =>
    line
      .replace(/\s+#\s.*$/, '')
      .replace(/127\.0\.0\.1:700([1-3])/g, (_m, d: string) => `127.0.0.1:${base + Number(d) - 1}`)
      .replace(/pnpm quorumkv/g, `node ${CLI_PATH}`);

  beforeAll(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'qkv-readme-'));
    base = await freeBasePort();
    env = { ...process.env, QKV_ENDPOINTS: [0, 1, 2].map((d) => `127.0.0.1:${base + d}`).join(','), QKV_CLUSTER_SECRET: '' };
    dev = spawn(process.execPath, [CLI_PATH, 'dev', '--base-port', String(base), '--data', path.join(dir, 'data')], { cwd: dir, stdio: 'ignore', env });
    await waitFor('the dev cluster to elect a leader', async () => {
      try {
        const st = jsonOf<{ leader: string | null }>(await httpRequest(base, 'GET', '/v1/status', { timeoutMs: 1000 }));
        return st.leader ? true : undefined;
      } catch {
        return undefined;
      }
    }, 30_000);
  }, 60_000);

  afterAll(async () => {
    if (dev?.pid !== undefined && dev.exitCode === null) {
      dev.kill('SIGINT'); // quorumkv dev stops its nodes on Ctrl-C
      await new Promise<void>((resolve) => {
        const t = setTimeout(() => {
          dev?.kill('SIGKILL');
          resolve();
        }, 10_000);
        dev!.once('exit', () => {
          clearTimeout(t);
          resolve();
        });
      });
    }
    if (dir) rmSync(dir, { recursive: true, force: true });
  }, 30_000);

  it('"Try it": every line runs and answers what the README says', async () => {
    const lines = shBlock(readme, 'Try it');
    expect(lines.length).toBeGreaterThanOrEqual(8);
    const outs: string[] = [];
    for (const raw of lines) {
      if (raw.startsWith('open ')) continue; // a browser: the status page has its own Chromium test
      const line = adapt(raw);
      const r = await sh(line, dir, env);
      expect({ line, code: r.code }, r.out).toEqual({ line, code: 0 });
      outs.push(r.out);
    }
    const all = outs.join('\n');
    expect(all).toContain('"revision"'); // the PUT's answer
    expect(all).toMatch(/x-qkv-mod-revision/i); // curl -i of the GET
    expect(all).toMatch(/cluster is healthy/); // quorumkv health
    expect(outs.at(-1)?.trim()).toMatch(/blue$/); // put color blue && get color
  }, 120_000);

  it('"Benchmarks": the first command, with short arguments', async () => {
    const [first] = shBlock(readme, 'Benchmarks');
    expect(first).toMatch(/^pnpm bench run /);
    // `pnpm bench` builds first; the build is done here, so run its CLI directly, for 1 s.
    const line = adapt(first!).replace(/^pnpm bench/, `node ${path.join(REPO_ROOT, 'packages', 'bench', 'dist', 'cli.js')}`).replace('--clients 64', '--clients 4').replace('--seconds 10', '--seconds 1');
    const r = await sh(`${line} --quiet`, REPO_ROOT, env);
    expect(r.code, r.out).toBe(0);
    expect(r.out).toMatch(/ops\/s|ok/i);
  }, 120_000);
});
