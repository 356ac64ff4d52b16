// Synced log-append throughput of the LevelDB store: batches of 1, 10 and 100 entries of 256 B.
// Not a test (no assertions on speed). Run from the repository root:
//   pnpm exec tsc -b packages/storage && node packages/storage/bench/append-bench.mjs [seconds-per-case]
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openNodeStore } from '../dist/index.js';

const ENTRY_BYTES = 256;
const SECONDS_PER_CASE = Number(process.argv[2] ?? 3);
const MAX_APPENDS_PER_CASE = 100_000;

async function runCase(batchSize) {
  const dir = mkdtempSync(join(tmpdir(), 'qkv-bench-'));
  const store = await openNodeStore(dir);
  const data = new Uint8Array(ENTRY_BYTES).fill(7);
  let index = 0;
  let appends = 0;
  const start = process.hrtime.bigint();
  const deadlineNs = start + BigInt(SECONDS_PER_CASE * 1e9);
  while (process.hrtime.bigint() < deadlineNs && appends < MAX_APPENDS_PER_CASE) {
    const entries = [];
    for (let i = 0; i < batchSize; i++) entries.push({ index: ++index, term: 1, type: 0, data });
    await store.log.append({ hardState: { term: 1, vote: 'n1', commit: index - batchSize }, entries, sync: true });
    appends++;
  }
  const seconds = Number(process.hrtime.bigint() - start) / 1e9;
  await store.close();
  rmSync(dir, { recursive: true, force: true });
  return { batchSize, appends, entries: index, seconds, appendsPerSec: appends / seconds, entriesPerSec: index / seconds, msPerAppend: (seconds * 1000) / appends };
}

console.log(`synced appends, ${ENTRY_BYTES} B entries, ${SECONDS_PER_CASE} s per case, dir under ${tmpdir()}`);
for (const batchSize of [1, 10, 100]) {
  const r = await runCase(batchSize);
  console.log(
    `batch ${String(r.batchSize).padStart(3)}: ${r.entriesPerSec.toFixed(0).padStart(8)} entries/s, ` +
      `${r.appendsPerSec.toFixed(0).padStart(6)} appends/s, ${r.msPerAppend.toFixed(3)} ms/append (${r.appends} appends)`,
  );
}
