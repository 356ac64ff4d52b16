// State-machine apply throughput: batches of 100 puts of 256 B values on 10 000 keys, every
// command with a session (as the server sends them), unsynced. Two stores: LevelDB, and the
// memory twin (which isolates the state machine's own CPU: rules, write-behind, op building).
// Not a test. Given several builds of the package, rounds alternate between them in one process
// (A, B, A, B, …), so load on the machine hits each alike. Run from the repository root:
//   pnpm exec tsc -b packages/storage && node packages/storage/bench/apply-bench.mjs [seconds] [rounds] [distDir...]
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';

const SECONDS = Number(process.argv[2] ?? 3);
const ROUNDS = Number(process.argv[3] ?? 1);
const dists = process.argv.length > 4 ? process.argv.slice(4) : [new URL('../dist/', import.meta.url).pathname];
const BATCH = 100;
const KEYS = 10_000;
const SESSIONS = 50;
const value = new Uint8Array(256).fill(3);

/**
 * One round against one store: entries/s (wall clock) and CPU µs per entry (user + system, every
 * thread of the process: on a loaded machine the steadier of the two).
 */
async function round(lib, store) {
  const seqs = new Array(SESSIONS).fill(0);
  let index = 0;
  const cpu0 = process.cpuUsage();
  const start = process.hrtime.bigint();
  const deadlineNs = start + BigInt(SECONDS * 1e9);
  while (process.hrtime.bigint() < deadlineNs) {
    const items = [];
    for (let i = 0; i < BATCH; i++) {
      index++;
      const s = index % SESSIONS;
      const seq = ++seqs[s];
      const key = new TextEncoder().encode(`key-${(index * 7919) % KEYS}`);
      const data = lib.encodeCommand({ op: 'put', key, value, session: { id: `client-${s}`, seq, ackedBelow: Math.max(1, seq - 4) }, timeMs: Date.now() });
      items.push({ kind: 'entry', index, term: 1, data });
    }
    await store.kv.apply(items, { sync: false });
  }
  const wallSeconds = Number(process.hrtime.bigint() - start) / 1e9;
  const cpu = process.cpuUsage(cpu0);
  return { perSecond: index / wallSeconds, cpuUsPerEntry: (cpu.user + cpu.system) / index };
}

const libs = [];
for (const d of dists) libs.push(await import(pathToFileURL(resolve(d, 'index.js')).href));
const rows = dists.map(() => ({ level: [], memory: [] }));
for (let r = 0; r < ROUNDS; r++) {
  for (let i = 0; i < libs.length; i++) {
    const lib = libs[i];
    const dir = mkdtempSync(join(tmpdir(), 'qkv-bench-apply-'));
    const level = await lib.openNodeStore(dir);
    rows[i].level.push(await round(lib, level));
    await level.close();
    rmSync(dir, { recursive: true, force: true });
    const memory = await lib.openMemoryNodeStore();
    rows[i].memory.push(await round(lib, memory));
    await memory.close();
  }
}
const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 === 1 ? s[m] : (s[m - 1] + s[m]) / 2;
};
console.log(`apply: batches of ${BATCH}, unsynced, ${ROUNDS} round(s) of ${SECONDS} s per store and build`);
dists.forEach((d, i) => {
  for (const kind of ['level', 'memory']) {
    const rs = rows[i][kind];
    const cpu = rs.map((r) => r.cpuUsPerEntry);
    const wall = rs.map((r) => r.perSecond);
    console.log(
      `${d}  ${kind.padEnd(6)}  CPU µs/entry median ${median(cpu).toFixed(2).padStart(6)} (${cpu.map((x) => x.toFixed(2)).join(' / ')})` +
        `   entries/s median ${median(wall).toFixed(0).padStart(6)} (${wall.map((x) => x.toFixed(0)).join(' / ')})`,
    );
  }
});
