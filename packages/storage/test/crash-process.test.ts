// Real process crashes: a child process appends (synced) and applies in a loop and is killed
// with SIGKILL at an arbitrary moment; the parent reopens the store and checks that it is
// consistent. Runs the built package (dist/), building it first: tsc -b is incremental.
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { type ApplyItem, openMemoryNodeStore, openNodeStore } from '@quorumkv/storage';

const repoRoot = resolve(fileURLToPath(new URL('../../..', import.meta.url)));
const distIndex = join(repoRoot, 'packages/storage/dist/index.js');
/** Acknowledged appends to wait for before each kill (bounded: the child stops by itself later). */
const ACKS_BEFORE_KILL = 60;
const ROUNDS = 3;

const CHILD = `
import { openNodeStore, encodeCommand } from ${JSON.stringify(distIndex)};
const [dir, seedArg] = process.argv.slice(2);
let seed = Number(seedArg) >>> 0 || 1;
const rand = () => { seed ^= seed << 13; seed ^= seed >>> 17; seed ^= seed << 5; return (seed >>> 0) / 2 ** 32; };
const store = await openNodeStore(dir);
const loaded = await store.log.load();
const log = new Map(loaded.entries.map((e) => [e.index, e]));
let { term, commit } = loaded.hardState;
term = Math.max(term, 1);
let last = store.log.lastIndex();
for (let round = 0; round < 5000; round++) {
  let first = last + 1;
  if (rand() < 0.2 && last - commit > 3) { term++; first = commit + 1 + Math.floor(rand() * (last - commit)); }
  const entries = [];
  for (let i = 0, n = 1 + Math.floor(rand() * 20); i < n; i++) {
    const index = first + i;
    const data = encodeCommand({ op: 'put', key: new TextEncoder().encode('k' + (index % 37)), value: new Uint8Array(1 + Math.floor(rand() * 300)).fill(index & 255), session: { id: 's' + (index % 5), seq: index, ackedBelow: Math.max(1, index - 8) } });
    entries.push({ index, term, type: 0, data });
  }
  for (let i = entries.at(-1).index + 1; i <= last; i++) log.delete(i);
  for (const e of entries) log.set(e.index, e);
  last = entries.at(-1).index;
  commit = Math.max(commit, last - 5);
  await store.log.append({ hardState: { term, vote: 'n1', commit }, entries, sync: true });
  process.stdout.write('ack ' + commit + '\\n');
  const items = [];
  for (let i = store.kv.appliedIndex() + 1; i <= commit; i++) { const e = log.get(i); items.push({ kind: 'entry', index: i, term: e.term, data: e.data }); }
  await store.kv.apply(items);
}
await store.close();
`;

describe('crash of a real process', () => {
  const dir = mkdtempSync(join(tmpdir(), 'qkv-crash-'));
  const childPath = join(dir, 'child.mjs');
  beforeAll(() => {
    execFileSync('pnpm', ['exec', 'tsc', '-b', 'packages/storage'], { cwd: repoRoot, stdio: 'ignore' });
    writeFileSync(childPath, CHILD);
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  /** Runs the child until it acknowledged ACKS_BEFORE_KILL appends, then SIGKILLs it. Returns the last acked commit. */
  function runAndKill(dataDir: string, seed: number): Promise<number> {
    return new Promise((resolveRun, reject) => {
      const child = spawn(process.execPath, [childPath, dataDir, String(seed)], { stdio: ['ignore', 'pipe', 'pipe'] });
      let acks = 0;
      let lastCommit = 0;
      let stderr = '';
      child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
      child.stdout.on('data', (d: Buffer) => {
        for (const line of d.toString().split('\n')) {
          const m = /^ack (\d+)$/.exec(line);
          if (!m) continue;
          lastCommit = Number(m[1]);
          if (++acks === ACKS_BEFORE_KILL) child.kill('SIGKILL');
        }
      });
      child.on('exit', (code, signal) => {
        if (signal === 'SIGKILL') resolveRun(lastCommit);
        else reject(new Error(`child exited with ${code} before the kill (seed ${seed}): ${stderr}`));
      });
    });
  }

  test('after each SIGKILL the log holds every acknowledged write and the state re-applies to a replica-equal state', async () => {
    const dataDir = join(dir, 'node');
    for (let round = 1; round <= ROUNDS; round++) {
      const seed = 1000 + round;
      const ackedCommit = await runAndKill(dataDir, seed);
      const store = await openNodeStore(dataDir);
      try {
        const { hardState, entries } = await store.log.load(); // throws on gaps or damage
        expect(hardState.commit, `seed ${seed}`).toBeGreaterThanOrEqual(ackedCommit);
        expect(store.log.lastIndex()).toBeGreaterThanOrEqual(hardState.commit);
        expect(store.kv.appliedIndex()).toBeLessThanOrEqual(hardState.commit);
        const committed = entries.filter((e) => e.index <= hardState.commit);
        const toItems = (es: typeof entries): ApplyItem[] => es.map((e) => ({ kind: 'entry', index: e.index, term: e.term, data: e.data }));
        await store.kv.apply(toItems(committed.filter((e) => e.index > store.kv.appliedIndex())));
        const replica = await openMemoryNodeStore();
        await replica.kv.apply(toItems(committed));
        expect(store.kv.applied()).toEqual(replica.kv.applied());
        expect(await store.kv.stateHash()).toBe(await replica.kv.stateHash());
      } finally {
        await store.close();
      }
    }
  });
});
