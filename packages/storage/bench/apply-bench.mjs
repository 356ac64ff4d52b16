// State-machine apply throughput of the LevelDB store: batches of 100 puts of 256 B values on
// 10 000 keys, every command with a session (as the server sends them). Not a test. Run:
//   pnpm exec tsc -b packages/storage && node packages/storage/bench/apply-bench.mjs [seconds]
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { encodeCommand, openNodeStore } from '../dist/index.js';

const SECONDS = Number(process.argv[2] ?? 3);
const BATCH = 100;
const KEYS = 10_000;
const SESSIONS = 50;

const dir = mkdtempSync(join(tmpdir(), 'qkv-bench-apply-'));
const store = await openNodeStore(dir);
const value = new Uint8Array(256).fill(3);
const seqs = new Array(SESSIONS).fill(0);
let index = 0;
const start = process.hrtime.bigint();
const deadlineNs = start + BigInt(SECONDS * 1e9);
while (process.hrtime.bigint() < deadlineNs) {
  const items = [];
  for (let i = 0; i < BATCH; i++) {
    index++;
    const s = index % SESSIONS;
    const seq = ++seqs[s];
    const key = new TextEncoder().encode(`key-${(index * 7919) % KEYS}`);
    const data = encodeCommand({ op: 'put', key, value, session: { id: `client-${s}`, seq, ackedBelow: Math.max(1, seq - 4) }, timeMs: Date.now() });
    items.push({ kind: 'entry', index, term: 1, data });
  }
  await store.kv.apply(items);
}
const seconds = Number(process.hrtime.bigint() - start) / 1e9;
console.log(`apply: ${(index / seconds).toFixed(0)} entries/s in batches of ${BATCH} (${index} entries, ${seconds.toFixed(1)} s, unsynced)`);
await store.close();
rmSync(dir, { recursive: true, force: true });
