// What the high-water mark costs a synced append, A/B against another build, in one run (rounds
// alternate, so load on the machine hits every case alike): the bare LevelDB batch (no mark), the
// other build's store append (A), and this build's (B). Entries of 256 B, hard state in every
// batch as the host writes it. With a gap (ms) the appends are spaced out, as at moderate load,
// so the idle confirmation of this build fires between them; the report is then the mean time of
// one append (the gap not counted) instead of appends per second.
//
// Not a test. Run from the repository root, with the other build's storage compiled:
//   pnpm exec tsc -b packages/storage
//   node packages/storage/bench/mark-bench.mjs /path/to/other/packages/storage/dist [seconds-per-round] [rounds] [entries-per-append] [gap-ms]
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { LevelBackend } from '../dist/backend.js';
import { u64be } from '../dist/codec.js';
import { openNodeStore } from '../dist/index.js';
import { sealSegment } from '../dist/log-segments.js';
import { MetaKey, metaPut } from '../dist/meta.js';

const OTHER = process.argv[2];
if (!OTHER) throw new Error('usage: mark-bench.mjs <other build packages/storage/dist> [seconds] [rounds] [entries]');
const SECONDS = Number(process.argv[3] ?? 3);
const ROUNDS = Number(process.argv[4] ?? 5);
const ENTRIES = Number(process.argv[5] ?? 10);
const GAP_MS = Number(process.argv[6] ?? 0);
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const value = new Uint8Array(256).fill(3);
const other = await import(resolve(OTHER, 'index.js'));

/**
 * Appends/s of synced appends of ENTRIES entries through `open` (a store), or the bare batch when
 * `open` is undefined; with GAP_MS, the mean ms of one append instead.
 */
async function appends(open) {
  const dir = mkdtempSync(join(tmpdir(), 'qkv-bench-mark-'));
  const store = open ? await open(dir) : undefined;
  const backend = open ? undefined : await LevelBackend.open(dir, { createIfMissing: true, hooks: {} });
  let index = 0;
  let n = 0;
  let busyNs = 0n;
  const start = process.hrtime.bigint();
  const deadline = start + BigInt(SECONDS * 1e9);
  while (process.hrtime.bigint() < deadline) {
    const entries = [];
    for (let i = 0; i < ENTRIES; i++) entries.push({ index: ++index, term: 1, type: 0, data: value });
    const hardState = { term: 1, vote: 'n1', commit: index - ENTRIES };
    if (GAP_MS > 0) await sleep(GAP_MS);
    const t0 = process.hrtime.bigint();
    if (store) await store.log.append({ hardState, entries, sync: true });
    else await backend.write([metaPut(MetaKey.hardState, hardState), { type: 'put', ns: 'log', key: u64be(entries[0].index), value: sealSegment(entries) }], { sync: true, label: 'bench' });
    busyNs += process.hrtime.bigint() - t0;
    n++;
  }
  const seconds = Number(process.hrtime.bigint() - start) / 1e9;
  await (store ?? backend).close();
  rmSync(dir, { recursive: true, force: true });
  return GAP_MS > 0 ? Number(busyNs) / 1e6 / n : n / seconds;
}

const cases = { 'bare batch': undefined, 'A (other build)': (dir) => other.openNodeStore(dir), 'B (this build)': (dir) => openNodeStore(dir) };
const res = Object.fromEntries(Object.keys(cases).map((k) => [k, []]));
const unit = GAP_MS > 0 ? `ms per append, ${GAP_MS} ms apart` : 'appends/s';
console.log(`${ROUNDS} rounds of ${SECONDS} s per case, ${ENTRIES} entries per append, alternating; A = ${OTHER}; dir under ${tmpdir()}`);
for (let r = 0; r < ROUNDS; r++) {
  // Rotate the order each round, so no case always runs right after the same one.
  const names = Object.keys(cases);
  for (let i = 0; i < names.length; i++) {
    const name = names[(i + r) % names.length];
    res[name].push(await appends(cases[name]));
  }
}
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
for (const [name, xs] of Object.entries(res)) {
  const digits = GAP_MS > 0 ? 2 : 0;
  console.log(`${name.padEnd(16)} ${xs.map((x) => x.toFixed(digits)).join(' / ')} ${unit} (median ${median(xs).toFixed(digits)})`);
}
console.log(`B/A per round (${GAP_MS > 0 ? 'time: below 1 is B faster' : 'rate: above 1 is B faster'}): ${res['B (this build)'].map((b, i) => (b / res['A (other build)'][i]).toFixed(2)).join(' / ')}`);
