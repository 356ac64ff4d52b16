// scripts/check-raft-purity.mjs keeps the core (and the linearizability checker) pure. Prove it
// has teeth: run it on a copy of them with a clock read, a timer, ambient randomness, a Node
// import or a dependency planted, and check it fails naming the file and line; the clean copy passes.
import { spawnSync } from 'node:child_process';
import { cpSync, mkdtempSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';

const repo = new URL('../../../', import.meta.url).pathname;
const dirs: string[] = [];

/** A throwaway tree laid out like the repo: scripts/check-raft-purity.mjs + packages/raft + packages/checker. */
function copyTree(): string {
  const root = mkdtempSync(join(tmpdir(), 'qkv-purity-'));
  dirs.push(root);
  mkdirSync(join(root, 'scripts'));
  cpSync(join(repo, 'scripts/check-raft-purity.mjs'), join(root, 'scripts/check-raft-purity.mjs'));
  cpSync(join(repo, 'packages/raft/src'), join(root, 'packages/raft/src'), { recursive: true });
  cpSync(join(repo, 'packages/raft/package.json'), join(root, 'packages/raft/package.json'));
  cpSync(join(repo, 'packages/checker/src'), join(root, 'packages/checker/src'), { recursive: true });
  cpSync(join(repo, 'packages/checker/package.json'), join(root, 'packages/checker/package.json'));
  return root;
}

function check(root: string): { status: number | null; output: string } {
  const r = spawnSync(process.execPath, [join(root, 'scripts/check-raft-purity.mjs')], { encoding: 'utf8' });
  return { status: r.status, output: r.stdout + r.stderr };
}

/** Appends `line` to `file` under packages/raft/src (or packages/<pkg>/src when file is `pkg:name`). */
function plant(root: string, file: string, line: string): void {
  const [pkg, name] = file.includes(':') ? file.split(':') : ['raft', file];
  const p = join(root, 'packages', pkg!, 'src', name!);
  writeFileSync(p, `${readFileSync(p, 'utf8')}\n${line}\n`);
}

afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

describe('check-raft-purity', () => {
  it('passes on the core as it is, even with the forbidden words in comments', () => {
    const root = copyTree();
    plant(root, 'log.ts', '// never call Date.now() or Math.random() here');
    const r = check(root);
    expect(r.output).toContain('purity check: ok');
    expect(r.status).toBe(0);
  });

  // One copy with every kind of impurity planted, each in its own file (one spawn keeps it fast).
  const planted: Array<[string, string, string]> = [
    ['raft.ts', 'export const startedAtMs = Date.now();', 'reads the clock'],
    ['log.ts', 'export const started = new Date();', 'reads the clock'],
    ['progress.ts', 'export const jitter = Math.random();', 'uses ambient randomness'],
    ['readonly.ts', 'setTimeout(() => {}, 1);', 'uses timers'],
    ['storage.ts', "import { readFileSync } from 'node:fs';", 'imports a Node module'],
    ['config.ts', "import pino from 'pino';", 'imports a package'],
    ['confchange.ts', 'export const env = process.env;', 'touches process'],
    ['checker:wgl.ts', 'export const t0 = performance.now();', 'reads the clock'],
  ];
  it('fails on a planted Date.now(), new Date, Math.random, timer, Node import, package import and process', () => {
    const root = copyTree();
    for (const [file, line] of planted) plant(root, file, line);
    const r = check(root);
    expect(r.status).toBe(1);
    for (const [file, line, why] of planted) {
      const [pkg, name] = file.includes(':') ? file.split(':') : ['raft', file];
      expect(r.output).toMatch(new RegExp(`packages/${pkg}/src/${name!.replace('.', '\\.')}:\\d+: ${why}`));
      expect(r.output).toContain(line);
    }
  });

  it('fails when the core gains a runtime dependency', () => {
    const root = copyTree();
    const p = join(root, 'packages/raft/package.json');
    const pkg = JSON.parse(readFileSync(p, 'utf8')) as Record<string, unknown>;
    writeFileSync(p, JSON.stringify({ ...pkg, dependencies: { pino: '^9.0.0' } }));
    const r = check(root);
    expect(r.status).toBe(1);
    expect(r.output).toContain('no runtime dependencies');
  });
});
